/* Tests bootstrap.c, xdsres.c and config_dump.c on fixture bootstraps and ADS-fed resources. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/bootstrap.h"
#include "agent/config_dump.h"
#include "agent/jtree.h"
#include "agent/pbjson.h"
#include "agent/xdsres.h"
#include "lib/log.h"
#include "tests/lib/tap.h"

#include "envoy/admin/v3/config_dump.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/any.pb-c.h"

#define FIXTURES "tests/unit/agent/fixtures/"

static const struct bad_file {
	const char *file;
	const char *err;
} bad_files[] = {
	{"bad/malformed.yaml", FIXTURES "bad/malformed.yaml:5:4: did not find expected key (while "
					"parsing a block mapping)"},
	{"bad/wrong-type.yaml", FIXTURES
	 "bad/wrong-type.yaml:5:32: static_resources.clusters[2].connect_timeout: expected a "
	 "duration like \"1.5s\", got 5"},
	{"bad/unknown-field.json",
	 FIXTURES "bad/unknown-field.json:1:68: static_resources.clusters[0]: unknown field "
		  "\"conect_timeout\" in envoy.config.cluster.v3.Cluster"},
	{"bad/port.yaml",
	 FIXTURES "bad/port.yaml: static_resources.listeners[0] (listener \"zero\"): "
		  "address.socket_address.port_value: 0 is out of range 1..65535"},
	{"bad/duplicate.yaml", FIXTURES "bad/duplicate.yaml: cluster \"web\" is defined twice"},
	{"bad/dangling.yaml",
	 FIXTURES "bad/dangling.yaml: listener \"tcp\": filter_chains[0].filters[0].typed_config."
		  "cluster: cluster \"backend\" is not defined (and no CDS is configured)"},
	{"bad/filter.yaml", FIXTURES
	 "bad/filter.yaml: static_resources.listeners[0] (listener \"http\"): "
	 "filter_chains[0].filters[0].typed_config.http_filters[0]: unsupported HTTP filter "
	 "\"envoy.filters.http.lua\" (type.googleapis.com/envoy.extensions.filters.http.lua.v3."
	 "Lua) (mark it is_optional: true to run without it)"},
	{"bad/ads-cluster.yaml", FIXTURES "bad/ads-cluster.yaml: dynamic_resources.ads_config: "
					  "cluster \"xds-grpc\" is not a static cluster"},
	{"missing.yaml", FIXTURES "missing.yaml: No such file or directory"},
};

/* Bootstraps given inline: checks that need no file of their own. */
static const struct bad_text {
	const char *text;
	const char *err;
} bad_texts[] = {
	{"dynamic_resources: {lds_config: {ads: {}}}",
	 "dynamic_resources.lds_config: uses ADS but dynamic_resources.ads_config is missing"},
	{"dynamic_resources: {cds_config: {path_config_source: {path: /x}}}",
	 "dynamic_resources.cds_config: only ADS is supported (cds_config: {ads: {}})"},
	{"dynamic_resources: {ads_config: {api_type: REST}}",
	 "dynamic_resources.ads_config.api_type: must be GRPC or DELTA_GRPC"},
	{"dynamic_resources: {ads_config: {api_type: GRPC, grpc_services: [{envoy_grpc: "
	 "{cluster_name: x}}]}}",
	 "node.id: required when ADS is configured"},
	{"admin: {address: {socket_address: {address: 127.0.0.1, port_value: 70000}}}",
	 "admin.address.socket_address.port_value: 70000 is out of range 1..65535"},
	{"static_resources: {clusters: [{connect_timeout: 1s}]}",
	 "static_resources.clusters[0] (cluster \"\"): a cluster needs a name"},
	{"static_resources: {clusters: [{name: c, transport_socket: {name: t, typed_config: "
	 "{\"@type\": type.googleapis.com/x.Tls}}}]}",
	 "static_resources.clusters[0] (cluster \"c\"): transport_socket.typed_config: unsupported "
	 "extension type \"type.googleapis.com/x.Tls\""},
	{"static_resources: {listeners: [{name: l, filter_chains: [{filters: [{name: h, "
	 "typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network."
	 "http_connection_manager.v3.HttpConnectionManager, rds: {route_config_name: r}, "
	 "access_log: [{name: a, typed_config: {\"@type\": type.googleapis.com/x.Log}}], "
	 "http_filters: [{name: envoy.filters.http.router}]}}]}]}]}",
	 "static_resources.listeners[0] (listener \"l\"): filter_chains[0].filters[0].typed_config."
	 "access_log[0].typed_config: unsupported extension type \"type.googleapis.com/x.Log\""},
	{"static_resources: {clusters: [{name: c, type: EDS}]}",
	 "cluster \"c\": eds_cluster_config: endpoint assignment \"c\" is not defined (and no EDS "
	 "is configured)"},
	{"static_resources: {listeners: [{name: l, filter_chains: [{filters: [{name: "
	 "envoy.filters.network.tcp_proxy, typed_config: {\"@type\": "
	 "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, cluster: "
	 "c}}, {name: envoy.filters.network.tcp_proxy, typed_config: {\"@type\": "
	 "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, cluster: "
	 "c}}]}]}]}",
	 "static_resources.listeners[0] (listener \"l\"): filter_chains[0].filters[0]: "
	 "envoy.filters.network.tcp_proxy must be the last network filter"},
	{"static_resources: {listeners: [{name: l, filter_chains: [{filters: [{name: x, "
	 "typed_config: {\"@type\": type.googleapis.com/istio.stats.Stats}}]}]}]}",
	 "static_resources.listeners[0] (listener \"l\"): filter_chains[0].filters[0]: unsupported "
	 "network filter \"x\" (type.googleapis.com/istio.stats.Stats)"},
	{"static_resources: {listeners: [{name: l, filter_chains: [{filters: [{name: h, "
	 "typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network."
	 "http_connection_manager.v3.HttpConnectionManager, route_config: {virtual_hosts: [{name: "
	 "a, domains: [x.com]}, {name: b, domains: [y.com, X.COM]}]}, http_filters: [{name: "
	 "envoy.filters.http.router, typed_config: {\"@type\": type.googleapis.com/envoy."
	 "extensions.filters.http.router.v3.Router}}]}}]}]}]}",
	 "static_resources.listeners[0] (listener \"l\"): filter_chains[0].filters[0].typed_config."
	 "route_config: domain \"X.COM\" is in virtual hosts \"a\" and \"b\""},
	{"static_resources: {listeners: [{name: l, filter_chains: [{filters: [{name: h, "
	 "typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network."
	 "http_connection_manager.v3.HttpConnectionManager, rds: {route_config_name: r}}}]}]}]}",
	 "static_resources.listeners[0] (listener \"l\"): "
	 "filter_chains[0].filters[0].typed_config: "
	 "http_filters must end with the router (envoy.filters.http.router)"},
};

