/* Builds envoy.admin.v3.ConfigDump through descriptor-driven setters, renders it with pbjson. */
#include "agent/config_dump.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/pbjson.h"

#include "envoy/admin/v3/config_dump.pb-c.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"

#define NS_PER_MS 1000000

/* ---- descriptor-driven message building: every setter takes ownership of what it is given,
 * freeing it on failure, so a builder only has to free the top message. ------------------- */

static ProtobufCMessage *msg_new(const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = calloc(1, d->sizeof_message);

	if (m)
		protobuf_c_message_init(d, m);
	return m;
}

static void msg_free(ProtobufCMessage *m)
{
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
}

static const ProtobufCFieldDescriptor *field(const ProtobufCMessage *m, const char *name)
{
	return protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
}

static void mark_oneof(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		*(uint32_t *)((char *)m + f->quantifier_offset) = f->id;
}

/* Sets a string field; a field the message lacks is skipped (the same code serves several). */
static int set_str(ProtobufCMessage *m, const char *name, const char *value)
{
	const ProtobufCFieldDescriptor *f = field(m, name);
	char *copy;

	if (!f || !value || !*value)
		return 0;
	copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	*(char **)((char *)m + f->offset) = copy;
	mark_oneof(m, f);
	return 0;
}

static int set_msg(ProtobufCMessage *m, const char *name, ProtobufCMessage *sub)
{
	const ProtobufCFieldDescriptor *f = field(m, name);

	if (!sub)
		return -ENOMEM;
	if (!f) {
		msg_free(sub);
		return 0;
	}
	*(ProtobufCMessage **)((char *)m + f->offset) = sub;
	mark_oneof(m, f);
	return 0;
}

static int append_msg(ProtobufCMessage *m, const char *name, ProtobufCMessage *sub)
{
	const ProtobufCFieldDescriptor *f = field(m, name);
	size_t *n;
	ProtobufCMessage ***arr, **grown;

	if (!sub)
		return -ENOMEM;
	n = (size_t *)((char *)m + f->quantifier_offset);
	arr = (ProtobufCMessage ***)((char *)m + f->offset);
	grown = realloc(*arr, (*n + 1) * sizeof(*grown));
	if (!grown) {
		msg_free(sub);
		return -ENOMEM;
	}
	grown[(*n)++] = sub;
	*arr = grown;
	return 0;
}

static ProtobufCMessage *any_of(const ProtobufCMessage *msg)
{
	ProtobufCMessage *any;

	return pbjson_any_pack(msg, &any) ? NULL : any;
}

static ProtobufCMessage *any_copy(const ProtobufCMessage *any)
{
	size_t size = protobuf_c_message_get_packed_size(any);
	uint8_t *buf = malloc(size ? size : 1);
	ProtobufCMessage *copy;

	if (!buf)
		return NULL;
	protobuf_c_message_pack(any, buf);
	copy = protobuf_c_message_unpack(&google__protobuf__any__descriptor, NULL, size, buf);
	free(buf);
	return copy;
}

/* Envoy prints update times to the millisecond. */
static ProtobufCMessage *timestamp_of(const struct timespec *t)
{
	Google__Protobuf__Timestamp *ts =
		(Google__Protobuf__Timestamp *)msg_new(&google__protobuf__timestamp__descriptor);

	if (ts) {
		ts->seconds = t->tv_sec;
		ts->nanos = (int32_t)(t->tv_nsec / NS_PER_MS * NS_PER_MS);
	}
	return ts ? &ts->base : NULL;
}

/* ---- sections ------------------------------------------------------------------------------- */

