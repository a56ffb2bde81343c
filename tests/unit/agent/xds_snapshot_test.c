/* Tests xds_snapshot.c: bootstraps and ADS-style resources into proxy snapshots. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/bootstrap.h"
#include "agent/jtree.h"
#include "agent/pbjson.h"
#include "agent/xds_snapshot.h"
#include "agent/xdsres.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "proxy/config.h"
#include "proxy/rbac.h"
#include "proxy/route.h"
#include "tests/lib/tap.h"

#include "envoy/admin/v3/config_dump.pb-c.h"
#include "envoy/admin/v3/config_dump_shared.pb-c.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "google/protobuf/any.pb-c.h"

#define HCM_T                                                                                      \
	"'@type': "                                                                                \
	"type.googleapis.com/"                                                                     \
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
#define TCP_T "'@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
#define ROUTER                                                                                     \
	"http_filters: [{name: envoy.filters.http.router, typed_config: {'@type': "                \
	"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]"

static const char bootstrap[] =
	"static_resources:\n"
	"  listeners:\n"
	"  - name: virtualOutbound\n"
	"    address: {socket_address: {address: 0.0.0.0, port_value: 15001}}\n"
	"    use_original_dst: true\n"
	"    listener_filters: [{name: envoy.filters.listener.original_dst}]\n"
	"    default_filter_chain:\n"
	"      filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {" TCP_T ", "
	"stat_prefix: PassthroughCluster, cluster: PassthroughCluster}}]\n"
	"  - name: 0.0.0.0_5432\n"
	"    address: {socket_address: {address: 0.0.0.0, port_value: 5432}}\n"
	"    listener_filters: [{name: envoy.filters.listener.tls_inspector}, {name: "
	"envoy.filters.listener.http_inspector, filter_disabled: {or_match: {rules: "
	"[{destination_port_range: {start: 80, end: 81}}, {destination_port_range: {start: "
	"5432, end: 5434}}]}}}]\n"
	"    listener_filters_timeout: 2.5s\n"
	"    continue_on_listener_filters_timeout: true\n"
	"    filter_chains:\n"
	"    - name: db-tls\n"
	"      filter_chain_match: {transport_protocol: tls, server_names: [DB.example.com]}\n"
	"      filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {" TCP_T ", "
	"stat_prefix: db, idle_timeout: 30s, weighted_clusters: {clusters: [{name: db, weight: "
	"3}, {name: ring, weight: 1}]}}}]\n"
	"    - name: db-src\n"
	"      filter_chain_match: {source_prefix_ranges: [{address_prefix: 10.1.0.0, "
	"prefix_len: 16}], source_ports: [4000], prefix_ranges: [{address_prefix: 10.0.0.5}]}\n"
	"      filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {" TCP_T ", "
	"stat_prefix: db, cluster: db}}]\n"
	"  - name: 10.0.0.7_8080\n"
	"    address: {socket_address: {address: 10.0.0.7, port_value: 8080}}\n"
	"    filter_chains:\n"
	"    - filters:\n"
	"      - name: envoy.filters.network.http_connection_manager\n"
	"        typed_config:\n"
	"          " HCM_T "\n"
	"          stat_prefix: web\n"
	"          codec_type: HTTP1\n"
	"          server_name: shunt\n"
	"          server_header_transformation: PASS_THROUGH\n"
	"          use_remote_address: true\n"
	"          xff_num_trusted_hops: 2\n"
	"          skip_xff_append: true\n"
	"          preserve_external_request_id: true\n"
	"          generate_request_id: false\n"
	"          max_request_headers_kb: 96\n"
	"          common_http_protocol_options: {idle_timeout: 60s, max_headers_count: 50}\n"
	"          request_timeout: 20s\n"
	"          drain_timeout: 2.5s\n"
	/* The router's suppress_envoy_headers, which the proxy honours. */
	"          http_filters: [{name: envoy.filters.http.router, typed_config: {'@type': "
	"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router, "
	"suppress_envoy_headers: true}}]\n"
	"          route_config:\n"
	"            name: inline\n"
	"            request_headers_to_add: [{header: {key: X-Mesh, value: shunt}, "
	"append_action: OVERWRITE_IF_EXISTS_OR_ADD}]\n"
	"            virtual_hosts:\n"
	"            - name: web\n"
	"              domains: ['web.example.com', '*.web']\n"
	/* Istio's form of the predicate: named and typed (every route istiod sends has one). */
	"              retry_policy: {retry_on: 5xx, retry_host_predicate: [{name: "
	"envoy.retry_host_predicates.previous_hosts, typed_config: {'@type': "
	"type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}}"
	"]}\n"
	"              include_request_attempt_count: true\n"
	"              routes:\n"
	"              - name: exact\n"
	"                match: {path: /login, case_sensitive: false}\n"
	"                route: {cluster: web, timeout: 0s, host_rewrite_literal: login.internal}\n"
	"              - name: hdr\n"
	"                match:\n"
	"                  prefix: /api\n"
	"                  headers:\n"
	"                  - {name: X-Version, string_match: {exact: v2}}\n"
	"                  - {name: x-debug, present_match: true, invert_match: true}\n"
	"                  - {name: x-n, range_match: {start: 1, end: 10}}\n"
	"                  - {name: x-p, prefix_match: ab}\n"
	"                  query_parameters: [{name: q, string_match: {prefix: a}}, {name: "
	"flag, present_match: true}]\n"
	"                route:\n"
	"                  cluster: web\n"
	"                  prefix_rewrite: /v2/\n"
	"                  idle_timeout: 7s\n"
	"                  hash_policy: [{header: {header_name: X-User}}, {cookie: {name: sid}}, "
	"{connection_properties: {source_ip: true}, terminal: true}]\n"
	"                  retry_policy:\n"
	"                    retry_on: reset,connect-failure,retriable-status-codes\n"
	"                    per_try_timeout: 2s\n"
	"                    retry_back_off: {base_interval: 0.1s}\n"
	"                    retriable_status_codes: [502, 504]\n"
	"                    retry_host_predicate: [{name: "
	"envoy.retry_host_predicates.previous_hosts}]\n"
	"                    host_selection_retry_max_attempts: 3\n"
	"              - match: {safe_regex: {regex: '/r/[0-9]+'}}\n"
	"                route: {cluster_header: X-Cluster, regex_rewrite: {pattern: {regex: "
	"'^/r/(.*)$'}, substitution: '/\\1'}}\n"
	"              - match: {path_separated_prefix: /old}\n"
	"                redirect: {host_redirect: new.example.com, response_code: FOUND, "
	"https_redirect: true}\n"
	"              - match: {prefix: /health}\n"
	"                direct_response: {status: 200, body: {inline_string: ok}}\n"
	"                response_headers_to_add: [{header: {key: x-h, value: '1'}, "
	"append_action: ADD_IF_ABSENT}]\n"
	"                response_headers_to_remove: [X-Gone]\n"
	"              - match: {prefix: /}\n"
	"                route: {cluster: web}\n"
	"  clusters:\n"
	"  - name: PassthroughCluster\n"
	"    type: ORIGINAL_DST\n"
	"    lb_policy: CLUSTER_PROVIDED\n"
	"    connect_timeout: 10s\n"
	"  - name: web\n"
	"    type: STATIC\n"
	"    lb_policy: LEAST_REQUEST\n"
	"    typed_extension_protocol_options:\n"
	"      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
	"        '@type': "
	"type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n"
	"        common_http_protocol_options: {idle_timeout: 30s, max_requests_per_connection: "
	"100}\n"
	"        explicit_http_config: {http2_protocol_options: {}}\n"
	"    circuit_breakers: {thresholds: [{max_connections: 10, max_retries: 5}, {priority: "
	"HIGH, max_connections: 99}]}\n"
	"    upstream_bind_config: {source_address: {address: 127.0.0.6, port_value: 0}}\n"
	"    load_assignment:\n"
	"      cluster_name: web\n"
	"      endpoints:\n"
	"      - locality: {region: r1, zone: z1}\n"
	"        lb_endpoints:\n"
	"        - endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}\n"
	"          load_balancing_weight: 3\n"
	"        - endpoint: {address: {socket_address: {address: 10.0.0.2, port_value: 80}}}\n"
	"          health_status: UNHEALTHY\n"
	"      - priority: 1\n"
	"        lb_endpoints:\n"
	"        - endpoint: {address: {socket_address: {address: 'fd00::3', port_value: 81}}}\n"
	"  - name: db\n"
	"    type: STRICT_DNS\n"
	"    lb_policy: MAGLEV\n"
	"    http2_protocol_options: {}\n"
	"    load_assignment:\n"
	"      cluster_name: db\n"
	"      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: "
	"10.0.0.9, port_value: 5432}}}}, {endpoint: {address: {socket_address: {address: "
	"db.internal, port_value: 5433}}}, load_balancing_weight: 4}]}]\n"
	"  - name: ring\n"
	"    lb_policy: RING_HASH\n"
	"    load_assignment:\n"
	"      cluster_name: ring\n"
	"      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: "
	"10.0.0.10, port_value: 1}}}}, {endpoint: {address: {socket_address: {address: "
	"10.0.0.11, port_value: 1}}}}]}]\n";

static struct px_snapshot *build_text(const char *text, struct jtree_err *err, int *rc)
{
	struct xds_config *cfg;
	struct px_snapshot *s = NULL;

	*rc = bootstrap_parse(text, strlen(text), &cfg, err);
	if (*rc)
		return NULL;
	*rc = xds_snapshot_build(cfg, 7, &s, err);
	xds_config_free(cfg);
	return s;
}

static const struct px_listener *listener(const struct px_snapshot *s, const char *name)
{
	for (uint32_t i = 0; i < s->nlisteners; i++)
		if (!strcmp(s->listeners[i].name, name))
			return &s->listeners[i];
	return NULL;
}

static struct px_conn_info conn(const char *dst, __u16 dport, const char *src, __u16 sport)
{
	struct px_conn_info ci = {.dst_port = dport, .src_port = sport};

	addr_parse(&ci.dst, dst);
	addr_parse(&ci.src, src);
	return ci;
}

/* One request through vhost and route matching. */
struct req_case {
	const char *authority, *path;
	const char *hdr[4][2];
	const char *want; /* route name or, for unnamed routes, "#<index>"; NULL: no route */
};

