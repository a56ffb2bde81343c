/* xDS resource checks beyond the schema, and the sealed, name-indexed set of active resources. */
#include "agent/xdsres.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/pbjson.h"
#include "agent/pbreg.h"
#include "lib/log.h"
#include "lib/strbuf.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "udpa/type/v1/typed_struct.pb-c.h"

typedef Envoy__Config__Listener__V3__Listener Listener;
typedef Envoy__Config__Listener__V3__FilterChain FilterChain;
typedef Envoy__Config__Listener__V3__Filter Filter;
typedef Envoy__Config__Route__V3__RouteConfiguration RouteConfiguration;
typedef Envoy__Config__Route__V3__VirtualHost VirtualHost;
typedef Envoy__Config__Route__V3__RouteAction RouteAction;
typedef Envoy__Config__Cluster__V3__Cluster Cluster;
typedef Envoy__Config__Endpoint__V3__ClusterLoadAssignment ClusterLoadAssignment;
typedef Envoy__Config__Core__V3__Address Address;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager Hcm;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter HttpFilter;
typedef Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy TcpProxy;
typedef Envoy__Extensions__TransportSockets__Tls__V3__Secret Secret;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig SdsSecretConfig;
typedef Envoy__Config__Core__V3__ConfigSource ConfigSource;
typedef Google__Protobuf__Any Any;

#define URL_PREFIX PBREG_TYPE_URL_PREFIX

const struct xds_type_info xds_types[XDS_NTYPES] = {
	[XDS_LISTENER] = {URL_PREFIX "envoy.config.listener.v3.Listener", "listener", "listeners",
			  &envoy__config__listener__v3__listener__descriptor, XDS_MAX_LISTENERS},
	[XDS_ROUTE] = {URL_PREFIX "envoy.config.route.v3.RouteConfiguration", "route configuration",
		       "routes", &envoy__config__route__v3__route_configuration__descriptor,
		       XDS_MAX_ROUTES},
	[XDS_CLUSTER] = {URL_PREFIX "envoy.config.cluster.v3.Cluster", "cluster", "clusters",
			 &envoy__config__cluster__v3__cluster__descriptor, XDS_MAX_CLUSTERS},
	[XDS_ENDPOINT] = {URL_PREFIX "envoy.config.endpoint.v3.ClusterLoadAssignment",
			  "endpoint assignment", "endpoints",
			  &envoy__config__endpoint__v3__cluster_load_assignment__descriptor,
			  XDS_MAX_ENDPOINTS},
	[XDS_SECRET] = {URL_PREFIX "envoy.extensions.transport_sockets.tls.v3.Secret", "secret",
			"secrets",
			&envoy__extensions__transport_sockets__tls__v3__secret__descriptor,
			XDS_MAX_SECRETS},
};

/* Filters shuntd's proxy implements, or has committed to in DESIGN.md; anything else is refused
 * (or, for an HTTP filter marked is_optional, dropped). The proxy owns this list. */
enum filter_kind {
	FILTER_LISTENER,
	FILTER_NETWORK,
	FILTER_HTTP,
};

static const struct known_filter {
	enum filter_kind kind;
	const char *type; /* full message name of its typed_config */
	const char *name; /* Envoy's well-known name, for filters given without typed_config */
	int terminal;	  /* must come last in its chain */
} known_filters[] = {
	{FILTER_LISTENER, "envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
	 "envoy.filters.listener.original_dst", 0},
	{FILTER_LISTENER, "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
	 "envoy.filters.listener.tls_inspector", 0},
	{FILTER_LISTENER, "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
	 "envoy.filters.listener.http_inspector", 0},
	{FILTER_NETWORK, "envoy.extensions.filters.network.rbac.v3.RBAC",
	 "envoy.filters.network.rbac", 0},
	{FILTER_NETWORK,
	 "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
	 "envoy.filters.network.http_connection_manager", 1},
	{FILTER_NETWORK, "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
	 "envoy.filters.network.tcp_proxy", 1},
	{FILTER_HTTP, "envoy.extensions.filters.http.fault.v3.HTTPFault",
	 "envoy.filters.http.fault", 0},
	{FILTER_HTTP, "envoy.extensions.filters.http.rbac.v3.RBAC", "envoy.filters.http.rbac", 0},
	{FILTER_HTTP, "envoy.extensions.filters.http.router.v3.Router", "envoy.filters.http.router",
	 1},
};

static const char *const filter_kind_names[] = {"listener", "network", "HTTP"};

/* Istio's telemetry and metadata extensions: they count, tag and exchange peer metadata but never
 * change where traffic goes or whether it is allowed, so a filter of one of these types (or, for
 * the generic wasm / TypedStruct wrappers, of one of these names) is dropped with a warning
 * instead of NACKing the resource. Security filters (RBAC beyond the known list, ext_authz,
 * jwt_authn, ...) are never on it: unknown ones stay errors unless marked is_optional. */
static const char *const telemetry_types[] = {
	"stats.PluginConfig",
	"envoy.tcp.metadataexchange.config.MetadataExchange",
	"envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
	"istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig",
	"envoy.extensions.filters.network.set_filter_state.v3.Config",
	/* Not telemetry, but inert unless a virtual host or route carries a CORS policy, which
	 * xds_snapshot.c refuses; istiod inserts it into every HTTP listener. */
	"envoy.extensions.filters.http.cors.v3.Cors",
	/* Istio's peer authentication network filter: it only records the peer's and our own
	 * SPIFFE principals (from the mTLS handshake) for later authorization and telemetry
	 * filters to read. Forwarding does not depend on it, and mTLS itself is enforced by the
	 * chain's DownstreamTlsContext, which the proxy honours. */
	"io.istio.network.authn.Config",
};
static const char *const telemetry_names[] = {
	"istio.stats",
	"istio.metadata_exchange",
	"istio.alpn",
	"envoy.filters.http.grpc_stats",
	"envoy.filters.network.metadata_exchange",
	"envoy.filters.http.peer_metadata",
	"envoy.filters.network.peer_metadata",
};