/* Where each resource type goes in its section: message types and field names. */
static const struct section {
	const char *name; /* --type */
	const ProtobufCMessageDescriptor *dump;
	const char *static_list;
	const ProtobufCMessageDescriptor *static_entry;
	const char *dynamic_list;
	const ProtobufCMessageDescriptor *dynamic_entry;
	const char *resource_field;
} sections[XDS_NTYPES] = {
	[XDS_CLUSTER] = {"clusters", &envoy__admin__v3__clusters_config_dump__descriptor,
			 "static_clusters",
			 &envoy__admin__v3__clusters_config_dump__static_cluster__descriptor,
			 "dynamic_active_clusters",
			 &envoy__admin__v3__clusters_config_dump__dynamic_cluster__descriptor,
			 "cluster"},
	[XDS_ENDPOINT] =
		{"endpoints", &envoy__admin__v3__endpoints_config_dump__descriptor,
		 "static_endpoint_configs",
		 &envoy__admin__v3__endpoints_config_dump__static_endpoint_config__descriptor,
		 "dynamic_endpoint_configs",
		 &envoy__admin__v3__endpoints_config_dump__dynamic_endpoint_config__descriptor,
		 "endpoint_config"},
	[XDS_LISTENER] = {"listeners", &envoy__admin__v3__listeners_config_dump__descriptor,
			  "static_listeners",
			  &envoy__admin__v3__listeners_config_dump__static_listener__descriptor,
			  "dynamic_listeners",
			  &envoy__admin__v3__listeners_config_dump__dynamic_listener__descriptor,
			  "listener"},
	[XDS_ROUTE] = {"routes", &envoy__admin__v3__routes_config_dump__descriptor,
		       "static_route_configs",
		       &envoy__admin__v3__routes_config_dump__static_route_config__descriptor,
		       "dynamic_route_configs",
		       &envoy__admin__v3__routes_config_dump__dynamic_route_config__descriptor,
		       "route_config"},
	[XDS_SECRET] = {"secrets", &envoy__admin__v3__secrets_config_dump__descriptor,
			"static_secrets",
			&envoy__admin__v3__secrets_config_dump__static_secret__descriptor,
			"dynamic_active_secrets",
			&envoy__admin__v3__secrets_config_dump__dynamic_secret__descriptor,
			"secret"},
};

/* Envoy's order of sections. */
static const enum xds_type section_order[] = {XDS_CLUSTER, XDS_ENDPOINT, XDS_LISTENER, XDS_ROUTE,
					      XDS_SECRET};

static int add_static_entry(ProtobufCMessage *dump, enum xds_type t, const char *name,
			    const ProtobufCMessage *resource, const struct timespec *when)
{
	const struct section *s = &sections[t];
	ProtobufCMessage *e = msg_new(s->static_entry);
	int rc;

	if (!e)
		return -ENOMEM;
	rc = set_str(e, "name", name);
	if (!rc)
		rc = set_msg(e, s->resource_field, any_of(resource));
	if (!rc)
		rc = set_msg(e, "last_updated", timestamp_of(when));
	if (rc) {
		msg_free(e);
		return rc;
	}
	return append_msg(dump, s->static_list, e);
}

static ProtobufCMessage *failure_state(const struct xds_rejection *rej)
{
	ProtobufCMessage *f = msg_new(&envoy__admin__v3__update_failure_state__descriptor);
	int rc;

	if (!f)
		return NULL;
	rc = set_str(f, "details", rej->details);
	if (!rc)
		rc = set_str(f, "version_info", rej->version);
	if (!rc)
		rc = set_msg(f, "last_update_attempt", timestamp_of(&rej->when));
	if (!rc && rej->failed)
		rc = set_msg(f, "failed_configuration", any_copy(rej->failed));
	if (rc) {
		msg_free(f);
		return NULL;
	}
	return f;
}

static const struct xds_rejection *rejection_of(const struct xds_config *cfg, enum xds_type t,
						const char *name)
{
	for (size_t i = 0; i < cfg->n_rejected[t]; i++)
		if (!strcmp(cfg->rejected[t][i].name, name))
			return &cfg->rejected[t][i];
	return NULL;
}

/* A dynamic entry; r may be NULL for a resource that was only ever rejected. Listeners nest
 * the accepted version in active_state. */
static int add_dynamic_entry(ProtobufCMessage *dump, enum xds_type t, const char *name,
			     const struct xds_resource *r, const struct xds_rejection *rej)
{
	const struct section *s = &sections[t];
	ProtobufCMessage *e = msg_new(s->dynamic_entry), *state = e;
	int rc;

	if (!e)
		return -ENOMEM;
	rc = set_str(e, "name", name);
	if (!rc && r && t == XDS_LISTENER) {
		state = msg_new(
			&envoy__admin__v3__listeners_config_dump__dynamic_listener_state__descriptor);
		rc = set_msg(e, "active_state", state);
	}
	if (!rc && r)
		rc = set_str(state, "version_info", r->version);
	if (!rc && r)
		rc = set_msg(state, s->resource_field, any_of(r->msg));
	if (!rc && r)
		rc = set_msg(state, "last_updated", timestamp_of(&r->updated));
	if (!rc && rej)
		rc = set_msg(e, "error_state", failure_state(rej));
	if (rc) {
		msg_free(e);
		return rc;
	}
	return append_msg(dump, s->dynamic_list, e);
}