static char *dump_of(const struct xds_config *cfg, const char *type)
{
	struct strbuf out = STRBUF_INIT;
	struct jtree_err err;

	if (config_dump_render(cfg, type, &out, &err)) {
		tap_diag("config_dump: %s", err.msg);
		strbuf_release(&out);
		return NULL;
	}
	return strbuf_detach(&out, NULL);
}

static const struct jtree_node *at(const struct jtree_node *n, const char *path)
{
	char key[128];

	while (n && *path) {
		size_t len = strcspn(path, ".");

		snprintf(key, sizeof(key), "%.*s", (int)len, path);
		if (key[0] >= '0' && key[0] <= '9')
			n = n->kind == JT_ARRAY && (size_t)atoi(key) < n->len
				    ? n->u.items[atoi(key)]
				    : NULL;
		else
			n = jtree_get(n, key);
		path += len + (path[len] == '.');
	}
	return n;
}

static void test_static(void)
{
	struct xds_config *cfg;
	struct jtree_err err;
	const struct xds_resource *r;
	char *dump;
	struct jtree *t;

	if (!ok(bootstrap_load(FIXTURES "bootstrap-static.yaml", &cfg, &err) == 0,
		"static bootstrap loads")) {
		tap_diag("  %s", err.msg);
		return;
	}
	is_int(cfg->n[XDS_LISTENER], 2, "  2 listeners");
	is_int(cfg->n[XDS_CLUSTER], 4, "  4 clusters");
	is_int(cfg->n[XDS_SECRET], 1, "  1 secret");
	is_int(cfg->warnings, 2, "  2 optional filters skipped with a warning");
	ok(xds_config_find(cfg, XDS_CLUSTER, "api_v2") != NULL, "  cluster found by name");
	ok(xds_config_find(cfg, XDS_CLUSTER, "api_v3") == NULL, "  unknown cluster not found");
	r = xds_config_find(cfg, XDS_LISTENER, "http_8080");
	ok(r && r->is_static && r->n_refs == 3, "  listener refers to 3 clusters (%zu)",
	   r ? r->n_refs : 0);
	ok(bootstrap_ads_cluster(cfg) == NULL, "  no ADS");
	is_str(bootstrap_of(cfg)->node->id,
	       "shunt-test~10.0.0.1~web-0.default~default.svc.cluster.local", "  node id");

	dump = dump_of(cfg, NULL);
	ok(dump && jtree_parse(dump, strlen(dump), &t, &err) == 0, "config_dump is JSON");
	if (dump && t) {
		const struct jtree_node *root = jtree_root(t);
		const struct jtree_node *http_filters;

		is_str(at(root, "configs.0.@type")->u.str,
		       "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
		       "  bootstrap first");
		is_str(at(root, "configs.1.static_clusters.0.cluster.name")->u.str, "api_v1",
		       "  clusters by name");
		is_str(at(root, "configs.1.static_clusters.0.cluster.connect_timeout")->u.str, "1s",
		       "  durations as Envoy prints them");
		ok(at(root, "configs.1.static_clusters.0.last_updated") != NULL, "  last_updated");
		is_str(at(root, "configs.2.@type")->u.str,
		       "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
		       "  endpoints section");
		is_int(at(root, "configs.2.static_endpoint_configs")->len, 4,
		       "  static endpoints from the static clusters");
		is_str(at(root, "configs.3.static_listeners.0.listener.name")->u.str, "http_8080",
		       "  listeners");
		http_filters =
			at(root, "configs.3.static_listeners.0.listener.filter_chains.0.filters.0."
				 "typed_config.http_filters");
		ok(http_filters && http_filters->len == 1, "  optional unknown filters dropped");
		is_str(at(root, "configs.4.static_route_configs.0.route_config.name")->u.str,
		       "local_route", "  inline route config listed as a static route");
		is_int(at(root,
			  "configs.4.static_route_configs.0.route_config.virtual_hosts.0.routes.0."
			  "route.weighted_clusters.clusters.1.weight")
			       ->u.str[0],
		       '1', "  weights");
		is_str(at(root, "configs.5.static_secrets.0.name")->u.str, "default", "  secrets");
		is_str(at(root, "configs.0.bootstrap.static_resources.listeners.0.filter_chains.0."
				"filters.0.typed_config.http_filters.1.typed_config.@type")
			       ->u.str,
		       "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
		       "  the bootstrap section shows the file as given, unknown types included");
		jtree_free(t);
	}
	free(dump);

	dump = dump_of(cfg, "clusters");
	ok(dump && strstr(dump, "ClustersConfigDump") && !strstr(dump, "ListenersConfigDump"),
	   "--type clusters keeps only clusters");
	free(dump);
	dump = dump_of(cfg, "envoy.admin.v3.ListenersConfigDump");
	ok(dump && strstr(dump, "ListenersConfigDump") && !strstr(dump, "ClustersConfigDump"),
	   "--type by Envoy's type name");
	free(dump);
	{
		struct strbuf out = STRBUF_INIT;

		is_int(config_dump_render(cfg, "listener", &out, &err), -EINVAL, "unknown --type");
		is_str(err.msg,
		       "unknown config type \"listener\" (one of bootstrap, clusters, endpoints, "
		       "listeners, routes, secrets)",
		       "  lists the types");
		strbuf_release(&out);
	}
	xds_config_free(cfg);
}