static const struct req_case req_cases[] = {
	{"web.example.com", "/LOGIN", {{0}}, "exact"},
	{"web.example.com", "/login/x", {{0}}, "#5"},
	{"a.web", "/api/x?q=abc&flag", {{"x-version", "v2"}, {"x-n", "5"}, {"x-p", "abc"}}, "hdr"},
	{"a.web", "/api/x?q=abc", {{"x-version", "v2"}, {"x-n", "5"}, {"x-p", "abc"}}, "#5"},
	{"a.web",
	 "/api/x?q=abc&flag",
	 {{"x-version", "v2"}, {"x-n", "5"}, {"x-p", "abc"}, {"x-debug", "1"}},
	 "#5"},
	{"a.web", "/api/x?q=abc&flag", {{"x-version", "v2"}, {"x-n", "10"}, {"x-p", "abc"}}, "#5"},
	{"a.web", "/r/42", {{0}}, "#2"},
	{"a.web", "/r/x", {{0}}, "#5"},
	{"a.web", "/old", {{0}}, "#3"},
	{"a.web", "/old/x", {{0}}, "#3"},
	{"a.web", "/older", {{0}}, "#5"},
	{"a.web", "/health", {{0}}, "#4"},
	{"other.example.com", "/", {{0}}, NULL},
};

static void test_bootstrap(void)
{
	struct jtree_err err;
	struct px_snapshot *s;
	const struct px_listener *vo, *db, *web;
	const struct px_cluster *c;
	const struct px_route_config *rc;
	int r;

	s = build_text(bootstrap, &err, &r);
	if (!ok(r == 0 && s, "the bootstrap builds")) {
		tap_diag("  %s", err.msg);
		return;
	}
	is_int(s->generation, 7, "generation is kept");
	is_int(s->nlisteners, 3, "three listeners");
	is_int(s->nclusters, 4, "four clusters");
	vo = s->virtual_outbound;
	ok(vo && vo->use_original_dst && vo->port == 15001,
	   "virtualOutbound on 15001 with use_original_dst");
	ok(vo && vo->default_chain && vo->default_chain->kind == PX_NF_TCP_PROXY &&
		   !strcmp(vo->default_chain->tcp.cluster, "PassthroughCluster"),
	   "virtualOutbound's default chain goes to PassthroughCluster");

	db = listener(s, "0.0.0.0_5432");
	ok(db && db->tls_inspector && db->http_inspector, "both inspectors are recorded");
	ok(db && !px_filter_disabled_for(&db->tls_inspector_off, 5432),
	   "tls_inspector without filter_disabled runs on every port");
	ok(db && px_filter_disabled_for(&db->http_inspector_off, 80) &&
		   px_filter_disabled_for(&db->http_inspector_off, 5433) &&
		   !px_filter_disabled_for(&db->http_inspector_off, 81) &&
		   !px_filter_disabled_for(&db->http_inspector_off, 5434),
	   "http_inspector's filter_disabled: or_match of [80,81) and [5432,5434)");
	is_int(db ? db->listener_filters_timeout_ms : 0, 2500, "listener_filters_timeout");
	ok(db && db->continue_on_listener_filters_timeout, "continue_on_listener_filters_timeout");
	ok(vo && vo->listener_filters_timeout_ms == PX_LISTENER_FILTERS_TIMEOUT_MS_DEF &&
		   !vo->continue_on_listener_filters_timeout,
	   "listener_filters_timeout defaults to Envoy's 15 s, closing on timeout");
	{
		struct px_conn_info ci = conn("10.0.0.5", 5432, "10.1.2.3", 4000);
		const struct px_listener *l = px_listener_for(s, vo, &ci);
		const struct px_filter_chain *fc;

		ok(l == db, "px_listener_for finds 0.0.0.0:5432 from virtualOutbound");
		fc = l ? px_filter_chain_match(l, &ci) : NULL;
		is_str(fc ? fc->name : NULL, "db-src", "source prefix/port chain matches");
		/* Another destination IP: 10.0.0.5 would pick db-src first (Envoy's field order). */
		ci = conn("10.0.0.6", 5432, "10.1.2.3", 4000);
		ci.transport_protocol = "tls";
		ci.server_name = "db.example.com";
		fc = l ? px_filter_chain_match(l, &ci) : NULL;
		is_str(fc ? fc->name : NULL, "db-tls", "SNI chain matches, lower-cased");
		ok(fc && fc->tcp.nweighted == 2 && fc->tcp.total_weight == 4 &&
			   fc->tcp.idle_timeout_ms == 30000,
		   "weighted tcp_proxy with idle_timeout");
		ci.transport_protocol = "raw_buffer";
		ci.server_name = NULL;
		ok(l && !px_filter_chain_match(l, &ci), "no chain, no default: no match");
		ci = conn("10.0.0.99", 9999, "10.9.9.9", 1);
		ok(px_listener_for(s, vo, &ci) == vo, "unknown port stays on virtualOutbound");
	}

	web = listener(s, "10.0.0.7_8080");
	ok(web && web->nchains == 1 && web->chains[0].kind == PX_NF_HTTP, "HTTP listener");
	if (web && web->nchains == 1) {
		const struct px_hcm *h = &web->chains[0].http;

		ok(h->codec == PX_CODEC_HTTP1 && !strcmp(h->server_name, "shunt") &&
			   h->server_header == PX_SERVER_PASS_THROUGH,
		   "codec and server header");
		ok(h->use_remote_address && h->xff_num_trusted_hops == 2 && h->skip_xff_append &&
			   h->preserve_request_id && h->no_generate_request_id,
		   "xff and request id settings");
		ok(h->suppress_envoy_headers, "the router's suppress_envoy_headers");
		ok(h->max_request_headers_kb == 96 && h->max_headers_count == 50 &&
			   h->idle_timeout_ms == 60000 && h->request_timeout_ms == 20000 &&
			   h->stream_idle_timeout_ms == PX_HCM_STREAM_IDLE_MS_DEF &&
			   h->drain_timeout_ms == 2500,
		   "limits and timeouts (stream_idle_timeout defaults to 5 min)");
		rc = h->routes;
		ok(rc && rc == h->inline_routes && !strcmp(rc->name, "inline"),
		   "inline routes are resolved");
		if (rc) {
			const struct px_vhost *vh = px_vhost_match(rc, "x.web", 5);
			const struct px_route *rt;

			ok(rc->request.nadd == 1 && !strcmp(rc->request.add[0].name, "x-mesh") &&
				   rc->request.add[0].append == PX_OVERWRITE_IF_EXISTS_OR_ADD,
			   "config-level header mutation, names lower-cased");
			ok(vh && vh->retry && vh->retry->retry_on == PX_RETRY_5XX &&
				   vh->retry->num_retries == 1 && vh->include_attempt_count,
			   "vhost retry policy with Envoy's num_retries default 1");
			ok(vh && vh->retry && vh->retry->previous_hosts,
			   "a previous_hosts predicate with Istio's typed_config is accepted");
			for (size_t i = 0; vh && i < sizeof(req_cases) / sizeof(req_cases[0]);
			     i++) {
				const struct req_case *q = &req_cases[i];
				struct px_hdr hdrs[4];
				uint32_t n = 0;
				struct px_req_view rv = {0};
				const struct px_vhost *v2 =
					px_vhost_match(rc, q->authority, strlen(q->authority));
				char want_idx[8] = "";
				const char *got = NULL;

				for (; n < 4 && q->hdr[n][0]; n++)
					hdrs[n] = (struct px_hdr){
						q->hdr[n][0], (uint32_t)strlen(q->hdr[n][0]),
						q->hdr[n][1], (uint32_t)strlen(q->hdr[n][1])};
				rv.method = "GET";
				rv.method_len = 3;
				rv.authority = q->authority;
				rv.authority_len = strlen(q->authority);
				rv.path = q->path;
				rv.path_len = strlen(q->path);
				rv.hdrs = hdrs;
				rv.nhdrs = n;
				rt = v2 ? px_route_match(v2, &rv) : NULL;
				if (rt && rt->name)
					got = rt->name;
				else if (rt) {
					snprintf(want_idx, sizeof(want_idx), "#%td",
						 rt - v2->routes);
					got = want_idx;
				}
				if (q->want)
					is_str(got, q->want, "%s%s routes to %s", q->authority,
					       q->path, q->want);
				else
					ok(!got, "%s%s routes nowhere", q->authority, q->path);
			}
			rt = vh ? &vh->routes[0] : NULL;
			ok(rt && rt->action.no_timeout && rt->match.case_insensitive &&
				   !strcmp(rt->action.host_rewrite_literal, "login.internal"),
			   "timeout 0s is none; case_sensitive false; host_rewrite_literal");
			rt = vh ? &vh->routes[1] : NULL;
			if (rt) {
				const struct px_retry_policy *p = rt->action.retry;

				ok(rt->action.timeout_ms == PX_ROUTE_TIMEOUT_MS_DEF &&
					   rt->action.idle_timeout_ms == 7000 &&
					   !strcmp(rt->action.prefix_rewrite, "/v2/"),
				   "route timeout defaults to 15 s; idle_timeout; prefix_rewrite");
				ok(p &&
					   p->retry_on ==
						   (PX_RETRY_RESET | PX_RETRY_CONNECT_FAILURE |
						    PX_RETRY_RETRIABLE_STATUS_CODES) &&
					   p->num_retries == 1 && p->per_try_timeout_ms == 2000 &&
					   p->base_interval_ms == 100 &&
					   p->max_interval_ms == 1000 &&
					   p->nretriable_status_codes == 2 &&
					   p->retriable_status_codes[1] == 504 &&
					   p->previous_hosts &&
					   p->host_selection_retry_max_attempts == 3,
				   "route retry policy in full");
				ok(rt->action.nhash == 3 &&
					   rt->action.hash[0].kind == PX_HASH_HEADER &&
					   !strcmp(rt->action.hash[0].name, "x-user") &&
					   rt->action.hash[1].kind == PX_HASH_COOKIE &&
					   rt->action.hash[2].kind == PX_HASH_SOURCE_IP &&
					   rt->action.hash[2].terminal,
				   "hash policies");
				ok(rt->match.nheaders == 4 && rt->match.headers[1].invert &&
					   rt->match.headers[2].kind == PX_HDR_RANGE &&
					   rt->match.headers[3].str.kind == PX_STR_PREFIX,
				   "header matchers in their forms");
			}
			rt = vh ? &vh->routes[2] : NULL;
			ok(rt && !strcmp(rt->action.cluster_header, "x-cluster") &&
				   !strcmp(rt->action.regex_rewrite_substitution, "/\\1"),
			   "cluster_header and regex_rewrite");
			rt = vh ? &vh->routes[3] : NULL;
			ok(rt && rt->kind == PX_ROUTE_REDIRECT &&
				   rt->redirect.response_code == 302 &&
				   !strcmp(rt->redirect.scheme, "https") &&
				   !strcmp(rt->redirect.host, "new.example.com"),
			   "redirect");
			rt = vh ? &vh->routes[4] : NULL;
			ok(rt && rt->kind == PX_ROUTE_DIRECT && rt->direct.status == 200 &&
				   !strcmp(rt->direct.body, "ok") &&
				   rt->response.add[0].append == PX_ADD_IF_ABSENT &&
				   !strcmp(rt->response.remove[0], "x-gone"),
			   "direct response with header mutations");
		}
	}

	c = px_cluster_find(s, "PassthroughCluster");
	ok(c && c->type == PX_CLUSTER_ORIGINAL_DST && c->connect_timeout_ms == 10000,
	   "PassthroughCluster is ORIGINAL_DST");
	c = px_cluster_find(s, "web");
	ok(c && c->type == PX_CLUSTER_STATIC && c->lb == PX_LB_LEAST_REQUEST && c->http2 &&
		   c->upstream_idle_timeout_ms == 30000 && c->max_requests_per_connection == 100,
	   "web: HTTP/2 via HttpProtocolOptions, pool settings");
	ok(c && c->cb.set && c->cb.max_connections == 10 && c->cb.max_retries == 5 &&
		   c->cb.max_requests == PX_CB_DEFAULT &&
		   c->cb.max_pending_requests == PX_CB_DEFAULT,
	   "web: DEFAULT circuit breakers only");
	ok(c && c->has_bind4 && !c->has_bind6, "web: upstream_bind_config");
	ok(c && c->connect_timeout_ms == XDS_SNAP_CONNECT_TIMEOUT_MS_DEF,
	   "connect_timeout defaults to 5 s");
	if (c && c->nendpoints == 3) {
		ok(c->endpoints[0].weight == 3 && c->endpoints[0].port == 80 &&
			   c->endpoints[0].healthy && !strcmp(c->endpoints[0].locality, "r1/z1/"),
		   "endpoint weight, port, locality");
		ok(!c->endpoints[1].healthy && c->endpoints[1].weight == 1,
		   "UNHEALTHY endpoint, default weight 1");
		ok(c->endpoints[2].priority == 1 && !c->endpoints[2].locality,
		   "priority 1 endpoint without locality");
	} else {
		ok(0, "web has 3 endpoints");
	}
	c = px_cluster_find(s, "db");
	ok(c && c->type == PX_CLUSTER_STRICT_DNS && c->lb == PX_LB_MAGLEV && c->nsets == 1 &&
		   c->sets[0].maglev && c->sets[0].maglev_size == PX_MAGLEV_TABLE_SIZE && c->http2,
	   "db: maglev table built, deprecated http2_protocol_options");
	ok(c && c->nendpoints == 1 && c->ndns_targets == 1 &&
		   !strcmp(c->dns_targets[0].hostname, "db.internal") &&
		   c->dns_targets[0].port == 5433 && c->dns_targets[0].weight == 4,
	   "db: the hostname endpoint waits for resolution as a dns target");
	c = px_cluster_find(s, "ring");
	ok(c && c->type == PX_CLUSTER_STATIC && c->lb == PX_LB_RING_HASH && c->nsets == 1 &&
		   c->sets[0].ring && c->sets[0].ring_size > 0,
	   "ring: STATIC by default, ring built");
	px_snapshot_put(s);
}