/* Route configurations written inline in static listeners' HTTP connection managers. */
static int add_inline_routes(ProtobufCMessage *dump, const struct xds_resource *r)
{
	const Envoy__Config__Listener__V3__Listener *l = (const void *)r->msg;
	int rc = 0;

	for (size_t i = 0; i <= l->n_filter_chains && !rc; i++) {
		const Envoy__Config__Listener__V3__FilterChain *fc =
			i < l->n_filter_chains ? l->filter_chains[i] : l->default_filter_chain;

		for (size_t j = 0; fc && j < fc->n_filters && !rc; j++) {
			const Envoy__Config__Listener__V3__Filter *f = fc->filters[j];
			const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager
				*hcm;
			ProtobufCMessage *msg;
			struct jtree_err err;

			if (f->config_type_case !=
				    ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG ||
			    strcmp(f->typed_config->type_url,
				   "type.googleapis.com/envoy.extensions.filters.network."
				   "http_connection_manager.v3.HttpConnectionManager") != 0 ||
			    pbjson_any_unpack(&f->typed_config->base, &msg, &err))
				continue;
			hcm = (const void *)msg;
			if (hcm->route_specifier_case ==
			    ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG)
				rc = add_static_entry(dump, XDS_ROUTE, NULL,
						      &hcm->route_config->base, &r->updated);
			msg_free(msg);
		}
	}
	return rc;
}

static int build_section(const struct xds_config *cfg, enum xds_type t, ProtobufCMessage **out)
{
	const struct section *s = &sections[t];
	ProtobufCMessage *dump = msg_new(s->dump);
	int rc = 0;

	*out = NULL;
	if (!dump)
		return -ENOMEM;
	rc = set_str(dump, "version_info", cfg->version[t]);
	/* Derived static entries first, as Envoy lists them. */
	if (t == XDS_ROUTE)
		for (size_t i = 0; i < cfg->n[XDS_LISTENER] && !rc; i++)
			if (cfg->res[XDS_LISTENER][i].is_static)
				rc = add_inline_routes(dump, &cfg->res[XDS_LISTENER][i]);
	/* The endpoints a cluster carries itself: static for static clusters and, as Envoy dumps
	 * them (Istio's BlackHoleCluster, inbound|PORT||), dynamic for those CDS brought; an EDS
	 * cluster's come from EDS. */
	if (t == XDS_ENDPOINT) {
		for (size_t i = 0; i < cfg->n[XDS_CLUSTER] && !rc; i++) {
			const struct xds_resource *r = &cfg->res[XDS_CLUSTER][i];
			const Envoy__Config__Cluster__V3__Cluster *c = (const void *)r->msg;
			struct xds_resource la;

			if (!c->load_assignment)
				continue;
			if (r->is_static) {
				rc = add_static_entry(dump, XDS_ENDPOINT, NULL,
						      &c->load_assignment->base, &r->updated);
				continue;
			}
			if (c->cluster_discovery_type_case ==
				    ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE &&
			    c->type == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS)
				continue;
			la = *r;
			la.msg = &c->load_assignment->base;
			rc = add_dynamic_entry(dump, XDS_ENDPOINT, r->name, &la, NULL);
		}
	}
	for (size_t i = 0; i < cfg->n[t] && !rc; i++) {
		const struct xds_resource *r = &cfg->res[t][i];

		if (r->is_static)
			rc = add_static_entry(dump, t, r->name, r->msg, &r->updated);
		else
			rc = add_dynamic_entry(dump, t, r->name, r, rejection_of(cfg, t, r->name));
	}
	for (size_t i = 0; i < cfg->n_rejected[t] && !rc; i++) {
		const struct xds_rejection *rej = &cfg->rejected[t][i];
		const struct xds_resource *r = NULL;

		for (size_t k = 0; k < cfg->n[t] && !r; k++)
			if (!strcmp(cfg->res[t][k].name, rej->name))
				r = &cfg->res[t][k];
		if (!r)
			rc = add_dynamic_entry(dump, t, rej->name, NULL, rej);
	}
	if (rc) {
		msg_free(dump);
		return rc;
	}
	*out = dump;
	return 0;
}