static void test_ads_bootstrap(void)
{
	struct xds_config *cfg;
	struct jtree_err err;

	if (!ok(bootstrap_load(FIXTURES "bootstrap-ads.json", &cfg, &err) == 0,
		"ADS bootstrap (JSON) loads")) {
		tap_diag("  %s", err.msg);
		return;
	}
	is_str(bootstrap_ads_cluster(cfg), "xds-grpc", "  ADS through xds-grpc");
	ok(cfg->dynamic[XDS_LISTENER] && cfg->dynamic[XDS_CLUSTER] && cfg->dynamic[XDS_ROUTE] &&
		   cfg->dynamic[XDS_ENDPOINT],
	   "  LDS, CDS, RDS, EDS come over ADS");
	ok(xds_config_find(cfg, XDS_LISTENER, "prometheus_15090") != NULL,
	   "  static listener kept; its cluster may come from CDS");
	xds_config_free(cfg);
}

static void test_bad_files(void)
{
	for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
		char path[256];
		struct xds_config *cfg = (struct xds_config *)1;
		struct jtree_err err;
		int rc;

		snprintf(path, sizeof(path), FIXTURES "%s", bad_files[i].file);
		rc = bootstrap_load(path, &cfg, &err);
		ok(rc < 0 && cfg == NULL, "rejected: %s", bad_files[i].file);
		is_str(err.msg, bad_files[i].err, "  error text");
	}
	for (size_t i = 0; i < sizeof(bad_texts) / sizeof(bad_texts[0]); i++) {
		struct xds_config *cfg;
		struct jtree_err err;
		const char *s = bad_texts[i].text;

		ok(bootstrap_parse(s, strlen(s), &cfg, &err) == -EINVAL && !cfg, "rejected: %.50s",
		   s);
		is_str(err.msg, bad_texts[i].err, "  error text");
	}
}