static const char *type_name_of(const char *type_url)
{
	const char *slash = strrchr(type_url, '/');

	return slash ? slash + 1 : type_url;
}

/* The message type a TypedStruct wrapper (udpa.type.v1 or xds.type.v3: the same wire form)
 * stands for, into buf; NULL if typed is not one or does not decode. */
static const char *typed_struct_type(const Any *typed, char *buf, size_t len)
{
	const char *type = type_name_of(typed->type_url);
	Udpa__Type__V1__TypedStruct *ts;

	if (strcmp(type, "udpa.type.v1.TypedStruct") && strcmp(type, "xds.type.v3.TypedStruct"))
		return NULL;
	ts = udpa__type__v1__typed_struct__unpack(NULL, typed->value.len, typed->value.data);
	if (!ts)
		return NULL;
	snprintf(buf, len, "%s", type_name_of(ts->type_url ? ts->type_url : ""));
	udpa__type__v1__typed_struct__free_unpacked(ts, NULL);
	return buf;
}

/* Whether a filter is one of Istio's telemetry extensions (see telemetry_types). */
static int is_telemetry_filter(const char *name, const Any *typed)
{
	const char *type = typed && typed->type_url ? type_name_of(typed->type_url) : NULL;
	char inner[256];

	if (type && typed_struct_type(typed, inner, sizeof(inner)))
		type = inner;

	for (size_t i = 0; type && i < sizeof(telemetry_types) / sizeof(telemetry_types[0]); i++)
		if (!strcmp(type, telemetry_types[i]))
			return 1;
	for (size_t i = 0; name && i < sizeof(telemetry_names) / sizeof(telemetry_names[0]); i++)
		if (!strcmp(name, telemetry_names[i]))
			return 1;
	return 0;
}

int xds_type_from_url(const char *type_url)
{
	const char *name = type_name_of(type_url);

	for (int t = 0; t < XDS_NTYPES; t++)
		if (!strcmp(name, xds_types[t].desc->name))
			return t;
	return -1;
}

const char *xds_resource_name(enum xds_type t, const ProtobufCMessage *msg)
{
	const char *name = NULL;

	switch (t) {
	case XDS_LISTENER:
		name = ((const Listener *)msg)->name;
		break;
	case XDS_ROUTE:
		name = ((const RouteConfiguration *)msg)->name;
		break;
	case XDS_CLUSTER:
		name = ((const Cluster *)msg)->name;
		break;
	case XDS_ENDPOINT:
		name = ((const ClusterLoadAssignment *)msg)->cluster_name;
		break;
	case XDS_SECRET:
		name = ((const Secret *)msg)->name;
		break;
	case XDS_NTYPES:
		break;
	}
	return name ? name : "";
}

/* ---- checking one resource ------------------------------------------------------------------ */

struct vctx {
	const char *who;
	struct strbuf path;
	struct jtree_err *err;
	unsigned *warnings;
	struct xds_ref *refs;
	size_t n_refs, cap_refs;
};