static int build_bootstrap(const struct xds_config *cfg, ProtobufCMessage **out)
{
	ProtobufCMessage *dump = msg_new(&envoy__admin__v3__bootstrap_config_dump__descriptor);
	ProtobufCMessage *copy = NULL;
	int rc;

	*out = NULL;
	if (!dump)
		return -ENOMEM;
	if (cfg->bootstrap) {
		ProtobufCMessage *any = any_of(cfg->bootstrap);
		struct jtree_err err;

		if (any)
			pbjson_any_unpack(any, &copy, &err);
		msg_free(any);
		if (!copy) {
			msg_free(dump);
			return -ENOMEM;
		}
	}
	rc = copy ? set_msg(dump, "bootstrap", copy) : 0;
	if (!rc)
		rc = set_msg(dump, "last_updated", timestamp_of(&cfg->bootstrap_loaded));
	if (rc) {
		msg_free(dump);
		return rc;
	}
	*out = dump;
	return 0;
}

/* ---- redaction: what Envoy's protos mark (udpa.annotations.sensitive) = true never leaves in
 * a dump. protobuf-c keeps no custom options, so the fields of the compiled closure that carry
 * the mark are listed here; config_dump_test counts the marks in the proto sources against this
 * list. As Envoy's MessageUtil::redact does, every string and bytes value under a marked field
 * becomes "[redacted]", whatever its depth (a DataSource's inline_string or filename alike). */

static const struct config_dump_sensitive {
	const char *message; /* full proto name */
	const char *field;
} sensitive_fields[] = {
	{"envoy.config.core.v3.GrpcService.GoogleGrpc.SslCredentials", "private_key"},
	{"envoy.extensions.filters.http.ext_authz.v3.CheckSettings", "context_extensions"},
	{"envoy.extensions.transport_sockets.tls.v3.PrivateKeyProvider", "typed_config"},
	{"envoy.extensions.transport_sockets.tls.v3.TlsCertificate", "private_key"},
	{"envoy.extensions.transport_sockets.tls.v3.TlsCertificate", "pkcs12"},
	{"envoy.extensions.transport_sockets.tls.v3.TlsCertificate", "password"},
	{"envoy.extensions.transport_sockets.tls.v3.TlsSessionTicketKeys", "keys"},
	{"envoy.extensions.transport_sockets.tls.v3.GenericSecret", "secret"},
};

#define REDACTED "[redacted]"

size_t config_dump_sensitive_count(void)
{
	return sizeof(sensitive_fields) / sizeof(sensitive_fields[0]);
}

static bool is_sensitive(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f)
{
	for (size_t i = 0; i < config_dump_sensitive_count(); i++)
		if (!strcmp(sensitive_fields[i].message, d->name) &&
		    !strcmp(sensitive_fields[i].field, f->name))
			return true;
	return false;
}

static int redact_msg(ProtobufCMessage *m, bool all, int depth);

/* A string field's value (or one element of a repeated one) replaced. */
static int redact_str(char **slot, const ProtobufCFieldDescriptor *f)
{
	char *copy;

	if (!*slot || !**slot)
		return 0;
	copy = strdup(REDACTED);
	if (!copy)
		return -ENOMEM;
	if (*slot != (char *)f->default_value)
		free(*slot);
	*slot = copy;
	return 1;
}

static int redact_bytes(ProtobufCBinaryData *b, const ProtobufCFieldDescriptor *f)
{
	uint8_t *copy;

	if (!b->len)
		return 0;
	copy = malloc(sizeof(REDACTED) - 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, REDACTED, sizeof(REDACTED) - 1);
	if (!f->default_value || b->data != ((const ProtobufCBinaryData *)f->default_value)->data)
		free(b->data);
	b->data = copy;
	b->len = sizeof(REDACTED) - 1;
	return 1;
}

/* An Any is opened, redacted inside and packed again if anything changed. One of a type this
 * build does not know cannot hold a marked field, unless it sits under one itself: then its
 * value goes whole. */
static int redact_any(Google__Protobuf__Any *any, bool all, int depth)
{
	ProtobufCMessage *inner;
	struct jtree_err err;
	int n;

	if (pbjson_any_unpack(&any->base, &inner, &err)) {
		const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
			any->base.descriptor, "value");

		return all ? redact_bytes(&any->value, f) : 0;
	}
	n = redact_msg(inner, all, depth + 1);
	if (n > 0) {
		size_t size = protobuf_c_message_get_packed_size(inner);
		uint8_t *buf = malloc(size ? size : 1);

		if (buf) {
			free(any->value.data);
			any->value.data = buf;
			any->value.len = protobuf_c_message_pack(inner, buf);
		} else {
			n = -ENOMEM;
		}
	}
	msg_free(inner);
	return n;
}