/* A failed reload leaves the running config as it was. */
static void test_previous_kept(void)
{
	struct xds_config *cfg, *next = NULL;
	struct jtree_err err;
	char *before, *after;

	if (bootstrap_load(FIXTURES "bootstrap-static.yaml", &cfg, &err))
		return;
	before = dump_of(cfg, "listeners");
	ok(bootstrap_load(FIXTURES "bad/dangling.yaml", &next, &err) < 0 && !next,
	   "reload with a bad file fails");
	after = dump_of(cfg, "listeners");
	is_str(after, before, "  and the previous config is untouched");
	free(before);
	free(after);
	xds_config_free(cfg);
}

/* Sends the static resources of a bootstrap through a DiscoveryResponse on the wire. */
static struct xds_config *via_ads(const struct xds_config *src, const char *version)
{
	Envoy__Service__Discovery__V3__DiscoveryResponse resp =
		ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
	Envoy__Service__Discovery__V3__DiscoveryResponse *got;
	struct xds_config *cfg = xds_config_new();
	struct jtree_err err;
	ProtobufCMessage *any;
	uint8_t *wire;
	size_t n = 0, len;
	int rc = 0;

	for (int t = 0; t < XDS_NTYPES; t++)
		cfg->dynamic[t] = 1;
	resp.version_info = (char *)version;
	resp.resources = calloc(64, sizeof(*resp.resources));
	for (int t = 0; t < XDS_NTYPES; t++)
		for (size_t i = 0; i < src->n[t]; i++) {
			pbjson_any_pack(src->res[t][i].msg, &any);
			resp.resources[n++] = (Google__Protobuf__Any *)any;
		}
	resp.n_resources = n;
	len = protobuf_c_message_get_packed_size(&resp.base);
	wire = malloc(len);
	protobuf_c_message_pack(&resp.base, wire);
	for (size_t i = 0; i < n; i++)
		protobuf_c_message_free_unpacked(&resp.resources[i]->base, NULL);
	free(resp.resources);

