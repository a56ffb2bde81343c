/* Fuzzes the JSON/YAML -> protobuf-c converter: accepted input renders, re-parses, renders same. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/pbjson.h"

#include "envoy/admin/v3/config_dump.pb-c.h"
#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "google/api/expr/v1alpha1/syntax.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

/* The first byte of an input picks the message type; the rest is the text. */
static const ProtobufCMessageDescriptor *const targets[] = {
	&envoy__config__bootstrap__v3__bootstrap__descriptor,
	&envoy__admin__v3__config_dump__descriptor,
	&envoy__config__listener__v3__listener__descriptor,
	&google__protobuf__any__descriptor,
	&google__protobuf__struct__descriptor,
	&google__api__expr__v1alpha1__source_info__descriptor, /* maps with int64 keys */
};

#define NTARGETS (sizeof(targets) / sizeof(targets[0]))
#define FLAGS	 PBJSON_OPAQUE_ANY

static char *render(const ProtobufCMessage *m)
{
	struct strbuf out = STRBUF_INIT;
	struct jtree_err err;

	if (pbjson_render(m, FLAGS, &out, &err)) {
		fprintf(stderr, "accepted input does not render: %s\n", err.msg);
		abort();
	}
	return strbuf_detach(&out, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const ProtobufCMessageDescriptor *desc;
	ProtobufCMessage *m, *m2;
	struct jtree_err err;
	char *first, *second;

	if (size < 1)
		return 0;
	desc = targets[data[0] % NTARGETS];
	if (pbjson_parse((const char *)data + 1, size - 1, desc, FLAGS, &m, &err))
		return 0;
	first = render(m);
	protobuf_c_message_free_unpacked(m, NULL);
	if (pbjson_parse(first, strlen(first), desc, FLAGS, &m2, &err)) {
		fprintf(stderr, "rendered text does not parse back: %s\n%s\n", err.msg, first);
		abort();
	}
	second = render(m2);
	protobuf_c_message_free_unpacked(m2, NULL);
	if (strcmp(first, second) != 0) {
		fprintf(stderr, "render is not stable:\n%s\n%s\n", first, second);
		abort();
	}
	free(first);
	free(second);
	return 0;
}