/* RDS and EDS: resources as ADS delivers them. */
static const struct ads_res {
	enum xds_type t;
	const char *yaml;
} ads_res[] = {
	{XDS_LISTENER,
	 "name: l\naddress: {socket_address: {address: 0.0.0.0, port_value: 9080}}\n"
	 "filter_chains: [{filters: [{name: envoy.filters.network.http_connection_manager, "
	 "typed_config: {" HCM_T ", stat_prefix: x, rds: {route_config_name: '9080'}, " ROUTER
	 "}}]}]\n"},
	{XDS_ROUTE, "name: '9080'\nvirtual_hosts: [{name: r, domains: ['*'], routes: [{match: "
		    "{prefix: /}, route: {cluster: 'outbound|9080||reviews'}}]}]\n"},
	{XDS_CLUSTER, "name: 'outbound|9080||reviews'\ntype: EDS\neds_cluster_config: "
		      "{service_name: reviews-svc}\n"},
	{XDS_CLUSTER, "name: waiting\ntype: EDS\n"},
	{XDS_ENDPOINT, "cluster_name: reviews-svc\nendpoints: [{lb_endpoints: [{endpoint: "
		       "{address: {socket_address: {address: 10.2.0.1, port_value: 9080}}}}, "
		       "{endpoint: {address: {socket_address: {address: 10.2.0.2, port_value: "
		       "9080}}}, load_balancing_weight: 2}]}]\n"},
};

static void test_ads(void)
{
	struct xds_config *cfg = xds_config_new();
	struct px_snapshot *s = NULL;
	const struct px_cluster *c;
	struct jtree_err err;
	int rc = 0;

	for (int t = 0; t < XDS_NTYPES; t++)
		cfg->dynamic[t] = 1;
	for (size_t i = 0; i < sizeof(ads_res) / sizeof(ads_res[0]) && !rc; i++) {
		ProtobufCMessage *msg;

		rc = pbjson_parse(ads_res[i].yaml, strlen(ads_res[i].yaml),
				  xds_types[ads_res[i].t].desc, 0, &msg, &err);
		if (!rc) {
			rc = xds_config_add(cfg, ads_res[i].t, msg, "1", 0, NULL, NULL, &err);
			if (rc)
				protobuf_c_message_free_unpacked(msg, NULL);
		}
	}
	if (!rc)
		rc = xds_config_seal(cfg, &err);
	if (!rc)
		rc = xds_snapshot_build(cfg, 1, &s, &err);
	xds_config_free(cfg); /* the snapshot must not depend on it */
	if (!ok(rc == 0 && s, "ADS resources build")) {
		tap_diag("  %s", err.msg);
		return;
	}
	ok(s->nlisteners == 1 &&
		   s->listeners[0].chains[0].http.routes == px_route_config_find(s, "9080"),
	   "RDS name resolves to the route configuration");
	c = px_cluster_find(s, "outbound|9080||reviews");
	ok(c && c->type == PX_CLUSTER_EDS && c->nendpoints == 2 && c->endpoints[1].weight == 2,
	   "EDS cluster takes the assignment named by service_name");
	c = px_cluster_find(s, "waiting");
	ok(c && c->nendpoints == 0, "EDS cluster without an assignment has no endpoints yet");
	px_snapshot_put(s);
}

#define CL(extra)                                                                                  \
	"static_resources: {clusters: [{name: c, " extra                                           \
	", load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: "   \
	"{socket_address: {address: 10.0.0.1, port_value: 1}}}}]}]}}]}"
#define RT(route)                                                                                  \
	"static_resources: {listeners: [{name: h, address: {socket_address: {address: 0.0.0.0, "   \
	"port_value: 80}}, filter_chains: [{filters: [{name: "                                     \
	"envoy.filters.network.http_connection_manager, typed_config: {" HCM_T                     \
	", stat_prefix: h, " ROUTER ", route_config: {name: r, virtual_hosts: [{name: v, "         \
	"domains: ['*'], routes: [{match: {prefix: /}, " route "}]}]}}}]}]}], clusters: [{name: "  \
	"c}]}"
#define RT_PATH                                                                                    \
	"listener \"h\": filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]."  \
	"routes[0]."

#define HRBAC_T "'@type': type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
#define NRBAC_T "'@type': type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
/* An HCM whose first HTTP filter is RBAC with this config. */
#define HRBAC(cfg)                                                                                 \
	"static_resources: {listeners: [{name: h, address: {socket_address: {address: 0.0.0.0, "   \
	"port_value: 80}}, filter_chains: [{filters: [{name: "                                     \
	"envoy.filters.network.http_connection_manager, typed_config: {" HCM_T                     \
	", stat_prefix: h, route_config: {name: r}, http_filters: [{name: "                        \
	"envoy.filters.http.rbac, typed_config: {" HRBAC_T ", " cfg "}}, {name: "                  \
	"envoy.filters.http.router, typed_config: {'@type': "                                      \
	"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]}}]}]}]}"
#define HRBAC_PATH                                                                                 \
	"listener \"h\": filter_chains[0].filters[0].typed_config.http_filters[0].typed_config."

#define LF(filter)                                                                                 \
	"static_resources: {listeners: [{name: l, address: {socket_address: {address: 0.0.0.0, "   \
	"port_value: 81}}, listener_filters: [" filter                                             \
	"], default_filter_chain: {filters: [{name: "                                              \
	"envoy.filters.network.tcp_proxy, typed_config: {" TCP_T                                   \
	", stat_prefix: c, cluster: c}}]}}],"                                                      \
	" clusters: [{name: c, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED}]}"

