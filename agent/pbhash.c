/* Content hashes of protobuf-c messages, walked by descriptor (see pbhash.h). */
#include "agent/pbhash.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "agent/pbjson.h"
#include "agent/pbreg.h"
#include "proxy/lb.h"
#include "google/protobuf/any.pb-c.h"

#define PBHASH_MAX_DEPTH 64 /* nesting followed; deeper parts are hashed as their bytes */

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
	h *= 0xff51afd7ed558ccdULL;
	return h ^ (h >> 33);
}

static uint64_t mix_bytes(uint64_t h, const void *p, size_t n)
{
	return mix(mix(h, n), px_hash_bytes(p, n));
}

static uint64_t msg_hash(const ProtobufCMessage *m, const char *const *skip, size_t nskip,
			 int depth);

static uint64_t value_hash(const ProtobufCFieldDescriptor *f, const void *p, int depth)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(const char *const *)p;

		return s ? mix_bytes(1, s, strlen(s)) : 0;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;

		return mix_bytes(2, b->data, b->len);
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(const ProtobufCMessage *const *)p;

		return m ? msg_hash(m, NULL, 0, depth + 1) : 0;
	}
	default:
		return mix_bytes(3, p, pbjson_elem_size(f->type));
	}
}

/* An Any is hashed as what it holds: its bytes may carry maps in any order. */
static uint64_t any_hash(const ProtobufCMessage *m, int depth)
{
	const Google__Protobuf__Any *any = (const Google__Protobuf__Any *)m;
	const ProtobufCMessageDescriptor *d = any->type_url ? pbreg_find(any->type_url) : NULL;
	ProtobufCMessage *inner;
	uint64_t h = any->type_url ? mix_bytes(4, any->type_url, strlen(any->type_url)) : 4;

	if (d && depth < PBHASH_MAX_DEPTH) {
		inner = protobuf_c_message_unpack(d, NULL, any->value.len, any->value.data);
		if (inner) {
			h = mix(h, msg_hash(inner, NULL, 0, depth + 1));
			protobuf_c_message_free_unpacked(inner, NULL);
			return h;
		}
	}
	return mix_bytes(h, any->value.data, any->value.len);
}

static bool skipped(const char *name, const char *const *skip, size_t nskip)
{
	for (size_t i = 0; i < nskip; i++)
		if (!strcmp(name, skip[i]))
			return true;
	return false;
}

static uint64_t msg_hash(const ProtobufCMessage *m, const char *const *skip, size_t nskip,
			 int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	uint64_t h = mix_bytes(5, d->name, strlen(d->name));

	if (!strcmp(d->name, "google.protobuf.Any"))
		return any_hash(m, depth);
	if (depth >= PBHASH_MAX_DEPTH) {
		size_t n = protobuf_c_message_get_packed_size(m);
		uint8_t *buf = malloc(n ? n : 1);

		if (!buf)
			return mix(h, n);
		protobuf_c_message_pack(m, buf);
		h = mix_bytes(h, buf, n);
		free(buf);
		return h;
	}
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;
		const void *q = base + f->quantifier_offset;

		if (skipped(f->name, skip, nskip))
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)q;
			const char *arr = *(const char *const *)(base + f->offset);
			bool map = pbjson_is_map_field(d, f);
			uint64_t acc = 0;

			if (!n)
				continue;
			for (size_t k = 0; k < n; k++) {
				uint64_t v =
					value_hash(f, arr + k * pbjson_elem_size(f->type), depth);

				/* Map entries in any order: a sum; list elements in order. */
				acc = map ? acc + v : mix(acc, v);
			}
			h = mix(mix(mix(h, f->id), n), acc);
			continue;
		}
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (*(const uint32_t *)q != f->id)
				continue;
		} else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
			   f->type != PROTOBUF_C_TYPE_MESSAGE &&
			   f->type != PROTOBUF_C_TYPE_STRING) {
			if (!*(const protobuf_c_boolean *)q)
				continue;
		}
		h = mix(mix(h, f->id), value_hash(f, base + f->offset, depth));
	}
	for (unsigned i = 0; i < m->n_unknown_fields; i++) {
		const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];

		h = mix(mix(h, u->tag), mix_bytes(u->wire_type, u->data, u->len));
	}
	return h;
}

uint64_t pbhash_message(const ProtobufCMessage *m, const char *const *skip, size_t nskip)
{
	return msg_hash(m, skip, nskip, 0);
}
