/* Generic proto3 JSON/YAML <-> protobuf-c conversion, driven by message descriptors only. */
#ifndef SHUNT_AGENT_PBJSON_H
#define SHUNT_AGENT_PBJSON_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

#include "agent/jtree.h"
#include "lib/strbuf.h"

/* Parse: an Any whose type URL is not in the registry (agent/pbreg.h) is kept instead of
 * rejected, its value holding the compact JSON text of its other members. Render: such an Any
 * is printed back from that text; an unregistered binary value prints as "@value" in base64.
 * Callers that accept it must check type URLs themselves (bootstrap.c does, per filter). */
#define PBJSON_OPAQUE_ANY (1u << 0)
/* Render: lowerCamelCase names (proto3 JSON); the default is proto field names, as Envoy's
 * /config_dump prints them. Parse always accepts both. */
#define PBJSON_CAMEL (1u << 1)
/* Render: two-space indent, one member a line. */
#define PBJSON_PRETTY (1u << 2)

/* Nodes a conversion may visit; bounds the work YAML aliases can multiply. */
#define PBJSON_MAX_VISITS (4u << 20)
/* Message nesting a conversion follows (input trees are limited to JTREE_MAX_DEPTH). */
#define PBJSON_MAX_DEPTH JTREE_MAX_DEPTH

/* Text (JSON or YAML, see jtree_parse) -> a new message of type desc. Field names in proto or
 * lowerCamelCase form; enums by name or number; 64-bit integers as numbers or strings; bytes in
 * base64; maps as objects; Any as {"@type": URL, fields...} (or {"@type", "value"} for the
 * well-known types); Duration "1.5s", Timestamp RFC 3339, Struct/Value/ListValue as plain JSON,
 * wrappers as bare values; null means "not set". On success *out is the caller's, freed with
 * protobuf_c_message_free_unpacked(*out, NULL). On failure nothing is allocated and err->msg is
 * "<path>: <problem>" (path like static_resources.clusters[2].connect_timeout), with line and
 * column of the offending node. Returns 0, -EINVAL or -ENOMEM. */
int pbjson_parse(const char *text, size_t len, const ProtobufCMessageDescriptor *desc,
		 unsigned flags, ProtobufCMessage **out, struct jtree_err *err);
/* The same from a parsed node; path is prefixed to error paths (NULL or "" for none). */
int pbjson_from_node(const struct jtree_node *node, const ProtobufCMessageDescriptor *desc,
		     unsigned flags, const char *path, ProtobufCMessage **out,
		     struct jtree_err *err);

/* Message -> proto3 JSON appended to out: default (zero) values omitted, 64-bit integers as
 * strings, enums by name, Any with "@type", Duration "1.5s". Fails (-EINVAL, err set, out
 * holding a partial text) on an Any it cannot decode or a value JSON cannot hold; -ENOMEM. */
int pbjson_render(const ProtobufCMessage *msg, unsigned flags, struct strbuf *out,
		  struct jtree_err *err);

/* Any helpers over the registry. pack: a new Any (caller frees) holding msg under
 * "type.googleapis.com/<full name>". unpack: a new message of the Any's type (caller frees);
 * -ENOENT if the type is not registered, -EINVAL if the value does not decode. */
int pbjson_any_pack(const ProtobufCMessage *msg, ProtobufCMessage **out);
int pbjson_any_unpack(const ProtobufCMessage *any, ProtobufCMessage **out, struct jtree_err *err);

/* The size of one value of type t in a message (a repeated field's element). */
size_t pbjson_elem_size(ProtobufCType t);
/* Whether field f of message parent is a map (a repeated <Field>Entry with key and value). */
int pbjson_is_map_field(const ProtobufCMessageDescriptor *parent,
			const ProtobufCFieldDescriptor *f);

#endif