static const struct bad {
	const char *yaml;
	const char *err;
} bads[] = {
	{LF("{name: envoy.filters.listener.tls_inspector, filter_disabled: {not_match: "
	    "{any_match: true}}}"),
	 "listener \"l\": listener_filters[0].filter_disabled: only destination_port_range, "
	 "or_match and any_match are supported"},
	{LF("{name: envoy.filters.listener.http_inspector, filter_disabled: "
	    "{destination_port_range: {start: 90, end: 80}}}"),
	 "listener \"l\": listener_filters[0].filter_disabled: destination_port_range [90, 80) "
	 "is not a port range"},
	{RT("route: {cluster: c, upgrade_configs: [{upgrade_type: websocket, connect_config: "
	    "{}}]}"),
	 RT_PATH "route: upgrade_configs[0].connect_config needs CONNECT"},
	{RT("route: {cluster: c, upgrade_configs: [{enabled: true}]}"),
	 RT_PATH "route: upgrade_configs[0].upgrade_type is required"},
	{CL("type: STRICT_DNS, dns_failure_refresh_rate: {max_interval: 2s}"),
	 "cluster \"c\": dns_failure_refresh_rate: base_interval: required, and more than 0"},
	{CL("type: STRICT_DNS, dns_failure_refresh_rate: {base_interval: 3s, max_interval: 2s}"),
	 "cluster \"c\": dns_failure_refresh_rate: max_interval: less than base_interval"},
	{CL("lb_policy: CLUSTER_PROVIDED"),
	 "cluster \"c\": lb_policy: CLUSTER_PROVIDED is not supported"},
	{"static_resources: {clusters: [{name: c, type: LOGICAL_DNS, load_assignment: "
	 "{cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: "
	 "{address: a.example, port_value: 1}}}}, {endpoint: {address: {socket_address: {address: "
	 "b.example, port_value: 1}}}}]}]}}]}",
	 "cluster \"c\": load_assignment: a LOGICAL_DNS cluster needs exactly one endpoint"},
	{CL("transport_socket: {name: envoy.transport_sockets.tls, typed_config: {'@type': "
	    "type.googleapis.com/"
	    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext}}"),
	 "cluster \"c\": transport_socket: transport_socket \"envoy.transport_sockets.tls\" is not "
	 "supported (raw_buffer, or tls with an UpstreamTlsContext here)"},
	{CL("typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3."
	    "HttpProtocolOptions: {'@type': "
	    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, "
	    "explicit_http_config: {http3_protocol_options: {}}}}"),
	 "cluster \"c\": typed_extension_protocol_options[\"envoy.extensions.upstreams.http.v3."
	 "HttpProtocolOptions\"].explicit_http_config: HTTP/3 is not supported"},
	{RT("route: {cluster: c, hash_policy: [{query_parameter: {name: u}}]}"),
	 RT_PATH "route.hash_policy[0]: query_parameter is not supported"},
	{RT("route: {cluster: c, retry_policy: {retry_on: 'sometimes'}}"),
	 RT_PATH "route.retry_policy: retry_on: \"sometimes\" is not a retry condition"},
	{RT("route: {cluster: c, host_rewrite_header: x-host}"),
	 RT_PATH "route: host_rewrite_header is not supported"},
	{RT("route: {cluster: c, retry_policy: {retry_host_predicate: [{name: "
	    "envoy.retry_host_predicates.omit_canary_hosts}]}}"),
	 RT_PATH "route.retry_policy: retry_host_predicate[0]: "
		 "\"envoy.retry_host_predicates.omit_canary_hosts\" is not supported"},
	{RT("direct_response: {status: 99}"),
	 RT_PATH "direct_response: status: 99 is out of range 200..599"},
	{RT("direct_response: {status: 200, body: {filename: /etc/passwd}}"),
	 RT_PATH "direct_response: body: only inline_string and inline_bytes are supported"},
	{RT("route: {cluster: c}, typed_per_filter_config: {envoy.filters.http.fault: {'@type': "
	    "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault}}"),
	 "listener \"h\": filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]."
	 "routes[0]: typed_per_filter_config[\"envoy.filters.http.fault\"] is not supported"},
	/* Malformed or unsupported RBAC: NACKed with the field's path. */
	{HRBAC("rules: {action: 7}"), HRBAC_PATH "rules: action: 7 is not ALLOW, DENY or LOG"},
	{HRBAC("rules: {policies: {p: {permissions: [{destination_ip: {address_prefix: "
	       "10.0.0.300, prefix_len: 8}}], principals: [{any: true}]}}}"),
	 HRBAC_PATH "rules.policies[\"p\"].permissions[0].destination_ip: address_prefix: "
		    "\"10.0.0.300\" is not an IP address"},
	{HRBAC("rules: {policies: {p: {permissions: [{any: true}], principals: [{remote_ip: "
	       "{address_prefix: 10.0.0.0, prefix_len: 33}}]}}}"),
	 HRBAC_PATH "rules.policies[\"p\"].principals[0].remote_ip: prefix_len: 33 is out of "
		    "range"},
	{HRBAC("rules: {policies: {p: {permissions: [{url_path: {path: {safe_regex: {regex: "
	       "'/a[('}}}}], principals: [{any: true}]}}}"),
	 HRBAC_PATH "rules.policies[\"p\"].permissions[0].url_path.path: regex \"/a[(\": missing "
		    "terminating ] for character class at offset 4"},
	{HRBAC("rules: {policies: {p: {permissions: [{metadata: {filter: f, path: [{key: k}], "
	       "value: {present_match: true}}}], principals: [{any: true}]}}}"),
	 HRBAC_PATH "rules.policies[\"p\"].permissions[0]: metadata is not supported"},
	{HRBAC("rules: {policies: {p: {permissions: [{any: true}], principals: [{and_ids: {ids: "
	       "[{any: true}, {filter_state: {key: k, string_match: {exact: v}}}]}}]}}}"),
	 HRBAC_PATH "rules.policies[\"p\"].principals[0].and_ids.ids[1]: filter_state is not "
		    "supported"},
	{HRBAC("rules: {policies: {p: {permissions: [{not_rule: {requested_server_name: {}}}], "
	       "principals: [{any: true}]}}}"),
	 HRBAC_PATH "rules.policies[\"p\"].permissions[0].not_rule.requested_server_name: a "
		    "string matcher needs exact, prefix, suffix, contains or safe_regex"},
	{HRBAC("rules: {policies: {p: {permissions: [{any: true}], principals: [{any: true}], "
	       "condition: {const_expr: {bool_value: true}}}}}"),
	 HRBAC_PATH "rules.policies[\"p\"]: condition is not supported"},
	{HRBAC("rules: {policies: {p: {permissions: [{any: true}]}}}"),
	 HRBAC_PATH "rules.policies[\"p\"]: a policy needs permissions and principals"},
	{HRBAC("shadow_rules: {policies: {p: {permissions: [{destination_port_range: {start: 9, "
	       "end: 70000}}], principals: [{any: true}]}}}"),
	 HRBAC_PATH "shadow_rules.policies[\"p\"].permissions[0]: destination_port_range: [9, "
		    "70000) is not a port range"},
	{HRBAC("matcher: {}"), "listener \"h\": filter_chains[0].filters[0].typed_config."
			       "http_filters[0].typed_config: matcher: not supported (use rules)"},
	{RT("route: {cluster: c}, typed_per_filter_config: {envoy.filters.http.rbac: {'@type': "
	    "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute, rbac: {rules: "
	    "{policies: {q: {permissions: [{uri_template: {name: t}}], principals: [{any: "
	    "true}]}}}}}}"),
	 RT_PATH "typed_per_filter_config[\"envoy.filters.http.rbac\"].rbac.rules.policies[\"q\"]."
		 "permissions[0]: uri_template is not supported"},
	{"static_resources: {listeners: [{name: t, address: {socket_address: {address: 0.0.0.0, "
	 "port_value: 1}}, filter_chains: [{filters: [{name: envoy.filters.network.rbac, "
	 "typed_config: {" NRBAC_T ", stat_prefix: tcp., rules: {action: DENY, policies: {p: "
	 "{permissions: [{any: true}], principals: [{direct_remote_ip: {address_prefix: "
	 "nope}}]}}}}}"
	 ", {name: envoy.filters.network.tcp_proxy, typed_config: {" TCP_T
	 ", stat_prefix: t, cluster: c}}]}]}], clusters: [{name: c}]}",
	 "listener \"t\": filter_chains[0].filters[0].typed_config.rules.policies[\"p\"]."
	 "principals[0].direct_remote_ip: address_prefix: \"nope\" is not an IP address"},
	{RT("route: {cluster: nope}"), NULL}, /* caught by the bootstrap checks already */
	{"static_resources: {listeners: [{name: t, address: {socket_address: {address: 0.0.0.0, "
	 "port_value: 1}}, filter_chains: [{transport_socket: {name: envoy.transport_sockets.tls}, "
	 "filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {" TCP_T
	 ", stat_prefix: t, cluster: c}}]}]}], clusters: [{name: c}]}",
	 "listener \"t\": filter_chains[0].transport_socket: transport_socket "
	 "\"envoy.transport_sockets.tls\" is not supported (raw_buffer, or tls with a "
	 "DownstreamTlsContext here)"},
	{"static_resources: {listeners: [{name: t, address: {socket_address: {address: 0.0.0.0, "
	 "port_value: 1}}, filter_chains: [{filter_chain_match: {prefix_ranges: [{address_prefix: "
	 "10.0.0.0, prefix_len: 40}]}, filters: [{name: envoy.filters.network.tcp_proxy, "
	 "typed_config: {" TCP_T ", stat_prefix: t, cluster: c}}]}]}], clusters: [{name: c}]}",
	 "listener \"t\": filter_chains[0].filter_chain_match.prefix_ranges[0]: prefix_len: 40 is "
	 "out of range"},
};

static void test_errors(void)
{
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct jtree_err err;
		int rc;
		struct px_snapshot *s = build_text(bads[i].yaml, &err, &rc);

		if (!bads[i].err) {
			ok(rc == -EINVAL && !s, "bad[%zu] rejected before translation: %s", i,
			   err.msg);
			continue;
		}
		ok(rc == -EINVAL && !s, "bad[%zu] is rejected", i);
		is_str(err.msg, bads[i].err, "bad[%zu] names the path", i);
		px_snapshot_put(s);
	}
}

/* Priority levels: the overprovisioning factor and the panic threshold reach the cluster, and
 * values Envoy would refuse are refused with the path. */
static void test_priorities(void)
{
	static const char good[] =
		"static_resources: {clusters: [{name: c, common_lb_config: "
		"{healthy_panic_threshold: "
		"{value: 0}}, load_assignment: {cluster_name: c, policy: {overprovisioning_factor: "
		"200}, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: "
		"10.0.0.1, port_value: 1}}}}]}, {priority: 1, lb_endpoints: [{endpoint: {address: "
		"{socket_address: {address: 10.0.0.2, port_value: 1}}}}]}]}}, {name: l, "
		"common_lb_config: {locality_weighted_lb_config: {}}, load_assignment: "
		"{cluster_name: "
		"l, endpoints: [{locality: {zone: a}, load_balancing_weight: 1, lb_endpoints: "
		"[{endpoint: {address: {socket_address: {address: 10.0.0.3, port_value: 1}}}}]}, "
		"{locality: {zone: b}, load_balancing_weight: 4, lb_endpoints: [{endpoint: "
		"{address: "
		"{socket_address: {address: 10.0.0.4, port_value: 1}}}}]}]}}]}";
	static const char *const bad[][2] = {
		{"static_resources: {clusters: [{name: c, load_assignment: {cluster_name: c, "
		 "endpoints: [{priority: 32, lb_endpoints: [{endpoint: {address: {socket_address: "
		 "{address: 10.0.0.1, port_value: 1}}}}]}]}}]}",
		 "cluster \"c\": load_assignment: endpoints[0].priority: 32 is above the limit of "
		 "31"},
		{"static_resources: {clusters: [{name: c, common_lb_config: "
		 "{healthy_panic_threshold: "
		 "{value: 150}}}]}",
		 "cluster \"c\": common_lb_config.healthy_panic_threshold: 150 is not a "
		 "percentage"},
	};
	struct jtree_err err;
	int rc;
	struct px_snapshot *s = build_text(good, &err, &rc);
	const struct px_cluster *c = s ? px_cluster_find(s, "c") : NULL;

	ok(c && c->overprovisioning_pct == 200 && c->panic_disabled && c->nsets == 2 &&
		   c->sets[0].load == 100 && c->sets[1].load == 0,
	   "overprovisioning_factor and a 0%% panic threshold reach the cluster: %s",
	   rc ? err.msg : "two levels");
	c = s ? px_cluster_find(s, "l") : NULL;
	ok(c && c->locality_weighted && c->nsets == 2 && c->sets[0].share == 200000 &&
		   c->sets[1].share == 800000,
	   "locality_weighted_lb_config: localities weighted 1:4 get 20%% and 80%%");
	px_snapshot_put(s);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = build_text(bad[i][0], &err, &rc);
		ok(rc == -EINVAL && !s, "priority bad[%zu] is rejected", i);
		is_str(err.msg, bad[i][1], "and names the field");
		px_snapshot_put(s);
	}
}

