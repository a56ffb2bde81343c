/* /config_dump: the active resources as Envoy prints them (admin v3 ConfigDump, proto3 JSON). */
#ifndef SHUNT_AGENT_CONFIG_DUMP_H
#define SHUNT_AGENT_CONFIG_DUMP_H

#include <protobuf-c/protobuf-c.h>

#include "agent/jtree.h"
#include "agent/xdsres.h"
#include "lib/strbuf.h"

/* What --type accepts, for usage messages. */
#define CONFIG_DUMP_TYPES "bootstrap, clusters, endpoints, listeners, routes, secrets"

/* Builds the envoy.admin.v3.ConfigDump of cfg: Bootstrap, Clusters, Endpoints, Listeners, Routes
 * and Secrets sections, in Envoy's order. Static resources carry last_updated; dynamic ones
 * also version_info, and a rejected update shows as the resource's error_state (version, details,
 * time, and what was offered). As Envoy does, the route configurations given inline in static
 * listeners are listed as static routes and the load assignments of static clusters as static
 * endpoints. type is NULL for every section, or one of CONFIG_DUMP_TYPES (an Envoy section type
 * name such as "ListenersConfigDump" or "envoy.admin.v3.ListenersConfigDump" also works).
 * *out is the caller's (protobuf_c_message_free_unpacked). 0, -EINVAL (unknown type) or -ENOMEM. */
int config_dump_build(const struct xds_config *cfg, const char *type, ProtobufCMessage **out);

/* Replaces, in place, every string and bytes value under a field Envoy marks sensitive (private
 * keys, passwords, session ticket keys, generic secrets...) with "[redacted]", also inside Any
 * fields; config_dump_build does this to every dump. 0 or -ENOMEM. */
int config_dump_redact(ProtobufCMessage *m);
/* How many fields the redaction knows as sensitive (the test checks it against the protos). */
size_t config_dump_sensitive_count(void);

/* The same rendered as Envoy's admin endpoint does: pretty proto3 JSON with proto field names;
 * typed_configs of types this build does not know print back as they were given. Appends to
 * out. 0, -EINVAL (err says why) or -ENOMEM. */
int config_dump_render(const struct xds_config *cfg, const char *type, struct strbuf *out,
		       struct jtree_err *err);

#endif