	got = envoy__service__discovery__v3__discovery_response__unpack(NULL, len, wire);
	free(wire);
	for (size_t i = 0; got && i < got->n_resources && !rc; i++) {
		enum xds_type t;
		ProtobufCMessage *msg;

		rc = xds_resource_from_any(&got->resources[i]->base, &t, &msg, &err);
		if (!rc) {
			rc = xds_config_add(cfg, t, msg, got->version_info, 0, NULL, NULL, &err);
			if (rc)
				protobuf_c_message_free_unpacked(msg, NULL);
		}
	}
	if (!rc)
		rc = xds_config_seal(cfg, &err);
	if (got)
		envoy__service__discovery__v3__discovery_response__free_unpacked(got, NULL);
	if (rc) {
		tap_diag("via ADS: %s", err.msg);
		xds_config_free(cfg);
		return NULL;
	}
	return cfg;
}

static void compare_lists(const struct jtree_node *a, const struct jtree_node *b,
			  const char *a_field, const char *b_field, const char *what)
{
	int same = a && b && a->len == b->len && a->len > 0;

	for (size_t i = 0; same && i < a->len; i++) {
		struct strbuf where = STRBUF_INIT;

		same = jtree_equal(at(a->u.items[i], a_field), at(b->u.items[i], b_field), &where);
		if (!same)
			tap_diag("  %s[%zu]: %s", what, i, strbuf_str(&where));
		strbuf_release(&where);
	}
	ok(same, "static and ADS-fed %s dump the same resources", what);
}

/* Test 3 of issue 4: the same resources from a file and from ADS give the same dump. */
static void test_static_equals_ads(void)
{
	struct xds_config *st, *dyn;
	struct jtree_err err;
	struct jtree *ts = NULL, *td = NULL;
	char *ds, *dd;

	if (bootstrap_load(FIXTURES "bootstrap-static.yaml", &st, &err))
		return;
	dyn = via_ads(st, "2024-05-01T10:00:00Z/7");
	if (!ok(dyn != NULL, "static resources accepted over ADS")) {
		xds_config_free(st);
		return;
	}
	ds = dump_of(st, NULL);
	dd = dump_of(dyn, NULL);
	jtree_parse(ds, strlen(ds), &ts, &err);
	jtree_parse(dd, strlen(dd), &td, &err);
	compare_lists(at(jtree_root(ts), "configs.1.static_clusters"),
		      at(jtree_root(td), "configs.1.dynamic_active_clusters"), "cluster", "cluster",
		      "clusters");
	compare_lists(at(jtree_root(ts), "configs.3.static_listeners"),
		      at(jtree_root(td), "configs.3.dynamic_listeners"), "listener",
		      "active_state.listener", "listeners");
	compare_lists(at(jtree_root(ts), "configs.5.static_secrets"),
		      at(jtree_root(td), "configs.5.dynamic_active_secrets"), "secret", "secret",
		      "secrets");
	is_str(at(jtree_root(td), "configs.3.dynamic_listeners.0.active_state.version_info")->u.str,
	       "2024-05-01T10:00:00Z/7", "ADS resources carry their version_info");
	is_str(at(jtree_root(td), "configs.3.dynamic_listeners.0.name")->u.str, "http_8080",
	       "  and their name");
	jtree_free(ts);
	jtree_free(td);
	free(ds);
	free(dd);
	xds_config_free(dyn);
	xds_config_free(st);
}