/* upgrade_configs on the HCM and on routes, and a connect_matcher route. */
static void test_upgrades(void)
{
	static const char yaml[] =
		"static_resources: {listeners: [{name: h, address: {socket_address: {address: "
		"0.0.0.0, port_value: 80}}, filter_chains: [{filters: [{name: "
		"envoy.filters.network.http_connection_manager, typed_config: {" HCM_T
		", stat_prefix: h, upgrade_configs: [{upgrade_type: websocket}, {upgrade_type: "
		"CONNECT, enabled: false}], http2_protocol_options: {allow_connect: true, "
		"max_concurrent_streams: 9}, " ROUTER
		", route_config: {name: r, virtual_hosts: [{name: "
		"v, domains: ['*'], routes: [{match: {connect_matcher: {}}, route: {cluster: c, "
		"upgrade_configs: [{upgrade_type: CONNECT, connect_config: {}}]}}, {match: "
		"{prefix: "
		"/}, route: {cluster: c, upgrade_configs: [{upgrade_type: websocket, enabled: "
		"false}]}}]}]}}}]}]}], clusters: [{name: c}]}";
	struct jtree_err err;
	int rc;
	struct px_snapshot *s = build_text(yaml, &err, &rc);
	const struct px_hcm *h = s ? &s->listeners[0].chains[0].http : NULL;
	const struct px_route *r = h ? h->inline_routes->vhosts[0].routes : NULL;

	ok(h && h->nupgrades == 2 && !strcmp(h->upgrades[0].type, "websocket") &&
		   h->upgrades[0].enabled && !strcmp(h->upgrades[1].type, "CONNECT") &&
		   !h->upgrades[1].enabled,
	   "HCM upgrade_configs: types and enabled (default true): %s", rc ? err.msg : "ok");
	ok(h && h->h2_allow_connect && h->h2_max_streams == 9,
	   "http2_protocol_options.allow_connect (extended CONNECT) and max_concurrent_streams");
	ok(r && r[0].match.kind == PX_PATH_CONNECT && r[0].action.nupgrades == 1 &&
		   r[0].action.upgrades[0].enabled && r[0].action.upgrades[0].connect_terminate,
	   "a connect_matcher route with CONNECT + connect_config terminates CONNECT");
	ok(r && r[1].action.nupgrades == 1 && !r[1].action.upgrades[0].enabled &&
		   !r[1].action.upgrades[0].connect_terminate,
	   "a route's upgrade_configs entry can disable a type");
	px_snapshot_put(s);
}

/* Istio's istio_authn network filter (wrapped in a TypedStruct) only records principals: the
 * chain runs without it. Another TypedStruct-wrapped type stays an error. */
static void test_istio_authn(void)
{
	static const char fmt[] =
		"static_resources: {listeners: [{name: in, address: {socket_address: {address: "
		"0.0.0.0, port_value: 15006}}, filter_chains: [{filters: [{name: istio_authn, "
		"typed_config: {'@type': type.googleapis.com/udpa.type.v1.TypedStruct, type_url: "
		"'type.googleapis.com/%s'}}, {name: envoy.filters.network.tcp_proxy, "
		"typed_config: {'@type': "
		"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, "
		"stat_prefix: t, cluster: c}}]}]}], clusters: [{name: c}]}";
	char yaml[1024];
	struct jtree_err err;
	int rc;
	struct px_snapshot *s;

	snprintf(yaml, sizeof(yaml), fmt, "io.istio.network.authn.Config");
	s = build_text(yaml, &err, &rc);
	ok(s && s->listeners[0].nchains == 1 && s->listeners[0].chains[0].kind == PX_NF_TCP_PROXY,
	   "istio_authn (a TypedStruct) is dropped, the chain keeps its tcp_proxy: %s",
	   rc ? err.msg : "ok");
	px_snapshot_put(s);
	snprintf(yaml, sizeof(yaml), fmt, "io.istio.network.other.Config");
	s = build_text(yaml, &err, &rc);
	ok(!s && strstr(err.msg, "unsupported network filter \"istio_authn\""),
	   "a TypedStruct of an unknown type is still refused: %s", err.msg);
	px_snapshot_put(s);
}

/* Istio's AuthorizationPolicy shapes: an ALLOW and a DENY envoy.filters.http.rbac in the inbound
 * HCM (principals as or_ids/and_ids of authenticated.principal_name, paths and methods), a
 * route that disables one filter and one that overrides it, and envoy.filters.network.rbac
 * (CONTINUOUS accepted) before a tcp_proxy. Translated, then evaluated. */
