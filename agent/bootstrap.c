/* Bootstrap loading: decode, check beyond the schema, add static resources the way ADS does. */
#include "agent/bootstrap.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/pbjson.h"
#include "lib/strbuf.h"

typedef Envoy__Config__Bootstrap__V3__Bootstrap Bootstrap;
typedef Envoy__Config__Core__V3__ConfigSource ConfigSource;
typedef Envoy__Config__Core__V3__ApiConfigSource ApiConfigSource;
typedef Envoy__Config__Listener__V3__Listener Listener;

static int berr(struct jtree_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int berr(struct jtree_err *err, const char *fmt, ...)
{
	va_list ap;

	memset(err, 0, sizeof(*err));
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static const ApiConfigSource *ads_config(const Bootstrap *b)
{
	return b->dynamic_resources ? b->dynamic_resources->ads_config : NULL;
}

const char *bootstrap_ads_cluster(const struct xds_config *cfg)
{
	const Bootstrap *b = bootstrap_of(cfg);
	const ApiConfigSource *ads = b ? ads_config(b) : NULL;

	if (!ads || !ads->n_grpc_services)
		return NULL;
	return ads->grpc_services[0]->envoy_grpc->cluster_name;
}

/* lds_config / cds_config: only "ads: {}" is supported, and it needs ads_config. */
static int check_via_ads(const Bootstrap *b, const ConfigSource *cs, const char *field,
			 struct jtree_err *err)
{
	if (!cs)
		return 0;
	if (cs->config_source_specifier_case !=
	    ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS)
		return berr(err, "dynamic_resources.%s: only ADS is supported (%s: {ads: {}})",
			    field, field);
	if (!ads_config(b))
		return berr(err,
			    "dynamic_resources.%s: uses ADS but dynamic_resources.ads_config is "
			    "missing",
			    field);
	return 0;
}

static int check_dynamic(const Bootstrap *b, struct jtree_err *err)
{
	const ApiConfigSource *ads = ads_config(b);
	const Envoy__Config__Core__V3__GrpcService *gs;
	int rc;

	if (ads) {
		if (ads->api_type != ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__GRPC &&
		    ads->api_type !=
			    ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__DELTA_GRPC)
			return berr(err, "dynamic_resources.ads_config.api_type: must be GRPC or "
					 "DELTA_GRPC");
		if (ads->n_grpc_services != 1)
			return berr(err,
				    "dynamic_resources.ads_config.grpc_services: exactly one is "
				    "needed");
		gs = ads->grpc_services[0];
		if (gs->target_specifier_case !=
			    ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_ENVOY_GRPC ||
		    !gs->envoy_grpc->cluster_name || !*gs->envoy_grpc->cluster_name)
			return berr(err, "dynamic_resources.ads_config.grpc_services[0]: needs "
					 "envoy_grpc.cluster_name (google_grpc is not supported)");
		if (!b->node || !b->node->id || !*b->node->id)
			return berr(err, "node.id: required when ADS is configured");
	}
	if (!b->dynamic_resources)
		return 0;
	rc = check_via_ads(b, b->dynamic_resources->lds_config, "lds_config", err);
	if (!rc)
		rc = check_via_ads(b, b->dynamic_resources->cds_config, "cds_config", err);
	return rc;
}

static int check_admin(const Bootstrap *b, struct jtree_err *err)
{
	const Envoy__Config__Core__V3__SocketAddress *sa;

	if (!b->admin || !b->admin->address ||
	    b->admin->address->address_case !=
		    ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS)
		return 0;
	sa = b->admin->address->socket_address;
	if (sa->port_value < XDS_PORT_MIN || sa->port_value > XDS_PORT_MAX)
		return berr(err,
			    "admin.address.socket_address.port_value: %u is out of range %d..%d",
			    sa->port_value, XDS_PORT_MIN, XDS_PORT_MAX);
	return 0;
}

/* Packs a static resource into an Any and takes it back through the ADS decoding path, so that
 * static and dynamic resources are checked and stored the same way. */
static int add_static(struct xds_config *cfg, const ProtobufCMessage *msg, const char *section,
		      size_t index, const struct timespec *now, struct jtree_err *err)
{
	ProtobufCMessage *any, *copy;
	enum xds_type t;
	char who[JTREE_ERR_MAX / 2];
	int rc;

	rc = pbjson_any_pack(msg, &any);
	if (rc)
		return berr(err, "out of memory");
	rc = xds_resource_from_any(any, &t, &copy, err);
	protobuf_c_message_free_unpacked(any, NULL);
	if (rc)
		return rc;
	if (t == XDS_LISTENER && xds_listener_name_static((Listener *)copy, index)) {
		protobuf_c_message_free_unpacked(copy, NULL);
		return berr(err, "out of memory");
	}
	snprintf(who, sizeof(who), "static_resources.%s[%zu] (%s \"%s\")", section, index,
		 xds_types[t].noun, xds_resource_name(t, copy));
	rc = xds_config_add(cfg, t, copy, "", 1, now, who, err);
	if (rc)
		protobuf_c_message_free_unpacked(copy, NULL);
	return rc;
}

static int add_static_resources(struct xds_config *cfg, const Bootstrap *b, struct jtree_err *err)
{
	const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = b->static_resources;
	struct timespec now;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &now);
	cfg->bootstrap_loaded = now;
	if (!sr)
		return 0;
	for (size_t i = 0; i < sr->n_clusters && !rc; i++)
		rc = add_static(cfg, &sr->clusters[i]->base, "clusters", i, &now, err);
	for (size_t i = 0; i < sr->n_listeners && !rc; i++)
		rc = add_static(cfg, &sr->listeners[i]->base, "listeners", i, &now, err);
	for (size_t i = 0; i < sr->n_secrets && !rc; i++)
		rc = add_static(cfg, &sr->secrets[i]->base, "secrets", i, &now, err);
	return rc;
}

static int check_ads_cluster(const struct xds_config *cfg, struct jtree_err *err)
{
	const char *name = bootstrap_ads_cluster(cfg);

	if (name && !xds_config_find(cfg, XDS_CLUSTER, name))
		return berr(err,
			    "dynamic_resources.ads_config: cluster \"%s\" is not a static "
			    "cluster",
			    name);
	return 0;
}

int bootstrap_parse(const char *text, size_t len, struct xds_config **out, struct jtree_err *err)
{
	struct xds_config *cfg;
	ProtobufCMessage *msg;
	const Bootstrap *b;
	int rc, ads, lds, cds;

	*out = NULL;
	/* Unknown typed_config types are kept here; the filter checks decide about them. */
	rc = pbjson_parse(text, len, &envoy__config__bootstrap__v3__bootstrap__descriptor,
			  PBJSON_OPAQUE_ANY, &msg, err);
	if (rc)
		return rc;
	b = (const Bootstrap *)msg;
	cfg = xds_config_new();
	if (!cfg) {
		protobuf_c_message_free_unpacked(msg, NULL);
		berr(err, "out of memory");
		return -ENOMEM;
	}
	cfg->bootstrap = msg;
	rc = check_dynamic(b, err);
	if (!rc)
		rc = check_admin(b, err);
	if (!rc) {
		ads = ads_config(b) != NULL;
		lds = ads && b->dynamic_resources->lds_config;
		cds = ads && b->dynamic_resources->cds_config;
		cfg->dynamic[XDS_LISTENER] = lds;
		cfg->dynamic[XDS_CLUSTER] = cds;
		cfg->dynamic[XDS_ROUTE] = ads;
		cfg->dynamic[XDS_ENDPOINT] = ads;
		cfg->dynamic[XDS_SECRET] = ads;
		rc = add_static_resources(cfg, b, err);
	}
	if (!rc)
		rc = xds_config_seal(cfg, err);
	if (!rc)
		rc = check_ads_cluster(cfg, err);
	if (rc) {
		xds_config_free(cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

/* "line 3, column 7: " as jtree puts it before a syntax error; the file form replaces it. */
static const char *strip_position(const char *msg)
{
	const char *p = strstr(msg, ": ");

	if (strncmp(msg, "line ", 5) != 0 || !p)
		return msg;
	return p + 2;
}

int bootstrap_load(const char *path, struct xds_config **out, struct jtree_err *err)
{
	struct strbuf text = STRBUF_INIT;
	struct jtree_err e;
	char chunk[65536];
	FILE *f;
	size_t n;
	int rc = 0;

	*out = NULL;
	memset(err, 0, sizeof(*err));
	f = fopen(path, "r");
	if (!f) {
		rc = -errno;
		snprintf(err->msg, sizeof(err->msg), "%s: %s", path, strerror(-rc));
		return rc;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (text.len + n > JTREE_MAX_INPUT) {
			rc = -EFBIG;
			break;
		}
		if (strbuf_add(&text, chunk, n)) {
			rc = -ENOMEM;
			break;
		}
	}
	if (!rc && ferror(f))
		rc = -EIO;
	fclose(f);
	if (rc) {
		snprintf(err->msg, sizeof(err->msg), "%s: %s", path,
			 rc == -EFBIG ? "larger than the limit for a config file" : strerror(-rc));
		strbuf_release(&text);
		return rc;
	}
	rc = bootstrap_parse(strbuf_str(&text), text.len, out, &e);
	strbuf_release(&text);
	if (rc) {
		struct strbuf msg = STRBUF_INIT;

		*err = e;
		if (e.line)
			strbuf_addf(&msg, "%s:%u:%u: %s", path, e.line, e.column,
				    strip_position(e.msg));
		else
			strbuf_addf(&msg, "%s: %s", path, e.msg);
		/* Cut to fit, keeping the start: file, position and path come first. */
		snprintf(err->msg, sizeof(err->msg), "%.*s", (int)(sizeof(err->msg) - 1),
			 strbuf_str(&msg));
		strbuf_release(&msg);
	}
	return rc;
}

int bootstrap_node_value_check(const char *flag, const char *v, char *err, size_t errlen)
{
	if (!*v) {
		snprintf(err, errlen, "%s: must not be empty", flag);
		return -EINVAL;
	}
	if (strlen(v) > BOOTSTRAP_NODE_FIELD_MAX) {
		snprintf(err, errlen, "%s: longer than %d bytes", flag, BOOTSTRAP_NODE_FIELD_MAX);
		return -EINVAL;
	}
	for (const char *p = v; *p; p++) {
		if (*p < 0x21 || *p > 0x7e) {
			snprintf(err, errlen, "%s: must be printable ASCII without spaces", flag);
			return -EINVAL;
		}
	}
	return 0;
}

/* Replaces a protobuf-c string field: the empty default is static, anything else is ours. */
static int set_pb_string(char **field, const char *v)
{
	char *copy = strdup(v);

	if (!copy)
		return -ENOMEM;
	if (*field && *field != protobuf_c_empty_string)
		free(*field);
	*field = copy;
	return 0;
}

int bootstrap_set_node(struct xds_config *cfg, const char *id, const char *cluster,
		       const char *zone, char *err, size_t errlen)
{
	Envoy__Config__Bootstrap__V3__Bootstrap *b =
		(Envoy__Config__Bootstrap__V3__Bootstrap *)cfg->bootstrap;
	const struct {
		const char *flag, *value;
	} in[] = {{"--service-node", id}, {"--service-cluster", cluster}, {"--service-zone", zone}};
	Envoy__Config__Core__V3__Node *n;

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		if (in[i].value && bootstrap_node_value_check(in[i].flag, in[i].value, err, errlen))
			return -EINVAL;
	if (!b || (!id && !cluster && !zone))
		return 0;
	if (!b->node) {
		b->node = calloc(1, sizeof(*b->node));
		if (!b->node)
			return -ENOMEM;
		envoy__config__core__v3__node__init(b->node);
	}
	n = b->node;
	if (zone && !n->locality) {
		n->locality = calloc(1, sizeof(*n->locality));
		if (!n->locality)
			return -ENOMEM;
		envoy__config__core__v3__locality__init(n->locality);
	}
	if ((id && set_pb_string(&n->id, id)) || (cluster && set_pb_string(&n->cluster, cluster)) ||
	    (zone && set_pb_string(&n->locality->zone, zone)))
		return -ENOMEM;
	return 0;
}