/* Returns how many values were replaced, or -ENOMEM. */
static int redact_msg(ProtobufCMessage *m, bool all, int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	int total = 0;

	if (depth > PBJSON_MAX_DEPTH)
		return 0;
	if (d == &google__protobuf__any__descriptor)
		return redact_any((Google__Protobuf__Any *)m, all, depth);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		char *base = (char *)m;
		bool under = all || is_sensitive(d, f);
		size_t n = 1;
		char *elems;
		size_t size;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING &&
		    f->type != PROTOBUF_C_TYPE_BYTES)
			continue;
		if (f->type != PROTOBUF_C_TYPE_MESSAGE && !under)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			n = *(const size_t *)(base + f->quantifier_offset);
			elems = *(char **)(base + f->offset);
		} else {
			elems = base + f->offset;
		}
		size = f->type == PROTOBUF_C_TYPE_BYTES ? sizeof(ProtobufCBinaryData)
							: sizeof(void *);
		for (size_t k = 0; k < n; k++) {
			void *slot = elems + k * size;
			int r;

			if (f->type == PROTOBUF_C_TYPE_STRING)
				r = redact_str(slot, f);
			else if (f->type == PROTOBUF_C_TYPE_BYTES)
				r = redact_bytes(slot, f);
			else
				r = *(ProtobufCMessage **)slot
					    ? redact_msg(*(ProtobufCMessage **)slot, under,
							 depth + 1)
					    : 0;
			if (r < 0)
				return r;
			total += r;
		}
	}
	return total;
}

int config_dump_redact(ProtobufCMessage *m)
{
	int n = redact_msg(m, false, 0);

	return n < 0 ? n : 0;
}

/* -1 for all sections, XDS_NTYPES for the bootstrap, a type, or -2 if unknown. */
static int parse_type(const char *type)
{
	static const char *const envoy_names[XDS_NTYPES] = {
		[XDS_LISTENER] = "ListenersConfigDump", [XDS_ROUTE] = "RoutesConfigDump",
		[XDS_CLUSTER] = "ClustersConfigDump",	[XDS_ENDPOINT] = "EndpointsConfigDump",
		[XDS_SECRET] = "SecretsConfigDump",
	};
	const char *bare;

	if (!type || !*type)
		return -1;
	bare = !strncmp(type, "envoy.admin.v3.", 15) ? type + 15 : type;
	if (!strcasecmp(type, "bootstrap") || !strcmp(bare, "BootstrapConfigDump"))
		return XDS_NTYPES;
	for (int t = 0; t < XDS_NTYPES; t++)
		if (!strcasecmp(type, sections[t].name) || !strcmp(bare, envoy_names[t]))
			return t;
	return -2;
}

int config_dump_build(const struct xds_config *cfg, const char *type, ProtobufCMessage **out)
{
	ProtobufCMessage *dump, *section = NULL;
	int only = parse_type(type), rc = 0;

	*out = NULL;
	if (only == -2)
		return -EINVAL;
	dump = msg_new(&envoy__admin__v3__config_dump__descriptor);
	if (!dump)
		return -ENOMEM;
	if (only == -1 || only == XDS_NTYPES) {
		rc = build_bootstrap(cfg, &section);
		if (!rc)
			rc = append_msg(dump, "configs", any_of(section));
		msg_free(section);
	}
	for (size_t i = 0; i < sizeof(section_order) / sizeof(section_order[0]) && !rc; i++) {
		enum xds_type t = section_order[i];

		if (only != -1 && only != (int)t)
			continue;
		rc = build_section(cfg, t, &section);
		if (!rc)
			rc = append_msg(dump, "configs", any_of(section));
		msg_free(section);
		section = NULL;
	}
	if (!rc)
		rc = config_dump_redact(dump);
	if (rc) {
		msg_free(dump);
		return rc;
	}
	*out = dump;
	return 0;
}

int config_dump_render(const struct xds_config *cfg, const char *type, struct strbuf *out,
		       struct jtree_err *err)
{
	ProtobufCMessage *dump;
	int rc;

	memset(err, 0, sizeof(*err));
	rc = config_dump_build(cfg, type, &dump);
	if (rc == -EINVAL) {
		snprintf(err->msg, sizeof(err->msg), "unknown config type \"%s\" (one of %s)", type,
			 CONFIG_DUMP_TYPES);
		return rc;
	}
	if (rc) {
		snprintf(err->msg, sizeof(err->msg), "out of memory building the config dump");
		return rc;
	}
	rc = pbjson_render(dump, PBJSON_PRETTY | PBJSON_OPAQUE_ANY, out, err);
	if (!rc)
		rc = strbuf_addc(out, '\n');
	msg_free(dump);
	return rc;
}