static void test_rbac(void)
{
	static const char yaml[] =
		"static_resources:\n"
		"  listeners:\n"
		"  - name: virtualInbound\n"
		"    address: {socket_address: {address: 0.0.0.0, port_value: 15006}}\n"
		"    filter_chains:\n"
		"    - name: 0.0.0.0_8080\n"
		"      filter_chain_match: {destination_port: 8080}\n"
		"      filters:\n"
		"      - name: envoy.filters.network.http_connection_manager\n"
		"        typed_config:\n"
		"          " HCM_T "\n"
		"          stat_prefix: inbound_0.0.0.0_8080\n"
		"          http_filters:\n"
		"          - name: envoy.filters.http.rbac\n"
		"            typed_config:\n"
		"              " HRBAC_T "\n"
		"              rules:\n"
		"                action: DENY\n"
		"                policies:\n"
		"                  ns[foo]-policy[deny-admin]-rule[0]:\n"
		"                    permissions: [{and_rules: {rules: [{or_rules: {rules: "
		"[{url_path: "
		"{path: {prefix: /admin}}}]}}, {or_rules: {rules: [{header: {name: ':method', "
		"string_match: {exact: POST}}}]}}]}}]\n"
		"                    principals: [{and_ids: {ids: [{any: true}]}}]\n"
		"              shadow_rules: {action: DENY, policies: {shadow: {permissions: "
		"[{any: "
		"true}], principals: [{not_id: {remote_ip: {address_prefix: 10.0.0.0, prefix_len: "
		"8}}}]}}}\n"
		"          - name: envoy.filters.http.rbac\n"
		"            typed_config:\n"
		"              " HRBAC_T "\n"
		"              rules:\n"
		"                policies:\n"
		"                  ns[foo]-policy[zz]-rule[0]:\n"
		"                    permissions: [{destination_port: 9}]\n"
		"                    principals: [{any: true}]\n"
		"                  ns[foo]-policy[bar]-rule[0]:\n"
		"                    permissions: [{and_rules: {rules: [{or_rules: {rules: "
		"[{header: {name: ':method', string_match: {exact: GET}}}]}}]}}]\n"
		"                    principals:\n"
		"                    - and_ids: {ids: [{or_ids: {ids: [{authenticated: "
		"{principal_name: {exact: spiffe://cluster.local/ns/foo/sa/bar}}}, {authenticated: "
		"{principal_name: {suffix: /sa/ops}}}]}}]}\n"
		"                    - and_ids: {ids: [{or_ids: {ids: [{authenticated: "
		"{principal_name: {prefix: spiffe://cluster.local/ns/trusted/}}}]}}]}\n"
		"          - {name: envoy.filters.http.router, typed_config: {'@type': "
		"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}\n"
		"          route_config:\n"
		"            name: inbound|8080||\n"
		"            virtual_hosts:\n"
		"            - name: inbound|http|8080\n"
		"              domains: ['*']\n"
		"              routes:\n"
		"              - name: health\n"
		"                match: {prefix: /healthz}\n"
		"                route: {cluster: c}\n"
		"                typed_per_filter_config: {envoy.filters.http.rbac: {'@type': "
		"type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute}}\n"
		"              - name: default\n"
		"                match: {prefix: /}\n"
		"                route: {cluster: c}\n"
		"                typed_per_filter_config: {envoy.filters.http.rbac: {'@type': "
		"type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute, rbac: "
		"{rules: {action: LOG}}}}\n"
		"    - name: 0.0.0.0_5432\n"
		"      filter_chain_match: {destination_port: 5432}\n"
		"      filters:\n"
		"      - name: envoy.filters.network.rbac\n"
		"        typed_config:\n"
		"          " NRBAC_T "\n"
		"          stat_prefix: tcp.\n"
		"          enforcement_type: CONTINUOUS\n"
		"          rules:\n"
		"            policies:\n"
		"              ns[db]-policy[clients]-rule[0]:\n"
		"                permissions: [{and_rules: {rules: [{or_rules: {rules: "
		"[{destination_port: 5432}, {destination_port_range: {start: 6000, end: 6010}}]}}, "
		"{not_rule: {destination_ip: {address_prefix: 10.9.0.0, prefix_len: 16}}}]}}]\n"
		"                principals: [{and_ids: {ids: [{or_ids: {ids: [{direct_remote_ip: "
		"{address_prefix: 10.1.0.0, prefix_len: 16}}, {source_ip: {address_prefix: "
		"192.168.0.1}}]}}]}}]\n"
		"      - name: envoy.filters.network.tcp_proxy\n"
		"        typed_config: {" TCP_T ", stat_prefix: db, cluster: c}\n"
		"  clusters: [{name: c}]\n";
	struct jtree_err err;
	int rc;
	struct px_snapshot *s = build_text(yaml, &err, &rc);
	const struct px_listener *l = s ? listener(s, "virtualInbound") : NULL;
	const struct px_hcm *h = l ? &l->chains[0].http : NULL;
	const struct px_filter_chain *tcp = l ? &l->chains[1] : NULL;
	const struct px_route *rt = h ? h->inline_routes->vhosts[0].routes : NULL;
	struct shunt_addr dst, src, far;
	struct px_req_view get = {.method = "GET", .method_len = 3, .path = "/x", .path_len = 2};
	struct px_req_view post = {
		.method = "POST", .method_len = 4, .path = "/admin/users?x", .path_len = 14};
	struct px_rbac_input in = {.req = &get,
				   .dst = &dst,
				   .dst_port = 8080,
				   .direct_remote = &src,
				   .authenticated = true,
				   .principal = "spiffe://cluster.local/ns/foo/sa/bar"};
	struct px_rbac_decision d;
	const char *pol;

	ok(s && h && h->nrbac == 2, "Istio's two HTTP RBAC filters translate: %s",
	   rc ? err.msg : "ok");
	if (!s || !h || h->nrbac != 2) {
		px_snapshot_put(s);
		return;
	}
	addr_parse(&dst, "10.1.2.3");
	addr_parse(&src, "10.1.0.9");
	addr_parse(&far, "172.16.0.1");
	is_str(h->rbac[0].name, "envoy.filters.http.rbac", "the filter keeps its name");
	ok(h->rbac[0].rbac->rules->action == PX_RBAC_DENY && h->rbac[0].rbac->shadow &&
		   h->rbac[1].rbac->rules->action == PX_RBAC_ALLOW,
	   "actions DENY (with shadow rules) and ALLOW (the default)");
	is_str(h->rbac[1].rbac->rules->policies[0].name, "ns[foo]-policy[bar]-rule[0]",
	       "policies are sorted by name");
	ok(px_rbac_rules_allow(h->rbac[1].rbac->rules, &in, &pol) &&
		   !strcmp(pol, "ns[foo]-policy[bar]-rule[0]"),
	   "ALLOW: GET from spiffe://cluster.local/ns/foo/sa/bar (exact) is allowed");
	in.principal = "spiffe://other/ns/x/sa/ops";
	ok(px_rbac_rules_allow(h->rbac[1].rbac->rules, &in, &pol), "ALLOW: suffix /sa/ops");
	in.principal = "spiffe://cluster.local/ns/trusted/sa/any";
	ok(px_rbac_rules_allow(h->rbac[1].rbac->rules, &in, &pol),
	   "ALLOW: the second principal (namespace prefix)");
	in.principal = "spiffe://cluster.local/ns/foo/sa/baz";
	ok(!px_rbac_rules_allow(h->rbac[1].rbac->rules, &in, &pol) && !pol,
	   "ALLOW: another service account is denied");
	in.authenticated = false;
	in.principal = NULL;
	ok(!px_rbac_rules_allow(h->rbac[1].rbac->rules, &in, &pol), "ALLOW: plaintext is denied");
	in.req = &post;
	px_rbac_eval(h->rbac[0].rbac, &in, &d);
	ok(!d.enforced.allowed && !strcmp(d.enforced.policy, "ns[foo]-policy[deny-admin]-rule[0]"),
	   "DENY: POST /admin/users (query dropped) is denied by its policy");
	ok(d.has_shadow && d.shadow.allowed, "shadow: a 10/8 client is not shadow-denied");
	in.req = &get;
	in.direct_remote = &far;
	px_rbac_eval(h->rbac[0].rbac, &in, &d);
	ok(d.enforced.allowed && !d.shadow.allowed, "DENY: GET passes; shadow denies 172.16/12");
	ok(rt && rt[0].nrbac == 1 && !strcmp(rt[0].rbac[0].filter, "envoy.filters.http.rbac") &&
		   rt[0].rbac[0].rbac == NULL,
	   "an empty RBACPerRoute disables the filter on its route");
	ok(rt && rt[1].nrbac == 1 && rt[1].rbac[0].rbac &&
		   rt[1].rbac[0].rbac->rules->action == PX_RBAC_LOG,
	   "an RBACPerRoute with rbac overrides it");

	ok(tcp && tcp->kind == PX_NF_TCP_PROXY && tcp->nrbac == 1 &&
		   !strcmp(tcp->rbac[0].name, "envoy.filters.network.rbac"),
	   "envoy.filters.network.rbac before tcp_proxy translates (CONTINUOUS accepted)");
	if (tcp && tcp->nrbac == 1) {
		struct px_rbac_input nin = {.dst = &dst, .dst_port = 5432, .direct_remote = &src};

		ok(px_rbac_rules_allow(tcp->rbac[0].rbac->rules, &nin, &pol),
		   "network: 10.1/16 to 5432 is allowed");
		nin.dst_port = 6009;
		ok(px_rbac_rules_allow(tcp->rbac[0].rbac->rules, &nin, &pol),
		   "network: the port range's last port is allowed");
		nin.dst_port = 6010;
		ok(!px_rbac_rules_allow(tcp->rbac[0].rbac->rules, &nin, &pol),
		   "network: past the range is denied");
		nin.dst_port = 5432;
		nin.direct_remote = &far;
		ok(!px_rbac_rules_allow(tcp->rbac[0].rbac->rules, &nin, &pol),
		   "network: another source is denied");
		addr_parse(&far, "192.168.0.1");
		ok(px_rbac_rules_allow(tcp->rbac[0].rbac->rules, &nin, &pol),
		   "network: source_ip (a /32 by default) is allowed");
		addr_parse(&dst, "10.9.1.1");
		ok(!px_rbac_rules_allow(tcp->rbac[0].rbac->rules, &nin, &pol),
		   "network: not_rule destination_ip excludes 10.9/16");
	}
	px_snapshot_put(s);
}

/* Names of DNS clusters resolved through the lookup hook, per lookup family. */
static int fake_lookup(void *ctx, const char *host, int family, struct shunt_addr *out, int max)
{
	static const char *const v4[] = {"10.9.0.1", "10.9.0.2"}, *const v6[] = {"fd09::1"};
	int n = 0;

	(*(int *)ctx)++;
	if (strcmp(host, "svc.example"))
		return 0;
	if (family != PX_DNS_V6_ONLY && family != PX_DNS_AUTO)
		for (int i = 0; i < 2 && n < max; i++)
			addr_parse(&out[n++], v4[i]);
	if (family != PX_DNS_V4_ONLY && family != PX_DNS_V4_PREFERRED)
		addr_parse(&out[n++], v6[0]);
	return n;
}

static void test_dns_clusters(void)
{
	static const char *const yaml[] = {
		"static_resources: {clusters: [{name: s, type: STRICT_DNS, dns_lookup_family: "
		"V4_ONLY, dns_refresh_rate: 2s, load_assignment: {cluster_name: s, endpoints: "
		"[{priority: 1, lb_endpoints: [{endpoint: {address: {socket_address: {address: "
		"svc.example, port_value: 8080}}}, load_balancing_weight: 3}, {endpoint: {address: "
		"{socket_address: {address: 10.1.1.1, port_value: 9}}}}]}]}}]}",
		"static_resources: {clusters: [{name: s, type: STRICT_DNS, dns_lookup_family: ALL, "
		"dns_failure_refresh_rate: {base_interval: 0.5s}, "
		"load_assignment: {cluster_name: s, endpoints: [{lb_endpoints: [{endpoint: "
		"{address: "
		"{socket_address: {address: svc.example, port_value: 80}}}}]}]}}]}",
		"static_resources: {clusters: [{name: s, type: LOGICAL_DNS, load_assignment: "
		"{cluster_name: s, endpoints: [{lb_endpoints: [{endpoint: {address: "
		"{socket_address: "
		"{address: svc.example, port_value: 80}}}}]}]}}]}",
		"static_resources: {clusters: [{name: s, type: STRICT_DNS, load_assignment: "
		"{cluster_name: s, endpoints: [{lb_endpoints: [{endpoint: {address: "
		"{socket_address: "
		"{address: unknown.example, port_value: 80}}}}]}]}}]}",
	};
	static const uint32_t want_n[] = {3, 3, 1, 0};
	int calls = 0;
	const struct xds_dns dns = {.lookup = fake_lookup, .ctx = &calls};

	for (size_t i = 0; i < sizeof(yaml) / sizeof(yaml[0]); i++) {
		struct xds_config *cfg;
		struct jtree_err err;
		struct px_snapshot *s = NULL;
		int rc = bootstrap_parse(yaml[i], strlen(yaml[i]), &cfg, &err);

		if (!rc) {
			rc = xds_snapshot_build_dns(cfg, 1, &dns, &s, &err);
			xds_config_free(cfg);
		}
		const struct px_cluster *c = s ? px_cluster_find(s, "s") : NULL;

		ok(c && c->nendpoints == want_n[i] && c->ndns_targets == 1,
		   "dns[%zu]: %u endpoints%s%s", i, c ? c->nendpoints : 0, rc ? ": " : "",
		   rc ? err.msg : "");
		if (i == 0 && c && c->nendpoints == 3) {
			char a[ADDR_STRLEN];

			ok(c->dns_family == PX_DNS_V4_ONLY && c->dns_refresh_ms == 2000 &&
				   !strcmp(addr_fmt(&c->endpoints[1].addr, a, sizeof(a)),
					   "10.9.0.1") &&
				   c->endpoints[1].port == 8080 && c->endpoints[1].weight == 3 &&
				   c->endpoints[1].priority == 1 && c->endpoints[1].healthy,
			   "V4_ONLY: the name's IPv4 addresses follow the IP endpoint, with the "
			   "port, "
			   "weight and priority of their lb_endpoint");
		}
		if (i == 1 && c)
			ok(c->dns_failure_base_ms == 500 && c->dns_failure_max_ms == 5000 &&
				   c->dns_refresh_ms == PX_DNS_REFRESH_MS_DEF,
			   "dns_failure_refresh_rate: base 0.5 s, max ten times that (Envoy's "
			   "default)");
		if (i == 0 && c)
			ok(c->dns_failure_base_ms == 0, "no dns_failure_refresh_rate: none");
		if (i == 2 && c && c->nendpoints == 1)
			ok(c->logical_dns && addr_is_v4(&c->endpoints[0].addr) == false,
			   "LOGICAL_DNS: the first address only (AUTO prefers IPv6)");
		px_snapshot_put(s);
	}
	ok(calls == 4, "one lookup per name and build (%d)", calls);
}