/* A NACKed update shows in the dump as the resource's error_state. */
static void test_rejected(void)
{
	static const char bad_listener[] =
		"{name: web, address: {socket_address: {address: 0.0.0.0, port_value: 99999}}}";
	struct xds_config *cfg;
	struct jtree_err err, why;
	ProtobufCMessage *msg, *any;
	struct jtree *t;
	const struct jtree_node *dl;
	struct timespec when = {1700000000, 123456789};
	char *dump;

	if (bootstrap_load(FIXTURES "bootstrap-static.yaml", &cfg, &err))
		return;
	pbjson_parse(bad_listener, strlen(bad_listener), xds_types[XDS_LISTENER].desc, 0, &msg,
		     &err);
	pbjson_any_pack(msg, &any);
	{
		struct xds_config *scratch = xds_config_new();

		ok(xds_config_add(scratch, XDS_LISTENER, msg, "v2", 0, NULL, NULL, &why) == -EINVAL,
		   "ADS listener with a bad port is refused");
		is_str(why.msg,
		       "listener \"web\": address.socket_address.port_value: 99999 is out of range "
		       "1..65535",
		       "  with its reason");
		xds_config_free(scratch);
	}
	ok(xds_config_reject(cfg, XDS_LISTENER, "web", "v2", why.msg, any, &when) == 0,
	   "rejection recorded");
	dump = dump_of(cfg, "listeners");
	jtree_parse(dump, strlen(dump), &t, &err);
	dl = at(jtree_root(t), "configs.0.dynamic_listeners.0");
	is_str(at(dl, "name")->u.str, "web", "  dump names the rejected listener");
	is_str(at(dl, "error_state.details")->u.str, why.msg, "  with the reason");
	is_str(at(dl, "error_state.version_info")->u.str, "v2", "  the rejected version");
	is_str(at(dl, "error_state.last_update_attempt")->u.str, "2023-11-14T22:13:20.123Z",
	       "  when");
	is_int(at(dl, "error_state.failed_configuration.address.socket_address.port_value")
		       ->u.str[0],
	       '9', "  and what was offered");
	ok(at(dl, "active_state") == NULL, "  no active state: nothing was accepted");
	jtree_free(t);
	free(dump);
	protobuf_c_message_free_unpacked(msg, NULL);
	protobuf_c_message_free_unpacked(any, NULL);
	xds_config_free(cfg);
}

/* Over the per-type limit. */
static void test_limits(void)
{
	struct xds_config *cfg = xds_config_new();
	struct jtree_err err;
	int rc = 0;

	cfg->dynamic[XDS_ENDPOINT] = 1;
	for (size_t i = 0; i <= XDS_MAX_SECRETS && !rc; i++) {
		char text[64];
		ProtobufCMessage *msg;

		snprintf(text, sizeof(text), "{name: s%zu}", i);
		pbjson_parse(text, strlen(text), xds_types[XDS_SECRET].desc, 0, &msg, &err);
		rc = xds_config_add(cfg, XDS_SECRET, msg, "1", 0, NULL, NULL, &err);
	}
	is_int(xds_config_seal(cfg, &err), -EINVAL, "more secrets than the limit");
	is_str(err.msg, "4097 secrets: more than the limit of 4096", "  says so");
	xds_config_free(cfg);
}