static int verr(struct vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int verr(struct vctx *v, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(v->err->msg, sizeof(v->err->msg), "%s: %s%s", v->who, strbuf_str(&v->path),
		     v->path.len ? ": " : "");
	if (n >= (int)sizeof(v->err->msg))
		n = (int)sizeof(v->err->msg) - 1;
	va_start(ap, fmt);
	vsnprintf(v->err->msg + n, sizeof(v->err->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	v->err->line = v->err->column = 0;
	return -EINVAL;
}

static int vnomem(struct vctx *v)
{
	snprintf(v->err->msg, sizeof(v->err->msg), "%s: out of memory", v->who);
	return -ENOMEM;
}

static size_t vpush(struct vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t vpush(struct vctx *v, const char *fmt, ...)
{
	size_t mark = v->path.len;
	char seg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(seg, sizeof(seg), fmt, ap);
	va_end(ap);
	if (mark && seg[0] != '[')
		strbuf_addc(&v->path, '.');
	strbuf_adds(&v->path, seg);
	return mark;
}

static void vpop(struct vctx *v, size_t mark)
{
	strbuf_truncate(&v->path, mark);
}

static int add_ref_kind(struct vctx *v, enum xds_type t, const char *name, int static_only)
{
	struct xds_ref *r;

	if (v->n_refs == v->cap_refs) {
		size_t cap = v->cap_refs ? v->cap_refs * 2 : 4;

		r = realloc(v->refs, cap * sizeof(*r));
		if (!r)
			return vnomem(v);
		v->refs = r;
		v->cap_refs = cap;
	}
	r = &v->refs[v->n_refs];
	r->type = t;
	r->static_only = static_only;
	r->name = strdup(name);
	r->where = strdup(strbuf_str(&v->path));
	if (!r->name || !r->where) {
		free(r->name);
		free(r->where);
		return vnomem(v);
	}
	v->n_refs++;
	return 0;
}

static int add_ref(struct vctx *v, enum xds_type t, const char *name)
{
	return add_ref_kind(v, t, name, 0);
}

/* A transport socket's SdsSecretConfig, wherever it sits (DownstreamTlsContext,
 * UpstreamTlsContext, CommonTlsContext's certificate and validation configs): without
 * sds_config the secret must be a static one; with sds_config ads it is subscribed over ADS.
 * Any other source (Istio's api_config_source to its "sds-grpc" agent) is a stream shuntd does
 * not open: the reference is kept out of the subscriptions and the resource waits for a static
 * or ADS secret of that name, as an Envoy listener warms until its secret arrives. */
static int check_sds_ref(struct vctx *v, const SdsSecretConfig *s)
{
	const ConfigSource *src = s->sds_config;

	if (!s->name || !*s->name)
		return verr(v, "name: an SDS secret reference needs a name");
	if (!src)
		return add_ref_kind(v, XDS_SECRET, s->name, 1);
	if (src->config_source_specifier_case ==
	    ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS)
		return add_ref(v, XDS_SECRET, s->name);
	pr_warn("%s: %s: secret \"%s\" is to come from an SDS source other than ADS, which "
		"shuntd does not subscribe to; it stays unready until a static or ADS secret of "
		"that name exists",
		v->who, strbuf_str(&v->path), s->name);
	(*v->warnings)++;
	return 0;
}

void xds_refs_free(struct xds_ref *refs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(refs[i].name);
		free(refs[i].where);
	}
	free(refs);
}

static int check_address(struct vctx *v, const Address *a, int need_socket)
{
	const Envoy__Config__Core__V3__SocketAddress *sa;
	size_t mark;

	if (a->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS)
		return need_socket ? verr(v, "expected a socket_address") : 0;
	sa = a->socket_address;
	mark = vpush(v, "socket_address");
	if (!sa->address || !*sa->address)
		return verr(v, "address is required");
	if (sa->port_specifier_case ==
	    ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_NAMED_PORT)
		return verr(v, "named_port is not supported; give port_value");
	if (sa->port_value < XDS_PORT_MIN || sa->port_value > XDS_PORT_MAX) {
		vpush(v, "port_value");
		return verr(v, "%u is out of range %d..%d", sa->port_value, XDS_PORT_MIN,
			    XDS_PORT_MAX);
	}
	vpop(v, mark);
	return 0;
}

static const struct known_filter *find_known_filter(enum filter_kind kind, const char *type,
						    const char *name)
{
	for (size_t i = 0; i < sizeof(known_filters) / sizeof(known_filters[0]); i++) {
		const struct known_filter *k = &known_filters[i];

		if (k->kind == kind && (type ? !strcmp(k->type, type) : !strcmp(k->name, name)))
			return k;
	}
	return NULL;
}

/* Finds the filter a (name, typed_config) pair stands for; NULL with why set if unknown. */
static const struct known_filter *identify_filter(enum filter_kind kind, const char *name,
						  int has_discovery, const Any *typed, char *why,
						  size_t why_len)
{
	const struct known_filter *k;

	if (has_discovery) {
		snprintf(why, why_len,
			 "%s filter \"%s\" uses config_discovery, which is not supported",
			 filter_kind_names[kind], name);
		return NULL;
	}
	k = find_known_filter(kind, typed ? type_name_of(typed->type_url) : NULL, name);
	if (!k)
		snprintf(why, why_len, "unsupported %s filter \"%s\"%s%s%s",
			 filter_kind_names[kind], name, typed ? " (" : "",
			 typed ? typed->type_url : "", typed ? ")" : "");
	return k;
}

static int check_route_config(struct vctx *v, const RouteConfiguration *rc);

static int check_cluster_name_ref(struct vctx *v, const char *name)
{
	if (!name || !*name)
		return verr(v, "a cluster name is required");
	return add_ref(v, XDS_CLUSTER, name);
}

/* Unpacks a filter's typed_config as the message it must be. */
static int unpack_typed(struct vctx *v, const Any *typed, ProtobufCMessage **out)
{
	struct jtree_err e;

	if (pbjson_any_unpack(&typed->base, out, &e))
		return verr(v, "typed_config: %s", e.msg);
	return 0;
}

static int repack_typed(struct vctx *v, Any *typed, const ProtobufCMessage *msg)
{
	size_t size = protobuf_c_message_get_packed_size(msg);
	uint8_t *data = malloc(size ? size : 1);

	if (!data)
		return vnomem(v);
	free(typed->value.data);
	typed->value.data = data;
	typed->value.len = protobuf_c_message_pack(msg, data);
	return 0;
}

static int check_hcm(struct vctx *v, Any *typed)
{
	const struct known_filter *last = NULL;
	ProtobufCMessage *msg;
	Hcm *hcm;
	size_t kept = 0, mark, m2, i;
	int rc, dropped = 0;

	rc = unpack_typed(v, typed, &msg);
	if (rc)
		return rc;
	hcm = (Hcm *)msg;
	mark = vpush(v, "typed_config");
	switch (hcm->route_specifier_case) {
	case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS:
		m2 = vpush(v, "rds.route_config_name");
		if (!hcm->rds->route_config_name || !*hcm->rds->route_config_name)
			rc = verr(v, "a route configuration name is required");
		else
			rc = add_ref(v, XDS_ROUTE, hcm->rds->route_config_name);
		break;
	case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG:
		m2 = vpush(v, "route_config");
		rc = check_route_config(v, hcm->route_config);
		break;
	default:
		m2 = v->path.len;
		rc = verr(v, "needs rds or route_config (scoped_routes is not supported)");
		break;
	}
	if (!rc)
		vpop(v, m2);
	for (i = 0; i < hcm->n_http_filters && !rc; i++) {
		HttpFilter *f = hcm->http_filters[i];
		const struct known_filter *k;
		char why[JTREE_ERR_MAX / 2];

		m2 = vpush(v, "http_filters[%zu]", i);
		k = identify_filter(
			FILTER_HTTP, f->name ? f->name : "",
			f->config_type_case ==
				ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_CONFIG_DISCOVERY,
			f->config_type_case ==
					ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG
				? f->typed_config
				: NULL,
			why, sizeof(why));
		if (!k &&
		    (f->is_optional ||
		     is_telemetry_filter(
			     f->name,
			     f->config_type_case ==
					     ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG
				     ? f->typed_config
				     : NULL))) {
			pr_warn("%s: %s: %s; skipped (%s)", v->who, strbuf_str(&v->path), why,
				f->is_optional ? "is_optional" : "telemetry only");
			(*v->warnings)++;
			protobuf_c_message_free_unpacked(&f->base, NULL);
			dropped = 1;
			vpop(v, m2);
			continue;
		}
		/* Kept even on error, so that freeing the message frees it too. */
		hcm->http_filters[kept++] = f;
		if (!k)
			rc = verr(v, "%s (mark it is_optional: true to run without it)", why);
		else if (k->terminal && i + 1 != hcm->n_http_filters)
			rc = verr(v, "%s must be the last HTTP filter", k->name);
		last = k;
		if (!rc)
			vpop(v, m2);
	}
	/* After a failure the filters not yet visited stay too, so freeing the message frees
	 * each filter once. */
	for (; i < hcm->n_http_filters; i++)
		hcm->http_filters[kept++] = hcm->http_filters[i];
	hcm->n_http_filters = kept;
	if (!rc && (!last || !last->terminal))
		rc = verr(v, "http_filters must end with the router (envoy.filters.http.router)");
	if (!rc && dropped)
		rc = repack_typed(v, typed, msg);
	if (!rc)
		vpop(v, mark);
	protobuf_c_message_free_unpacked(msg, NULL);
	return rc;
}

static int check_tcp_proxy(struct vctx *v, const Any *typed)
{
	ProtobufCMessage *msg;
	TcpProxy *tp;
	size_t mark;
	int rc;

	rc = unpack_typed(v, typed, &msg);
	if (rc)
		return rc;
	tp = (TcpProxy *)msg;
	mark = vpush(v, "typed_config");
	if (tp->cluster_specifier_case ==
	    ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER) {
		vpush(v, "cluster");
		rc = check_cluster_name_ref(v, tp->cluster);
	} else if (
		tp->cluster_specifier_case ==
		ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS) {
		for (size_t i = 0; i < tp->weighted_clusters->n_clusters && !rc; i++) {
			size_t m2 = vpush(v, "weighted_clusters.clusters[%zu].name", i);

			rc = check_cluster_name_ref(v, tp->weighted_clusters->clusters[i]->name);
			vpop(v, m2);
		}
	} else {
		rc = verr(v, "needs cluster or weighted_clusters");
	}
	vpop(v, mark);
	protobuf_c_message_free_unpacked(msg, NULL);
	return rc;
}

/* Drops Istio's telemetry network filters from a chain, with a warning each. */
static void drop_telemetry_filters(struct vctx *v, FilterChain *fc)
{
	size_t kept = 0;

	for (size_t i = 0; i < fc->n_filters; i++) {
		Filter *f = fc->filters[i];

		if (f->config_type_case ==
			    ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG &&
		    is_telemetry_filter(f->name, f->typed_config)) {
			pr_warn("%s: %s.filters[%zu]: network filter \"%s\" (%s) only records "
				"telemetry or peer identity; skipped",
				v->who, strbuf_str(&v->path), i, f->name ? f->name : "",
				f->typed_config->type_url ? f->typed_config->type_url : "");
			(*v->warnings)++;
			protobuf_c_message_free_unpacked(&f->base, NULL);
			continue;
		}
		fc->filters[kept++] = f;
	}
	fc->n_filters = kept;
}

static int check_filter_chain(struct vctx *v, FilterChain *fc)
{
	int rc = 0;

	drop_telemetry_filters(v, fc);
	if (fc->n_filters == 0)
		return verr(v, "a filter chain needs at least one filter");
	for (size_t i = 0; i < fc->n_filters && !rc; i++) {
		Filter *f = fc->filters[i];
		Any *typed =
			f->config_type_case ==
					ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG
				? f->typed_config
				: NULL;
		const struct known_filter *k;
		char why[JTREE_ERR_MAX / 2];
		size_t mark = vpush(v, "filters[%zu]", i);

		k = identify_filter(
			FILTER_NETWORK, f->name ? f->name : "",
			f->config_type_case ==
				ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_CONFIG_DISCOVERY,
			typed, why, sizeof(why));
		if (!k)
			rc = verr(v, "%s", why);
		else if (k->terminal != (i + 1 == fc->n_filters))
			rc = k->terminal ? verr(v, "%s must be the last network filter", k->name)
					 : verr(v,
						"the last network filter must be "
						"http_connection_manager or tcp_proxy, not %s",
						k->name);
		else if (typed && !strcmp(k->name, "envoy.filters.network.http_connection_manager"))
			rc = check_hcm(v, typed);
		else if (typed && !strcmp(k->name, "envoy.filters.network.tcp_proxy"))
			rc = check_tcp_proxy(v, typed);
		else if (k->terminal && !typed)
			rc = verr(v, "%s needs a typed_config", k->name);
		if (!rc)
			vpop(v, mark);
	}
	return rc;
}

static int check_listener(struct vctx *v, Listener *l)
{
	size_t mark;
	int rc = 0;

	if (!l->name || !*l->name)
		return verr(v, "a listener needs a name");
	if (l->address) {
		mark = vpush(v, "address");
		rc = check_address(v, l->address, 0);
		if (rc)
			return rc;
		vpop(v, mark);
	}
	for (size_t i = 0; i < l->n_listener_filters && !rc; i++) {
		const Envoy__Config__Listener__V3__ListenerFilter *f = l->listener_filters[i];
		char why[JTREE_ERR_MAX / 2];

		mark = vpush(v, "listener_filters[%zu]", i);
		if (!identify_filter(
			    FILTER_LISTENER, f->name ? f->name : "",
			    f->config_type_case ==
				    ENVOY__CONFIG__LISTENER__V3__LISTENER_FILTER__CONFIG_TYPE_CONFIG_DISCOVERY,
			    f->config_type_case ==
					    ENVOY__CONFIG__LISTENER__V3__LISTENER_FILTER__CONFIG_TYPE_TYPED_CONFIG
				    ? f->typed_config
				    : NULL,
			    why, sizeof(why)))
			return verr(v, "%s", why);
		vpop(v, mark);
	}
	for (size_t i = 0; i < l->n_filter_chains && !rc; i++) {
		mark = vpush(v, "filter_chains[%zu]", i);
		rc = check_filter_chain(v, l->filter_chains[i]);
		if (!rc)
			vpop(v, mark);
	}
	if (!rc && l->default_filter_chain) {
		mark = vpush(v, "default_filter_chain");
		rc = check_filter_chain(v, l->default_filter_chain);
		if (!rc)
			vpop(v, mark);
	}
	return rc;
}

struct domain_use {
	const char *domain;
	size_t vhost;
};

static int domain_cmp(const void *a, const void *b)
{
	const struct domain_use *x = a, *y = b;

	return strcasecmp(x->domain, y->domain);
}

static int check_route_action(struct vctx *v, const RouteAction *ra)
{
	int rc = 0;

	switch (ra->cluster_specifier_case) {
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER:
		vpush(v, "cluster");
		return check_cluster_name_ref(v, ra->cluster);
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS:
		for (size_t i = 0; i < ra->weighted_clusters->n_clusters && !rc; i++) {
			const Envoy__Config__Route__V3__WeightedCluster__ClusterWeight *cw =
				ra->weighted_clusters->clusters[i];
			size_t mark = vpush(v, "weighted_clusters.clusters[%zu].name", i);

			/* A weighted entry may name its cluster through a header instead. */
			if (cw->name && *cw->name)
				rc = add_ref(v, XDS_CLUSTER, cw->name);
			vpop(v, mark);
		}
		return rc;
	default:
		return 0; /* cluster_header and plugins resolve per request */
	}
}

static int check_route_config(struct vctx *v, const RouteConfiguration *rc_msg)
{
	struct domain_use *uses = NULL;
	size_t n_uses = 0, total = 0;
	int rc = 0;

	for (size_t i = 0; i < rc_msg->n_virtual_hosts; i++)
		total += rc_msg->virtual_hosts[i]->n_domains;
	if (total) {
		uses = calloc(total, sizeof(*uses));
		if (!uses)
			return vnomem(v);
	}
	for (size_t i = 0; i < rc_msg->n_virtual_hosts && !rc; i++) {
		const VirtualHost *vh = rc_msg->virtual_hosts[i];
		size_t mark = vpush(v, "virtual_hosts[%zu]", i);

		if (!vh->name || !*vh->name)
			rc = verr(v, "a virtual host needs a name");
		else if (!vh->n_domains)
			rc = verr(v, "virtual host \"%s\" needs at least one domain", vh->name);
		for (size_t d = 0; d < vh->n_domains && !rc; d++)
			uses[n_uses++] = (struct domain_use){vh->domains[d], i};
		for (size_t r = 0; r < vh->n_routes && !rc; r++) {
			const Envoy__Config__Route__V3__Route *route = vh->routes[r];
			size_t m2 = vpush(v, "routes[%zu]", r);

			if (route->action_case == ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE) {
				vpush(v, "route");
				rc = check_route_action(v, route->route);
			}
			if (!rc)
				vpop(v, m2);
		}
		if (!rc)
			vpop(v, mark);
	}
	if (!rc && n_uses > 1) {
		qsort(uses, n_uses, sizeof(*uses), domain_cmp);
		for (size_t i = 1; i < n_uses && !rc; i++)
			if (!domain_cmp(&uses[i - 1], &uses[i]))
				rc = verr(v, "domain \"%s\" is in virtual hosts \"%s\" and \"%s\"",
					  uses[i].domain,
					  rc_msg->virtual_hosts[uses[i - 1].vhost]->name,
					  rc_msg->virtual_hosts[uses[i].vhost]->name);
	}
	free(uses);
	return rc;
}

static int check_endpoints(struct vctx *v, const ClusterLoadAssignment *cla)
{
	for (size_t i = 0; i < cla->n_endpoints; i++) {
		const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *le = cla->endpoints[i];

		for (size_t j = 0; j < le->n_lb_endpoints; j++) {
			const Envoy__Config__Endpoint__V3__LbEndpoint *lb = le->lb_endpoints[j];
			size_t mark = vpush(v, "endpoints[%zu].lb_endpoints[%zu]", i, j);
			int rc;

			if (lb->host_identifier_case !=
				    ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT ||
			    !lb->endpoint->address)
				return verr(v, "needs endpoint.address");
			vpush(v, "endpoint.address");
			rc = check_address(v, lb->endpoint->address, 0);
			if (rc)
				return rc;
			vpop(v, mark);
		}
	}
	return 0;
}

static int check_cluster(struct vctx *v, Cluster *c)
{
	size_t mark, kept = 0;
	int rc;

	if (!c->name || !*c->name)
		return verr(v, "a cluster needs a name");
	/* Upstream network filters: only Istio's metadata exchange appears; the proxy runs none. */
	for (size_t i = 0; i < c->n_filters; i++) {
		Envoy__Config__Cluster__V3__Filter *f = c->filters[i];

		if (!is_telemetry_filter(f->name, f->typed_config)) {
			c->filters[kept++] = f;
			continue;
		}
		pr_warn("%s: filters[%zu]: upstream filter \"%s\" is telemetry only; skipped",
			v->who, i, f->name ? f->name : "");
		(*v->warnings)++;
		protobuf_c_message_free_unpacked(&f->base, NULL);
	}
	c->n_filters = kept;
	if (c->n_filters)
		return verr(v, "filters[0]: upstream filter \"%s\" is not supported",
			    c->filters[0]->name ? c->filters[0]->name : "");
	if (c->load_assignment) {
		mark = vpush(v, "load_assignment");
		rc = check_endpoints(v, c->load_assignment);
		if (rc)
			return rc;
		vpop(v, mark);
	}
	if (c->cluster_discovery_type_case ==
		    ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE &&
	    c->type == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS) {
		const char *service = c->eds_cluster_config &&
						      c->eds_cluster_config->service_name &&
						      *c->eds_cluster_config->service_name
					      ? c->eds_cluster_config->service_name
					      : c->name;

		mark = vpush(v, "eds_cluster_config");
		rc = add_ref(v, XDS_ENDPOINT, service);
		if (rc)
			return rc;
		vpop(v, mark);
	}
	return 0;
}

/* Every Any left in a checked resource must be of a type this build knows: an unknown one would
 * be configuration the proxy silently ignores. Known ones are opened and walked in turn. */
static int walk_types(struct vctx *v, const ProtobufCMessage *m, int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	int rc = 0;

	if (depth > PBJSON_MAX_DEPTH)
		return verr(v, "nested deeper than %d messages", PBJSON_MAX_DEPTH);
	if (d == &envoy__extensions__transport_sockets__tls__v3__sds_secret_config__descriptor) {
		rc = check_sds_ref(v, (const SdsSecretConfig *)m);
		if (rc)
			return rc;
	}
	if (d == &google__protobuf__any__descriptor) {
		const Any *any = (const Any *)m;
		ProtobufCMessage *inner;
		struct jtree_err e;

		if ((!any->type_url || !*any->type_url) && !any->value.len)
			return 0;
		if (!pbreg_find(any->type_url ? any->type_url : ""))
			return verr(v, "unsupported extension type \"%s\"",
				    any->type_url ? any->type_url : "");
		if (pbjson_any_unpack(m, &inner, &e))
			return verr(v, "%s", e.msg);
		rc = walk_types(v, inner, depth + 1);
		protobuf_c_message_free_unpacked(inner, NULL);
		return rc;
	}
	for (unsigned i = 0; i < d->n_fields && !rc; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;
		const ProtobufCMessage *const *elems;
		size_t n;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			n = *(const size_t *)(base + f->quantifier_offset);
			elems = *(const ProtobufCMessage *const *const *)(base + f->offset);
		} else {
			if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
			    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
				continue;
			elems = (const ProtobufCMessage *const *)(base + f->offset);
			n = *elems ? 1 : 0;
		}
		for (size_t k = 0; k < n && !rc; k++) {
			size_t mark = f->label == PROTOBUF_C_LABEL_REPEATED
					      ? vpush(v, "%s[%zu]", f->name, k)
					      : vpush(v, "%s", f->name);

			rc = walk_types(v, elems[k], depth + 1);
			if (!rc)
				vpop(v, mark);
		}
	}
	return rc;
}

int xds_resource_check(enum xds_type t, ProtobufCMessage *msg, const char *who, unsigned *warnings,
		       struct xds_ref **refs, size_t *n_refs, struct jtree_err *err)
{
	unsigned spare = 0;
	struct vctx v = {.who = who, .err = err, .warnings = warnings ? warnings : &spare};
	int rc = 0;

	memset(err, 0, sizeof(*err));
	*refs = NULL;
	*n_refs = 0;
	switch (t) {
	case XDS_LISTENER:
		rc = check_listener(&v, (Listener *)msg);
		break;
	case XDS_ROUTE:
		if (!xds_resource_name(t, msg)[0])
			rc = verr(&v, "a route configuration needs a name");
		else
			rc = check_route_config(&v, (RouteConfiguration *)msg);
		break;
	case XDS_CLUSTER:
		rc = check_cluster(&v, (Cluster *)msg);
		break;
	case XDS_ENDPOINT:
		if (!xds_resource_name(t, msg)[0])
			rc = verr(&v, "cluster_name is required");
		else
			rc = check_endpoints(&v, (ClusterLoadAssignment *)msg);
		break;
	case XDS_SECRET:
		if (!xds_resource_name(t, msg)[0])
			rc = verr(&v, "a secret needs a name");
		break;
	case XDS_NTYPES:
		rc = -EINVAL;
		break;
	}
	if (!rc)
		rc = walk_types(&v, msg, 0);
	if (!rc && v.path.err)
		rc = vnomem(&v);
	strbuf_release(&v.path);
	if (rc) {
		xds_refs_free(v.refs, v.n_refs);
		return rc;
	}
	*refs = v.refs;
	*n_refs = v.n_refs;
	return 0;
}

int xds_resource_from_any(const ProtobufCMessage *any, enum xds_type *t, ProtobufCMessage **msg,
			  struct jtree_err *err)
{
	const Any *a = (const Any *)any;
	int type = xds_type_from_url(a->type_url ? a->type_url : "");

	*msg = NULL;
	memset(err, 0, sizeof(*err));
	if (type < 0) {
		snprintf(err->msg, sizeof(err->msg),
			 "\"%s\" is not a resource type shuntd consumes",
			 a->type_url ? a->type_url : "");
		return -EINVAL;
	}
	*t = (enum xds_type)type;
	*msg = protobuf_c_message_unpack(xds_types[type].desc, NULL, a->value.len, a->value.data);
	if (!*msg) {
		snprintf(err->msg, sizeof(err->msg), "a %s that does not decode",
			 xds_types[type].noun);
		return -EINVAL;
	}
	return 0;
}

/* ---- the set -------------------------------------------------------------------------------- */

struct xds_config *xds_config_new(void)
{
	struct xds_config *cfg = calloc(1, sizeof(*cfg));

	if (!cfg)
		return NULL;
	for (int t = 0; t < XDS_NTYPES; t++) {
		cfg->version[t] = strdup("");
		if (!cfg->version[t]) {
			xds_config_free(cfg);
			return NULL;
		}
	}
	return cfg;
}

/* Drops one holder of something shared; true when the caller held the last one. */
static int unshare(unsigned *shared)
{
	if (!shared)
		return 1;
	if (__atomic_sub_fetch(shared, 1, __ATOMIC_ACQ_REL))
		return 0;
	free(shared);
	return 1;
}

static void resource_release(struct xds_resource *r)
{
	if (!unshare(r->shared))
		return;
	free(r->name);
	free(r->version);
	if (r->msg)
		protobuf_c_message_free_unpacked(r->msg, NULL);
	xds_refs_free(r->refs, r->n_refs);
}

static void rejection_release(struct xds_rejection *r)
{
	free(r->name);
	free(r->version);
	free(r->details);
	if (r->failed)
		protobuf_c_message_free_unpacked(r->failed, NULL);
}

void xds_config_free(struct xds_config *cfg)
{
	if (!cfg)
		return;
	if (cfg->bootstrap && unshare(cfg->bootstrap_shared))
		protobuf_c_message_free_unpacked(cfg->bootstrap, NULL);
	for (int t = 0; t < XDS_NTYPES; t++) {
		for (size_t i = 0; i < cfg->n[t]; i++)
			resource_release(&cfg->res[t][i]);
		for (size_t i = 0; i < cfg->n_rejected[t]; i++)
			rejection_release(&cfg->rejected[t][i]);
		free(cfg->res[t]);
		free(cfg->rejected[t]);
		free(cfg->version[t]);
	}
	free(cfg);
}

/* Room for one more resource of type t: doubling, so that building a config of n resources
 * copies O(n) entries (realloc does not always grow in place). */
static struct xds_resource *grow_res(struct xds_config *cfg, enum xds_type t)
{
	struct xds_resource *grown;
	size_t cap;

	if (cfg->n[t] < cfg->cap[t])
		return cfg->res[t];
	cap = cfg->cap[t] ? cfg->cap[t] * 2 : 8;
	grown = realloc(cfg->res[t], cap * sizeof(*grown));
	if (!grown)
		return NULL;
	cfg->res[t] = grown;
	cfg->cap[t] = cap;
	return grown;
}

/* Envoy lets a static listener go unnamed (it makes up a UUID; Istio's bootstrap has two, the
 * 15090 stats and 15021 health listeners). Listeners are known by name here, so it gets one
 * from its address, stable across reloads of the same file: "static_0.0.0.0_15090". LDS
 * listeners still need the name they are subscribed by. */
int xds_listener_name_static(Envoy__Config__Listener__V3__Listener *l, size_t index)
{
	const Envoy__Config__Core__V3__SocketAddress *sa =
		l->address && l->address->address_case ==
					ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS
			? l->address->socket_address
			: NULL;
	char name[160];

	if (l->name && *l->name)
		return 0;
	if (sa && sa->address)
		snprintf(name, sizeof(name), "static_%s_%u", sa->address, sa->port_value);
	else
		snprintf(name, sizeof(name), "static_listener_%zu", index);
	if (l->name && l->name != protobuf_c_empty_string)
		free(l->name);
	l->name = strdup(name);
	return l->name ? 0 : -ENOMEM;
}

int xds_config_add(struct xds_config *cfg, enum xds_type t, ProtobufCMessage *msg,
		   const char *version, int is_static, const struct timespec *when, const char *who,
		   struct jtree_err *err)
{
	struct xds_resource *r, *grown;
	struct xds_ref *refs;
	size_t n_refs;
	char who_buf[JTREE_ERR_MAX / 2];
	int rc;

	if (cfg->sealed) {
		snprintf(err->msg, sizeof(err->msg), "config is sealed");
		return -EINVAL;
	}
	if (!who) {
		snprintf(who_buf, sizeof(who_buf), "%s \"%s\"", xds_types[t].noun,
			 xds_resource_name(t, msg));
		who = who_buf;
	}
	rc = xds_resource_check(t, msg, who, &cfg->warnings, &refs, &n_refs, err);
	if (rc)
		return rc;
	grown = grow_res(cfg, t);
	if (!grown) {
		xds_refs_free(refs, n_refs);
		return -ENOMEM;
	}
	r = &grown[cfg->n[t]];
	memset(r, 0, sizeof(*r));
	r->name = strdup(xds_resource_name(t, msg));
	r->version = strdup(version ? version : "");
	if (!r->name || !r->version) {
		free(r->name);
		free(r->version);
		xds_refs_free(refs, n_refs);
		return -ENOMEM;
	}
	r->msg = msg;
	r->is_static = is_static;
	r->refs = refs;
	r->n_refs = n_refs;
	if (when)
		r->updated = *when;
	else
		clock_gettime(CLOCK_REALTIME, &r->updated);
	cfg->n[t]++;
	return 0;
}

static unsigned *share(unsigned **shared)
{
	if (!*shared) {
		*shared = malloc(sizeof(**shared));
		if (!*shared)
			return NULL;
		**shared = 1;
	}
	__atomic_add_fetch(*shared, 1, __ATOMIC_RELAXED);
	return *shared;
}

int xds_config_add_shared(struct xds_config *cfg, enum xds_type t, struct xds_resource *r)
{
	struct xds_resource *grown;

	if (cfg->sealed)
		return -EINVAL;
	grown = grow_res(cfg, t);
	if (!grown)
		return -ENOMEM;
	if (!share(&r->shared))
		return -ENOMEM;
	grown[cfg->n[t]++] = *r;
	return 0;
}

int xds_config_share_bootstrap(struct xds_config *dst, struct xds_config *src)
{
	memcpy(dst->dynamic, src->dynamic, sizeof(dst->dynamic));
	dst->bootstrap_loaded = src->bootstrap_loaded;
	if (!src->bootstrap)
		return 0;
	if (!share(&src->bootstrap_shared))
		return -ENOMEM;
	dst->bootstrap = src->bootstrap;
	dst->bootstrap_shared = src->bootstrap_shared;
	return 0;
}

static int resource_cmp(const void *a, const void *b)
{
	return strcmp(((const struct xds_resource *)a)->name,
		      ((const struct xds_resource *)b)->name);
}

const struct xds_resource *xds_config_find(const struct xds_config *cfg, enum xds_type t,
					   const char *name)
{
	struct xds_resource key = {.name = (char *)name};

	if (!cfg->n[t])
		return NULL;
	return bsearch(&key, cfg->res[t], cfg->n[t], sizeof(key), resource_cmp);
}

static const char *const dynamic_source[XDS_NTYPES] = {
	[XDS_LISTENER] = "no LDS is configured", [XDS_ROUTE] = "no RDS is configured",
	[XDS_CLUSTER] = "no CDS is configured",	 [XDS_ENDPOINT] = "no EDS is configured",
	[XDS_SECRET] = "no SDS is configured",
};

int xds_config_seal(struct xds_config *cfg, struct jtree_err *err)
{
	memset(err, 0, sizeof(*err));
	for (int t = 0; t < XDS_NTYPES; t++) {
		if (cfg->n[t] > xds_types[t].max) {
			snprintf(err->msg, sizeof(err->msg), "%zu %s: more than the limit of %zu",
				 cfg->n[t], xds_types[t].plural, xds_types[t].max);
			return -EINVAL;
		}
		if (cfg->n[t] > 1)
			qsort(cfg->res[t], cfg->n[t], sizeof(*cfg->res[t]), resource_cmp);
		for (size_t i = 1; i < cfg->n[t]; i++) {
			if (!strcmp(cfg->res[t][i - 1].name, cfg->res[t][i].name)) {
				snprintf(err->msg, sizeof(err->msg), "%s \"%s\" is defined twice",
					 xds_types[t].noun, cfg->res[t][i].name);
				return -EINVAL;
			}
		}
	}
	cfg->sealed = 1;
	for (int t = 0; t < XDS_NTYPES; t++) {
		for (size_t i = 0; i < cfg->n[t]; i++) {
			const struct xds_resource *r = &cfg->res[t][i];

			for (size_t k = 0; k < r->n_refs; k++) {
				const struct xds_ref *ref = &r->refs[k];

				if ((cfg->dynamic[ref->type] && !ref->static_only) ||
				    xds_config_find(cfg, ref->type, ref->name))
					continue;
				snprintf(err->msg, sizeof(err->msg),
					 "%s \"%s\": %s: %s \"%s\" is not defined (and %s)",
					 xds_types[t].noun, r->name, ref->where,
					 xds_types[ref->type].noun, ref->name,
					 ref->static_only
						 ? "no sds_config says where else to find it"
						 : dynamic_source[ref->type]);
				cfg->sealed = 0;
				return -EINVAL;
			}
		}
	}
	return 0;
}

int xds_config_reject(struct xds_config *cfg, enum xds_type t, const char *name,
		      const char *version, const char *details, const ProtobufCMessage *failed_any,
		      const struct timespec *when)
{
	struct xds_rejection *r = NULL, *grown;

	/* One entry per name: the latest rejection replaces an earlier one. */
	for (size_t i = 0; i < cfg->n_rejected[t]; i++)
		if (!strcmp(cfg->rejected[t][i].name, name))
			r = &cfg->rejected[t][i];
	if (r) {
		rejection_release(r);
	} else {
		grown = realloc(cfg->rejected[t], (cfg->n_rejected[t] + 1) * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		cfg->rejected[t] = grown;
		r = &grown[cfg->n_rejected[t]++];
	}
	memset(r, 0, sizeof(*r));
	r->name = strdup(name);
	r->version = strdup(version ? version : "");
	r->details = strdup(details ? details : "");
	if (failed_any) {
		size_t size = protobuf_c_message_get_packed_size(failed_any);
		uint8_t *buf = malloc(size ? size : 1);

		if (buf) {
			protobuf_c_message_pack(failed_any, buf);
			r->failed = protobuf_c_message_unpack(&google__protobuf__any__descriptor,
							      NULL, size, buf);
			free(buf);
		}
	}
	if (when)
		r->when = *when;
	else
		clock_gettime(CLOCK_REALTIME, &r->when);
	if (!r->name || !r->version || !r->details || (failed_any && !r->failed)) {
		rejection_release(r);
		*r = cfg->rejected[t][--cfg->n_rejected[t]];
		return -ENOMEM;
	}
	return 0;
}