/* The route's gRPC deadline settings: max_stream_duration's, else the older max_grpc_timeout. */
static void test_grpc_timeout(void)
{
	static const char *const yaml[] = {
		RT("route: {cluster: c, max_stream_duration: {grpc_timeout_header_max: 2s, "
		   "grpc_timeout_header_offset: 0.1s}}"),
		RT("route: {cluster: c, max_grpc_timeout: 0s, grpc_timeout_offset: 0.05s}"),
		RT("route: {cluster: c}"),
	};
	static const struct {
		bool on, rewrite;
		uint32_t max, offset;
	} want[] = {{true, false, 2000, 100}, {true, true, 0, 50}, {false, false, 0, 0}};

	for (size_t i = 0; i < sizeof(yaml) / sizeof(yaml[0]); i++) {
		struct jtree_err err;
		int rc;
		struct px_snapshot *s = build_text(yaml[i], &err, &rc);
		const struct px_route_action *a = s ? &s->listeners[0]
								  .chains[0]
								  .http.inline_routes->vhosts[0]
								  .routes[0]
								  .action
						    : NULL;

		ok(a && a->grpc_timeout == want[i].on && a->grpc_timeout_max_ms == want[i].max &&
			   a->grpc_timeout_offset_ms == want[i].offset &&
			   a->grpc_timeout_rewrite == want[i].rewrite,
		   "grpc timeout settings [%zu]: %s", i, rc ? err.msg : "as configured");
		px_snapshot_put(s);
	}
}

/* ---- Istio's reference config dumps ------------------------------------------------------- */

static const char *const ref_dirs[] = {
	"tests/fixtures/istio-reference/xds",
};

/* What one resource of a dump became: its name, and the error if it did not translate. */
struct ref_result {
	enum xds_type t;
	char name[256];
	char err[JTREE_ERR_MAX];
	struct px_snapshot *s;
};

static struct ref_result results[512];
static size_t nresults;
static unsigned ref_warnings;

static int add_yaml(struct xds_config *cfg, enum xds_type t, const char *yaml)
{
	ProtobufCMessage *msg;
	struct jtree_err err;
	int rc = pbjson_parse(yaml, strlen(yaml), xds_types[t].desc, 0, &msg, &err);

	if (!rc && (rc = xds_config_add(cfg, t, msg, "stub", 0, NULL, NULL, &err)))
		protobuf_c_message_free_unpacked(msg, NULL);
	return rc;
}

/* Translates one resource of a dump on its own. The dumps rarely hold both ends of a reference,
 * so every cluster it names is supplied as an empty EDS cluster, and a load assignment gets an
 * EDS cluster of its name. */
/* static_index: a static listener's place in static_resources (-1 for the others). */
static void translate_one(const ProtobufCMessage *any, int static_index)
{
	struct ref_result *r = &results[nresults];
	struct xds_config *cfg = xds_config_new();
	ProtobufCMessage *msg;
	struct jtree_err err = {0};
	enum xds_type t;
	int rc;

	if (nresults + 1 >= sizeof(results) / sizeof(results[0]) || !cfg) {
		xds_config_free(cfg);
		return;
	}
	nresults++;
	for (int i = 0; i < XDS_NTYPES; i++)
		cfg->dynamic[i] = 1;
	rc = xds_resource_from_any(any, &t, &msg, &err);
	if (rc) {
		snprintf(r->err, sizeof(r->err), "decode: %s", err.msg);
		xds_config_free(cfg);
		return;
	}
	r->t = t;
	/* An unnamed static listener is named as the bootstrap loader names it. */
	if (t == XDS_LISTENER && static_index >= 0)
		xds_listener_name_static((Envoy__Config__Listener__V3__Listener *)msg,
					 (size_t)static_index);
	snprintf(r->name, sizeof(r->name), "%s", xds_resource_name(t, msg));
	rc = xds_config_add(cfg, t, msg, "ref", 0, NULL, NULL, &err);
	if (rc) {
		protobuf_c_message_free_unpacked(msg, NULL);
		snprintf(r->err, sizeof(r->err), "check: %s", err.msg);
		xds_config_free(cfg);
		return;
	}
	{
		const struct xds_resource *res = &cfg->res[t][0];
		size_t nrefs = res->n_refs;
		char **names = calloc(nrefs + 1, sizeof(char *));
		char yaml[600];

		for (size_t i = 0; names && i < nrefs; i++)
			if (res->refs[i].type == XDS_CLUSTER)
				names[i] = strdup(res->refs[i].name);
		if (t == XDS_ENDPOINT && names)
			names[nrefs] = strdup(r->name);
		for (size_t i = 0; names && i <= nrefs && !rc; i++) {
			if (!names[i] || xds_config_find(cfg, XDS_CLUSTER, names[i]))
				continue;
			snprintf(yaml, sizeof(yaml), "{name: '%s', type: EDS}", names[i]);
			rc = add_yaml(cfg, XDS_CLUSTER, yaml);
			if (rc == -EINVAL) /* a duplicate stub: fine */
				rc = 0;
		}
		for (size_t i = 0; names && i <= nrefs; i++)
			free(names[i]);
		free(names);
	}
	ref_warnings += cfg->warnings;
	if (!rc)
		rc = xds_config_seal(cfg, &err);
	if (!rc)
		rc = xds_snapshot_build(cfg, 1, &r->s, &err);
	if (rc)
		snprintf(r->err, sizeof(r->err), "%s", err.msg);
	xds_config_free(cfg);
}

#define ADMIN(x) Envoy__Admin__V3__##x

static void translate_dump(const char *path)
{
	size_t len = 0;
	char *text = NULL;
	FILE *f = fopen(path, "r");
	ProtobufCMessage *dump = NULL;
	struct jtree_err err;

	if (f) {
		fseek(f, 0, SEEK_END);
		len = (size_t)ftell(f);
		rewind(f);
		text = malloc(len + 1);
		if (text && fread(text, 1, len, f) != len)
			len = 0;
		fclose(f);
	}
	if (!text || !len ||
	    pbjson_parse(text, len, &envoy__admin__v3__config_dump__descriptor, PBJSON_OPAQUE_ANY,
			 &dump, &err)) {
		tap_diag("%s: not translated: cannot read it as a v3 ConfigDump: %s", path,
			 text && len ? err.msg : "unreadable");
		free(text);
		return;
	}
	free(text);
	for (size_t i = 0; i < ((ADMIN(ConfigDump) *)dump)->n_configs; i++) {
		ProtobufCMessage *sec;

		if (pbjson_any_unpack(&((ADMIN(ConfigDump) *)dump)->configs[i]->base, &sec, &err))
			continue; /* bootstrap and others the registry has no use for here */
		if (sec->descriptor == &envoy__admin__v3__listeners_config_dump__descriptor) {
			ADMIN(ListenersConfigDump) *d = (ADMIN(ListenersConfigDump) *)sec;

			for (size_t k = 0; k < d->n_static_listeners; k++)
				translate_one(&d->static_listeners[k]->listener->base, (int)k);
			for (size_t k = 0; k < d->n_dynamic_listeners; k++)
				if (d->dynamic_listeners[k]->active_state)
					translate_one(&d->dynamic_listeners[k]
							       ->active_state->listener->base,
						      -1);
		} else if (sec->descriptor == &envoy__admin__v3__clusters_config_dump__descriptor) {
			ADMIN(ClustersConfigDump) *d = (ADMIN(ClustersConfigDump) *)sec;

			for (size_t k = 0; k < d->n_static_clusters; k++)
				translate_one(&d->static_clusters[k]->cluster->base, -1);
			for (size_t k = 0; k < d->n_dynamic_active_clusters; k++)
				translate_one(&d->dynamic_active_clusters[k]->cluster->base, -1);
		} else if (sec->descriptor == &envoy__admin__v3__routes_config_dump__descriptor) {
			ADMIN(RoutesConfigDump) *d = (ADMIN(RoutesConfigDump) *)sec;

			for (size_t k = 0; k < d->n_static_route_configs; k++)
				translate_one(&d->static_route_configs[k]->route_config->base, -1);
			for (size_t k = 0; k < d->n_dynamic_route_configs; k++)
				translate_one(&d->dynamic_route_configs[k]->route_config->base, -1);
		} else if (sec->descriptor ==
			   &envoy__admin__v3__endpoints_config_dump__descriptor) {
			ADMIN(EndpointsConfigDump) *d = (ADMIN(EndpointsConfigDump) *)sec;

			for (size_t k = 0; k < d->n_static_endpoint_configs; k++)
				translate_one(&d->static_endpoint_configs[k]->endpoint_config->base,
					      -1);
			for (size_t k = 0; k < d->n_dynamic_endpoint_configs; k++)
				translate_one(
					&d->dynamic_endpoint_configs[k]->endpoint_config->base, -1);
		}
		protobuf_c_message_free_unpacked(sec, NULL);
	}
	protobuf_c_message_free_unpacked(dump, NULL);
}

static const struct ref_result *ref_find(enum xds_type t, const char *name)
{
	for (size_t i = 0; i < nresults; i++)
		if (results[i].t == t && !strcmp(results[i].name, name))
			return &results[i];
	return NULL;
}