/* --service-node/--service-cluster/--service-zone over a bootstrap with and without a node. */
static void test_node_flags(void)
{
	static const char with_node[] =
		"node: {id: file-id, cluster: file-cluster, metadata: {ISTIO_VERSION: '1.21'}}\n";
	static const char no_node[] = "static_resources: {}\n";
	struct xds_config *cfg = NULL;
	struct jtree_err err = {0};
	char msg[160] = "";
	const Envoy__Config__Core__V3__Node *n;

	ok(bootstrap_parse(with_node, strlen(with_node), &cfg, &err) == 0,
	   "a bootstrap with a node");
	ok(bootstrap_set_node(cfg, "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local", NULL, "z1", msg,
			      sizeof(msg)) == 0,
	   "node id and zone set");
	n = bootstrap_of(cfg)->node;
	is_str(n->id, "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local", "the id is replaced");
	is_str(n->cluster, "file-cluster", "the cluster not given stays the file's");
	ok(n->locality && !strcmp(n->locality->zone, "z1"), "a locality is made for the zone");
	ok(n->metadata && n->metadata->n_fields == 1, "the metadata is kept");
	ok(bootstrap_set_node(cfg, "x y", NULL, NULL, msg, sizeof(msg)) == -EINVAL,
	   "a space: -EINVAL");
	is_str(msg, "--service-node: must be printable ASCII without spaces", "naming the flag");
	is_str(bootstrap_of(cfg)->node->id, "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local",
	       "and nothing changed");
	xds_config_free(cfg);

	cfg = NULL;
	ok(bootstrap_parse(no_node, strlen(no_node), &cfg, &err) == 0,
	   "a bootstrap without a node");
	ok(bootstrap_set_node(cfg, NULL, "web.default", NULL, msg, sizeof(msg)) == 0 &&
		   bootstrap_of(cfg)->node &&
		   !strcmp(bootstrap_of(cfg)->node->cluster, "web.default") &&
		   !bootstrap_of(cfg)->node->locality,
	   "gets one with just the cluster");
	xds_config_free(cfg);
}

/* Envoy's static listeners may be unnamed (Istio's bootstrap: 15090 and 15021); each is named
 * after its address. An LDS listener still needs the name it was subscribed by. */
static void test_unnamed_listeners(void)
{
#define TCP_CHAIN                                                                                  \
	"filter_chains: [{filters: [{name: tcp, typed_config: {'@type': "                          \
	"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, "             \
	"stat_prefix: s, cluster: c}}]}]"
	static const char y[] =
		"static_resources:\n"
		"  clusters: [{name: c, load_assignment: {cluster_name: c, endpoints: "
		"[{lb_endpoints: "
		"[{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: "
		"9}}}}]}]}}]\n"
		"  listeners:\n"
		"  - {address: {socket_address: {address: 0.0.0.0, port_value: 15090}}, " TCP_CHAIN
		"}\n"
		"  - {address: {socket_address: {address: 0.0.0.0, port_value: 15021}}, " TCP_CHAIN
		"}\n"
		"  - {name: named, address: {socket_address: {address: 0.0.0.0, port_value: "
		"15000}}, " TCP_CHAIN "}\n";
	static const char lds[] =
		"{address: {socket_address: {address: 0.0.0.0, port_value: 1}}, " TCP_CHAIN "}";
#undef TCP_CHAIN
	struct xds_config *cfg = NULL, *dyn = xds_config_new();
	struct jtree_err err = {0};
	ProtobufCMessage *l = NULL;

	ok(bootstrap_parse(y, sizeof(y) - 1, &cfg, &err) == 0, "unnamed static listeners load: %s",
	   err.msg);
	ok(cfg && xds_config_find(cfg, XDS_LISTENER, "static_0.0.0.0_15090") &&
		   xds_config_find(cfg, XDS_LISTENER, "static_0.0.0.0_15021") &&
		   xds_config_find(cfg, XDS_LISTENER, "named"),
	   "named after their addresses, beside the named one");
	xds_config_free(cfg);
	ok(dyn && pbjson_parse(lds, sizeof(lds) - 1,
			       &envoy__config__listener__v3__listener__descriptor, 0, &l,
			       &err) == 0,
	   "an unnamed listener as LDS would send it");
	if (dyn && l) {
		ok(xds_config_add(dyn, XDS_LISTENER, l, "1", 0, NULL, NULL, &err) == -EINVAL,
		   "is refused over xDS: %s", err.msg);
		protobuf_c_message_free_unpacked(l, NULL);
	}
	xds_config_free(dyn);
}

/* Secrets and inline keys never appear in a dump; certificates and names do. */
static void test_redact(void)
{
	static const char y[] =
		"static_resources:\n"
		"  secrets:\n"
		"  - name: s1\n"
		"    tls_certificate:\n"
		"      certificate_chain: {inline_string: CHAIN-ONE}\n"
		"      private_key: {inline_string: KEY-ONE}\n"
		"      password: {filename: /run/PASSFILE}\n"
		"  - {name: s2, generic_secret: {secret: {inline_bytes: R0VORVJJQy1TRUNSRVQ=}}}\n"
		"  - {name: s3, session_ticket_keys: {keys: [{inline_string: TICKET-A}, "
		"{inline_string: TICKET-B}]}}\n"
		"  listeners:\n"
		"  - name: l\n"
		"    address: {socket_address: {address: 0.0.0.0, port_value: 443}}\n"
		"    filter_chains:\n"
		"    - transport_socket:\n"
		"        name: tls\n"
		"        typed_config:\n"
		"          '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
		"DownstreamTlsContext\n"
		"          common_tls_context:\n"
		"            tls_certificates:\n"
		"            - certificate_chain: {inline_string: CHAIN-TWO}\n"
		"              private_key: {inline_bytes: S0VZLVRXTw==}\n"
		"      filters:\n"
		"      - name: tcp\n"
		"        typed_config: {'@type': "
		"type.googleapis.com/envoy.extensions.filters.network."
		"tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c}\n"
		"  clusters:\n"
		"  - {name: c, type: STATIC}\n";
	static const char *const hidden[] = {"KEY-ONE",	 "PASSFILE", "R0VORVJJQy1TRUNSRVQ=",
					     "TICKET-A", "TICKET-B", "S0VZLVRXTw=="};
	static const char *const shown[] = {"CHAIN-ONE", "CHAIN-TWO", "\"s1\"", "\"s3\""};
	struct xds_config *cfg;
	struct jtree_err err;
	char *dump, *p, line[512];
	size_t marks = 0, count;
	FILE *lst;

	if (!ok(bootstrap_parse(y, sizeof(y) - 1, &cfg, &err) == 0, "secrets bootstrap: %s",
		err.msg))
		return;
	dump = dump_of(cfg, NULL);
	if (ok(dump, "dumped")) {
		for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++)
			ok(!strstr(dump, hidden[i]), "%s is not in the dump", hidden[i]);
		for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++)
			ok(strstr(dump, shown[i]), "%s is", shown[i]);
		for (p = dump; (p = strstr(p, "[redacted]")); p++)
			marks++;
		/* static secrets appear twice (bootstrap and secrets sections), the listener's key
		 * twice (bootstrap and listeners): 2 * (key + password + generic + 2 tickets + key).
		 * The generic secret's bytes print as base64 of "[redacted]". */
		for (p = dump; (p = strstr(p, "W3JlZGFjdGVkXQ==")); p++)
			marks++;
		is_int(marks, 12, "every sensitive value replaced, in every section");
	}
	free(dump);
	xds_config_free(cfg);

	/* The list of sensitive fields is the protos' own: count the marks in the compiled ones. */
	count = 0;
	lst = fopen("mk/xds-protos.lst", "r");
	while (lst && fgets(line, sizeof(line), lst)) {
		char path[600], buf[512];
		FILE *f;

		line[strcspn(line, "\n")] = 0;
		if (!*line || *line == '#')
			continue;
		snprintf(path, sizeof(path), "build/xds/src/%s", line);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(buf, sizeof(buf), f))
			count += strstr(buf, "(udpa.annotations.sensitive) = true") != NULL;
		fclose(f);
	}
	if (lst)
		fclose(lst);
	ok(count > 0, "the compiled protos' sources are readable");
	is_int(count, config_dump_sensitive_count(),
	       "redaction knows every field the compiled protos mark sensitive");
}

int main(void)
{
	log_threshold = L_ERROR; /* the optional-filter warnings are expected */
	test_static();
	test_ads_bootstrap();
	test_bad_files();
	test_previous_kept();
	test_static_equals_ads();
	test_rejected();
	test_limits();
	test_node_flags();
	test_unnamed_listeners();
	test_redact();
	return done_testing();
}