static void test_istio_reference(void)
{
	static const char *const files[] = {
		"sidecar-listeners-configdump.yaml",	  "endpoints-configdump.json",
		"proxyconfig-config_dump.json",		  "describe-http_config.json",
		"legacy-v2-productpage-config_dump.json",
	};
	const char *env = getenv("SHUNT_ISTIO_REFERENCE");
	const char *dir = NULL;
	const struct ref_result *r;
	size_t good = 0;
	char path[512];
	FILE *f;

	for (size_t i = 0; !dir && i < sizeof(ref_dirs) / sizeof(ref_dirs[0]) + 1; i++) {
		const char *d = i == 0 ? env : ref_dirs[i - 1];

		if (!d)
			continue;
		snprintf(path, sizeof(path), "%s/%s", d, files[0]);
		f = fopen(path, "r");
		if (f) {
			fclose(f);
			dir = d;
		}
	}
	if (!dir) {
		ok(0, "the Istio reference dumps are present (set SHUNT_ISTIO_REFERENCE)");
		return;
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		translate_dump(path);
	}
	for (size_t i = 0; i < nresults; i++) {
		if (results[i].s)
			good++;
		else
			tap_diag("not translated: %s \"%s\": %s", xds_types[results[i].t].noun,
				 results[i].name, results[i].err);
	}
	tap_diag("Istio reference: %zu of %zu resources translate; %u telemetry/optional "
		 "filters skipped with a warning",
		 good, nresults, ref_warnings);
	cmp_ge(nresults, 60, "the reference dumps hold resources");
	cmp_ge(good, 60, "most reference resources translate");
	cmp_ge(ref_warnings, 1, "Istio's telemetry filters are skipped with a warning, not NACKed");

	r = ref_find(XDS_LISTENER, "virtualOutbound");
	ok(r && r->s && r->s->virtual_outbound && r->s->virtual_outbound->port == 15001 &&
		   r->s->virtual_outbound->use_original_dst,
	   "istio: virtualOutbound translates, 15001, use_original_dst");
	r = ref_find(XDS_LISTENER, "static_0.0.0.0_15090");
	ok(r && r->s && r->s->nlisteners == 1 && r->s->listeners[0].port == 15090,
	   "istio: the bootstrap's unnamed stats listener is named after its address and "
	   "translates (%s)",
	   r ? r->err : "missing");
	r = ref_find(XDS_LISTENER, "static_0.0.0.0_15021");
	ok(r && r->s && r->s->nlisteners == 1 && r->s->listeners[0].port == 15021,
	   "istio: and so is its health listener on 15021 (%s)", r ? r->err : "missing");
	r = ref_find(XDS_LISTENER, "virtualInbound");
	/* This dump's inbound chains also call an external authorizer (an AuthorizationPolicy
	 * with action CUSTOM): an authorization filter the proxy cannot enforce must refuse the
	 * listener, never be skipped. */
	ok(r && (r->s ? r->s->virtual_inbound && r->s->virtual_inbound->port == 15006
		      : strstr(r->err, "ext_authz") || strstr(r->err, "rbac")),
	   "istio: virtualInbound is on 15006, or refused for an authorization filter");
	if (r && !r->s)
		tap_diag("virtualInbound waits for authorization filters: %s", r->err);
	r = ref_find(XDS_LISTENER, "0.0.0.0_9080");
	ok(r && r->s && r->s->nlisteners == 1 && r->s->listeners[0].port == 9080 &&
		   r->s->listeners[0].nchains >= 1,
	   "istio: outbound HTTP listener 0.0.0.0_9080 translates");
	if (r && r->s) {
		const struct px_filter_chain *fc = NULL;

		for (uint32_t i = 0; i < r->s->listeners[0].nchains; i++)
			if (r->s->listeners[0].chains[i].kind == PX_NF_HTTP)
				fc = &r->s->listeners[0].chains[i];
		if (!fc && r->s->listeners[0].default_chain &&
		    r->s->listeners[0].default_chain->kind == PX_NF_HTTP)
			fc = r->s->listeners[0].default_chain;
		is_str(fc ? fc->http.rds_name : NULL, "9080", "istio: 0.0.0.0_9080 uses RDS 9080");
	}
	r = ref_find(XDS_ENDPOINT, "outbound|9080||reviews.default.svc.cluster.local");
	if (r && r->s) {
		const struct px_cluster *c =
			px_cluster_find(r->s, "outbound|9080||reviews.default.svc.cluster.local");

		ok(c && c->type == PX_CLUSTER_EDS && c->nendpoints >= 1 &&
			   c->endpoints[0].port == 9080,
		   "istio: reviews EDS endpoints reach the cluster (%u endpoints)",
		   c ? c->nendpoints : 0);
	} else {
		ok(0, "istio: reviews endpoints translate: %s", r ? r->err : "missing");
	}
	r = ref_find(XDS_CLUSTER, "outbound|9080|v1|productpage.default.svc.cluster.local");
	ok(r && r->s, "istio: subset cluster outbound|9080|v1|productpage translates%s%s",
	   r && !r->s ? ": " : "", r && !r->s ? r->err : "");
	r = ref_find(XDS_ROUTE, "http.8080");
	ok(r && r->s && r->s->nroute_configs == 1 && r->s->route_configs[0].nvhosts >= 1,
	   "istio: route configuration http.8080 translates");
	r = ref_find(XDS_CLUSTER, "prometheus_stats");
	ok(r && r->s && px_cluster_find(r->s, "prometheus_stats")->type == PX_CLUSTER_STATIC,
	   "istio: static cluster prometheus_stats translates");
	for (size_t i = 0; i < nresults; i++)
		px_snapshot_put(results[i].s);
}

/* Listener fingerprints (px_listener.hash, px_filter_chain.hash): what tells a new snapshot's
 * listener from the one a connection came on. %s slots: listener metadata, listener_filters_timeout,
 * the tcp chain's cluster, the HTTP chain's route prefix, an extra chain. */
#define FP_CHAIN_TCP(cluster)                                                                      \
	"{name: t, filter_chain_match: {destination_port: 1}, filters: [{name: "                   \
	"envoy.filters.network.tcp_proxy, typed_config: {" TCP_T                                   \
	", stat_prefix: t, cluster: " cluster "}}]}"
static const char fp_fmt[] =
	"static_resources: {listeners: [{name: fp, address: {socket_address: {address: 0.0.0.0, "
	"port_value: 80}}, metadata: {filter_metadata: {%s}}, listener_filters_timeout: %s, "
	"filter_chains: [" FP_CHAIN_TCP(
		"%s") ", {name: h, filters: [{name: "
		      "envoy.filters.network.http_connection_manager, typed_config: {" HCM_T
		      ", stat_prefix: h, "
		      "" ROUTER
		      ", route_config: {name: r, virtual_hosts: [{name: v, domains: ['*'], "
		      "typed_per_filter_config: {a: {'@type': "
		      "type.googleapis.com/google.protobuf.Struct, "
		      "value: {%s}}}, routes: [{match: {prefix: %s}, route: {cluster: "
		      "c}}]}]}}}]}%s]}], "
		      "clusters: [{name: c}, {name: d}]}";

struct fp_case {
	const char *meta, *timeout, *tcp_cluster, *struct_fields, *prefix, *extra;
	bool listener_same, tcp_same, http_same;
	const char *what;
};

#define FP_META	  "x: {k1: 1, k2: two}, y: {k3: true}"
#define FP_FIELDS "p: 1, q: [a, b], r: {s: t, u: v}"
static const struct fp_case fp_cases[] = {
	{FP_META, "1s", "c", FP_FIELDS, "/", "", true, true, true, "identical resource"},
	{"y: {k3: true}, x: {k2: two, k1: 1}", "1s", "c", FP_FIELDS, "/", "", true, true, true,
	 "maps in another order (istiod's Go marshalling)"},
	{FP_META, "1s", "c", "r: {u: v, s: t}, q: [a, b], p: 1", "/", "", true, true, true,
	 "Struct fields inside an Any in another order"},
	{FP_META, "1s", "c", "p: 1, q: [b, a], r: {s: t, u: v}", "/", "", true, true, false,
	 "a list inside an Any reordered"},
	{"x: {k1: 1, k2: three}, y: {k3: true}", "1s", "c", FP_FIELDS, "/", "", false, true, true,
	 "listener metadata value changed"},
	{FP_META, "2s", "c", FP_FIELDS, "/", "", false, true, true,
	 "listener_filters_timeout changed"},
	{FP_META, "1s", "d", FP_FIELDS, "/", "", true, false, true, "tcp_proxy cluster changed"},
	{FP_META, "1s", "c", FP_FIELDS, "/api", "", true, true, false,
	 "inline route (inside the HCM's Any) changed"},
	{FP_META, "1s", "c", FP_FIELDS, "/", ", " FP_CHAIN_TCP("d"), true, true, true,
	 "a chain added: the others keep theirs (in-place update)"},
};

static struct px_snapshot *fp_build(const struct fp_case *c)
{
	char text[4096];
	struct jtree_err err;
	struct px_snapshot *s;
	int rc;

	snprintf(text, sizeof(text), fp_fmt, c->meta, c->timeout, c->tcp_cluster, c->struct_fields,
		 c->prefix, c->extra);
	s = build_text(text, &err, &rc);
	if (!s)
		tap_diag("  %s: %s", c->what, err.msg);
	return s;
}

static void test_fingerprint(void)
{
	struct px_snapshot *base = fp_build(&fp_cases[0]);
	const struct px_listener *b = base ? listener(base, "fp") : NULL;

	if (!ok(b && b->nchains == 2 && b->hash && b->chains[0].hash != b->chains[1].hash,
		"fingerprint: the base listener builds, its chains have distinct fingerprints")) {
		px_snapshot_put(base);
		return;
	}
	for (size_t i = 0; i < sizeof(fp_cases) / sizeof(fp_cases[0]); i++) {
		const struct fp_case *c = &fp_cases[i];
		struct px_snapshot *s = fp_build(c);
		const struct px_listener *l = s ? listener(s, "fp") : NULL;

		ok(l && (l->hash == b->hash) == c->listener_same &&
			   (l->chains[0].hash == b->chains[0].hash) == c->tcp_same &&
			   (l->chains[1].hash == b->chains[1].hash) == c->http_same,
		   "fingerprint: %s: listener %s, tcp chain %s, http chain %s", c->what,
		   c->listener_same ? "same" : "differs", c->tcp_same ? "same" : "differs",
		   c->http_same ? "same" : "differs");
		/* What the worker asks of a new snapshot for a connection of each chain. */
		ok(s &&
			   px_listener_keeps(s, b, &b->chains[0]) ==
				   (c->listener_same && c->tcp_same) &&
			   px_listener_keeps(s, b, &b->chains[1]) ==
				   (c->listener_same && c->http_same),
		   "fingerprint: %s: connections kept or drained accordingly", c->what);
		px_snapshot_put(s);
	}
	{
		struct jtree_err err;
		int rc;
		struct px_snapshot *other = build_text(RT("route: {cluster: c}"), &err, &rc);

		ok(other && !px_listener_find(other, "fp") &&
			   !px_listener_keeps(other, b, &b->chains[0]) &&
			   !px_listener_keeps(other, b, NULL),
		   "fingerprint: a listener gone from the snapshot keeps none of its connections");
		px_snapshot_put(other);
	}
	px_snapshot_put(base);
}

int main(void)
{
	log_threshold = L_ERROR;
	test_bootstrap();
	test_ads();
	test_errors();
	test_priorities();
	test_grpc_timeout();
	test_upgrades();
	test_istio_authn();
	test_rbac();
	test_dns_clusters();
	test_istio_reference();
	test_fingerprint();
	return done_testing();
}
