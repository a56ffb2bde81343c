/* The proxy's configuration: one immutable snapshot of listeners, clusters and routes.
 *
 * The agent builds a snapshot (from xDS, a bootstrap file or the built-in passthrough default),
 * finalises it and publishes it; workers take a reference per connection, so a connection
 * finishes on the snapshot it started with and a config change never blocks the data path.
 * Everything in a snapshot lives in its arena and goes away with its last reference.
 */
#ifndef SHUNT_PROXY_CONFIG_H
#define SHUNT_PROXY_CONFIG_H

#include <linux/types.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bpf/lib/shunt_maps.h"
#include "lib/arena.h"
#include "proxy/route.h"

/* Istio's names for the clusters that carry traffic nobody configured. */
#define PX_CLUSTER_PASSTHROUGH	       "PassthroughCluster"
#define PX_CLUSTER_INBOUND_PASSTHROUGH "InboundPassthroughCluster"
#define PX_CLUSTER_BLACKHOLE	       "BlackHoleCluster"
#define PX_LISTENER_VIRTUAL_OUTBOUND   "virtualOutbound"
#define PX_LISTENER_VIRTUAL_INBOUND    "virtualInbound"

#define PX_MAGLEV_TABLE_SIZE	       65537   /* Envoy's default, a prime */
#define PX_RING_POINTS		       256     /* ring points per unit of (normalised) weight */
#define PX_RING_MAX_SIZE	       8388608 /* Envoy's maximum_ring_size default */

struct px_tls_ctx; /* proxy/tls.h */

/* A transport socket: raw_buffer (tls NULL, missing_secret NULL), TLS with its context, or TLS
 * whose SDS secret has not arrived yet (missing_secret names it): Envoy's "not ready", which
 * refuses the connections that would use it. The context is owned by the snapshot (see
 * px_snapshot_own_tls); connections and pools take their own reference. */
struct px_transport {
	struct px_tls_ctx *tls;
	const char *missing_secret;
	const char *sni; /* UpstreamTlsContext.sni, NULL: none */
};

static inline bool px_transport_is_tls(const struct px_transport *t)
{
	return t && (t->tls || t->missing_secret);
}

struct px_cidr {
	struct shunt_addr addr;
	uint8_t prefix_len; /* over the 128-bit normalised form: IPv4 /24 is stored as /120 */
};

/* ---- clusters ---------------------------------------------------------------------------- */

enum px_cluster_type {
	PX_CLUSTER_STATIC,
	PX_CLUSTER_STRICT_DNS,
	PX_CLUSTER_EDS,
	PX_CLUSTER_ORIGINAL_DST, /* the connection's own original destination */
};

enum px_lb_policy {
	PX_LB_ROUND_ROBIN,
	PX_LB_LEAST_REQUEST,
	PX_LB_RANDOM,
	PX_LB_RING_HASH,
	PX_LB_MAGLEV,
};

struct px_endpoint {
	struct shunt_addr addr;
	__u16 port;
	uint32_t weight;	  /* load_balancing_weight, >= 1 */
	uint32_t priority;	  /* 0 is highest */
	bool healthy;		  /* health_status UNKNOWN/HEALTHY count as healthy */
	const char *locality;	  /* "region/zone/subzone" or NULL */
	uint32_t locality_weight; /* its LocalityLbEndpoints' load_balancing_weight; 0: none */
	/* The cluster's transport_socket_matches entry this endpoint's metadata matched, NULL:
	 * the cluster's own transport. */
	const struct px_transport *transport;
};

/* Cluster.dns_lookup_family, Envoy's values and meaning: AUTO prefers IPv6 (IPv4 when a name has
 * no IPv6 address), V4_PREFERRED the reverse, ALL takes both. */
enum px_dns_family {
	PX_DNS_AUTO,
	PX_DNS_V4_ONLY,
	PX_DNS_V6_ONLY,
	PX_DNS_V4_PREFERRED,
	PX_DNS_ALL,
};
#define PX_DNS_REFRESH_MS_DEF 5000 /* Envoy's dns_refresh_rate default */

/* A STRICT_DNS endpoint given by name. The proxy resolves nothing itself: whoever resolves it
 * (the agent) publishes the addresses as endpoints[] of a new snapshot; until then a name adds no
 * endpoint, as in Envoy before the first DNS answer. */
struct px_dns_target {
	const char *hostname;
	__u16 port;
	uint32_t weight;
	uint32_t priority;
	const char *locality;
};

/* Envoy's circuit-breaker thresholds (default priority); exceeding one is an overflow (UO). */
#define PX_CB_DEFAULT	      1024 /* Envoy's default for connections and (pending) requests */
#define PX_CB_RETRIES_DEFAULT 3	   /* and for retries in progress */

/* The DEFAULT-priority thresholds. Unset: Envoy's defaults; set, every field is a limit (0
 * included, as in Envoy). */
struct px_circuit_breakers {
	bool set;
	uint32_t max_connections;
	uint32_t max_pending_requests;
	uint32_t max_requests;
	uint32_t max_retries;
};

/* What a cluster's breakers count, as Envoy's ResourceManager does: open connections, requests
 * waiting for one, active requests, retries waiting for their back-off. */
enum px_cb_res {
	PX_CB_CX,
	PX_CB_PENDING,
	PX_CB_RQ,
	PX_CB_RETRIES,
	PX_CB_NRES
};

/* A cluster's counts: one per cluster name, shared by every worker and carried from snapshot
 * to snapshot while the cluster stays (proxy_config_set), so that limits hold per cluster and
 * survive config pushes. Connections and streams that counted themselves hold a reference. */
struct px_cb_state {
	atomic_int refs;
	atomic_uint n[PX_CB_NRES];
};

struct px_cluster {
	const char *name;
	enum px_cluster_type type;
	enum px_lb_policy lb;
	uint32_t connect_timeout_ms;
	bool http2;	/* speak HTTP/2 (h2c, or h2 over TLS) */
	bool alpn_auto; /* auto_config: h2 when a TLS server chooses it by ALPN, else HTTP/1.1 */
	/* use_downstream_protocol_config: HTTP/2 upstream for HTTP/2 requests, HTTP/1.1 for the
	 * rest; each protocol gets its own pool (http2 above is then ignored). */
	bool use_downstream_protocol;
	struct px_transport transport;	      /* transport_socket */
	uint32_t max_requests_per_connection; /* 0: unlimited */
	uint32_t upstream_idle_timeout_ms;    /* pooled connections idle this long close */
	struct px_circuit_breakers cb;
	struct px_cb_state *cbs; /* set by proxy_config_set; NULL: nothing is counted */
	/* upstream_bind_config: the source of upstream connections (Istio's inbound clusters
	 * use 127.0.0.6 and ::6, which capture lets through). */
	bool has_bind4, has_bind6;
	struct shunt_addr bind4, bind6;
	struct px_endpoint *endpoints;
	uint32_t nendpoints;
	struct px_dns_target *dns_targets; /* STRICT_DNS names still to resolve (data only) */
	uint32_t ndns_targets;
	enum px_dns_family dns_family;
	uint32_t dns_refresh_ms;
	/* dns_failure_refresh_rate: after a failed lookup, a backoff from base to max (ms); 0: a
	 * failure waits dns_refresh_ms like an answer. */
	uint32_t dns_failure_base_ms, dns_failure_max_ms;
	bool logical_dns; /* LOGICAL_DNS: the first address of the one name is the endpoint */
	/* Envoy's priority and panic settings: ClusterLoadAssignment.policy.overprovisioning_factor
	 * (percent; 0: PX_OVERPROVISIONING_DEF) and common_lb_config.healthy_panic_threshold
	 * (percent; 0: PX_PANIC_THRESHOLD_DEF, unless panic_disabled, which a threshold of 0 sets). */
	uint32_t overprovisioning_pct;
	uint32_t panic_threshold_pct;
	bool panic_disabled;
	bool locality_weighted; /* common_lb_config.locality_weighted_lb_config */
	/* metadata.filter_metadata.shunt.kernel_lb true: the cluster's L4-only services may be
	 * balanced by connect4/6 (DESIGN: "services marked L4-only"). Unmarked ones stay with the
	 * proxy, which is where mTLS and TCP telemetry will happen. */
	bool kernel_lb;
	/* Precomputed by px_snapshot_finalize (px_lb_prepare): one set per priority level, in
	 * priority order, with the share of traffic each takes. */
	struct px_lb_set *sets;
	uint32_t nsets;
	uint32_t neligible;   /* endpoints of all sets that take traffic */
	uint64_t total_share; /* sum of the sets' shares (PX_LB_SHARE_SCALE, or less) */
	uint32_t index;	      /* position in the snapshot, for per-worker state */
};

#define PX_LB_MAX_PRIORITIES	32	/* priority levels per cluster (Istio uses a handful) */
#define PX_LB_SHARE_SCALE	1000000 /* a set's share of requests, in millionths */
#define PX_OVERPROVISIONING_DEF 140	/* Envoy's default overprovisioning factor, percent */
#define PX_PANIC_THRESHOLD_DEF	50	/* Envoy's default healthy_panic_threshold, percent */

/* The endpoints of one priority level (or, with locality weighting, of one locality of a level)
 * that traffic may go to: its healthy ones, all of them in panic. With their running weight sums
 * and the tables of the hashing balancers, all as endpoint indexes. `load` is the percentage of
 * requests the level takes (Envoy's priority load: health scaled by the overprovisioning factor,
 * normalised over the levels; they add up to 100, or are all 0 when no endpoint may be used);
 * `share` is this set's part of it in millionths of all requests. */
struct px_lb_set {
	uint32_t priority;
	uint32_t load;
	uint64_t share;
	uint64_t share_end; /* cumulative share up to and including this set */
	bool panic;
	bool by_locality;
	const char *locality; /* with by_locality: this set's locality (NULL: none given) */
	uint32_t locality_weight;
	uint32_t *eligible;
	uint32_t neligible;
	bool equal_weights;
	uint64_t *cumulative_weight; /* over eligible */
	uint64_t total_weight;
	uint32_t *maglev;
	uint32_t maglev_size;
	struct px_ring_entry *ring;
	uint32_t ring_size;
};

struct px_ring_entry {
	uint64_t hash;
	uint32_t endpoint;
};

/* ---- listeners ----------------------------------------------------------------------------- */

struct px_filter_chain_match {
	uint32_t dst_port; /* 0: any */
	struct px_cidr *prefix_ranges;
	uint32_t nprefix_ranges;
	struct px_cidr *source_prefix_ranges;
	uint32_t nsource_prefix_ranges;
	__u16 *source_ports;
	uint32_t nsource_ports;
	const char *transport_protocol; /* NULL: any; "raw_buffer" or "tls" */
	const char **server_names;	/* exact or "*.suffix" */
	uint32_t nserver_names;
	const char **application_protocols;
	uint32_t napplication_protocols;
};

struct px_weighted_cluster {
	const char *cluster;
	uint32_t weight;
};

struct px_tcp_proxy {
	const char *stat_prefix;
	const char *cluster; /* or weighted_clusters */
	struct px_weighted_cluster *weighted;
	uint32_t nweighted;
	uint32_t total_weight;
	uint32_t idle_timeout_ms; /* 0: the proxy default (1 h) */
};

enum px_network_filter {
	PX_NF_TCP_PROXY,
	PX_NF_HTTP
};

enum px_codec {
	PX_CODEC_AUTO,
	PX_CODEC_HTTP1,
	PX_CODEC_HTTP2
};
enum px_server_header {
	PX_SERVER_OVERWRITE,
	PX_SERVER_APPEND_IF_ABSENT,
	PX_SERVER_PASS_THROUGH
};

#define PX_HCM_STREAM_IDLE_MS_DEF 300000  /* Envoy's stream_idle_timeout: 5 min */
#define PX_HCM_IDLE_MS_DEF	  3600000 /* common_http_protocol_options.idle_timeout */
#define PX_HCM_DRAIN_MS_DEF	  5000	  /* drain_timeout */
#define PX_HCM_MAX_HEADERS_KB_DEF 60
#define PX_HCM_MAX_HEADERS_DEF	  100

struct px_rbac; /* proxy/rbac.h */

/* An RBAC filter in a chain (HTTP or network), by its name for per-route overrides. */
struct px_rbac_filter {
	const char *name;
	const struct px_rbac *rbac;
};

/* envoy.filters.network.http_connection_manager, with the router as its terminal filter. */
struct px_hcm {
	const char *stat_prefix;
	enum px_codec codec;
	const char *rds_name;		       /* routes from RDS, by name ... */
	struct px_route_config *inline_routes; /* ... or inline */
	const struct px_route_config *routes;  /* resolved by finalize; NULL: not yet */
	const char *server_name;	       /* "envoy" when unset */
	enum px_server_header server_header;
	bool use_remote_address;
	uint32_t xff_num_trusted_hops;
	bool skip_xff_append;
	/* The router's suppress_envoy_headers: no x-envoy-expected-rq-timeout-ms upstream, no
	 * x-envoy-upstream-service-time or x-envoy-overloaded downstream. */
	bool suppress_envoy_headers;
	bool preserve_request_id; /* keep an incoming x-request-id even from outside */
	bool no_generate_request_id;
	uint32_t max_request_headers_kb;
	uint32_t max_headers_count;
	uint32_t idle_timeout_ms;
	uint32_t stream_idle_timeout_ms;
	uint32_t request_timeout_ms; /* 0: none */
	/* Draining: from HTTP/2's shutdown notice (GOAWAY, last stream 2^31-1) to the final
	 * GOAWAY that refuses newer streams. 0: PX_HCM_DRAIN_MS_DEF. */
	uint32_t drain_timeout_ms;
	struct px_upgrade *upgrades; /* upgrade_configs; none: every upgrade is refused (403) */
	uint32_t nupgrades;
	bool h2_allow_connect; /* http2_protocol_options.allow_connect: extended CONNECT */
	/* http2_protocol_options.max_concurrent_streams, capped at H2_MAX_STREAMS; 0: that. */
	uint32_t h2_max_streams;
	struct px_rbac_filter *rbac; /* envoy.filters.http.rbac filters, in order */
	uint32_t nrbac;
};

struct px_filter_chain {
	const char *name;
	/* A fingerprint of the chain's config: a listener update that keeps a chain with the same
	 * one keeps that chain's connections (Envoy's in-place filter chain update). */
	uint64_t hash;
	struct px_filter_chain_match match;
	enum px_network_filter kind;
	struct px_transport transport; /* DownstreamTlsContext: terminate TLS */
	struct px_tcp_proxy tcp;
	struct px_hcm http;
	/* envoy.filters.network.rbac filters before the terminal one, in order: decided once on
	 * the first bytes (ONE_TIME_ON_FIRST_BYTE). */
	struct px_rbac_filter *rbac;
	uint32_t nrbac;
};

/* Destination ports a listener filter is switched off for (Envoy's filter_disabled, as Istio
 * writes it: destination_port_range, or_match of them, any_match). */
struct px_port_range {
	__u16 start, end; /* [start, end) */
};

struct px_filter_disabled {
	bool all;
	struct px_port_range *ranges;
	uint32_t nranges;
};

struct px_listener {
	const char *name;
	/* A fingerprint of the listener's config but its filter chains (they have their own): a
	 * new snapshot whose same-named listener has another one drains all its connections. */
	uint64_t hash;
	struct shunt_addr addr;
	__u16 port;
	/* virtualOutbound/virtualInbound: hand each connection to the listener that matches its
	 * original destination, and use our own chains only when none does. */
	bool use_original_dst;
	/* Envoy's bind_to_port: shuntd listens on addr:port itself (a gateway or reverse proxy).
	 * Istio's per-service outbound listeners say false: only virtualOutbound reaches them. */
	bool bind_to_port;
	bool tls_inspector; /* listener filters that fill the match's transport / SNI / ALPN */
	bool http_inspector;
	struct px_filter_disabled tls_inspector_off, http_inspector_off;
	/* How long the inspectors wait for their bytes (Envoy's listener_filters_timeout; 0 waits
	 * forever), and whether a connection that ran out of time is matched as it is (true) or
	 * closed (false, Envoy's default). */
	uint32_t listener_filters_timeout_ms;
	bool continue_on_listener_filters_timeout;
	struct px_filter_chain *chains;
	uint32_t nchains;
	struct px_filter_chain *default_chain; /* NULL: close unmatched connections */
};

/* ---- the snapshot ------------------------------------------------------------------------- */

struct px_index; /* name -> pointer, built by finalize */

struct px_snapshot {
	atomic_int refs;
	uint64_t generation;
	struct arena arena;
	struct px_listener *listeners;
	uint32_t nlisteners;
	struct px_cluster *clusters;
	uint32_t nclusters;
	struct px_index *cluster_index;
	struct px_route_config *route_configs; /* from RDS */
	uint32_t nroute_configs;
	struct px_index *route_index;
	struct px_index *listener_index;
	/* All listener and chain fingerprints combined (finalize): equal in two snapshots, no
	 * connection of the older needs draining in the newer. */
	uint64_t listeners_hash;
	struct px_listener *virtual_outbound; /* set by finalize from the listener names */
	struct px_listener *virtual_inbound;
	/* Listeners a connection may be handed to by destination (all but use_original_dst
	 * ones), by port then position: indices into listeners, built by finalize (Istio sends
	 * one per service port, 10,000 of them is not rare). Every published snapshot is
	 * finalized; before that, no listener is found by destination. */
	uint32_t *by_port;
	uint32_t nby_port;
	struct px_rbac *rbacs;	 /* every RBAC config, linked by next: their regexes to free */
	struct px_tls_ctx **tls; /* the TLS contexts its transports use (one reference each) */
	uint32_t ntls, tls_cap;
};

/* A connection as the matcher sees it. Strings may be NULL when not inspected. */
struct px_conn_info {
	struct shunt_addr dst;
	__u16 dst_port;
	struct shunt_addr src;
	__u16 src_port;
	const char *transport_protocol; /* "raw_buffer" or "tls" */
	const char *server_name;
	const char *const *application_protocols; /* every one offered (ALPN), or "h2c"... */
	uint32_t napplication_protocols;
};

#define PX_LISTENER_FILTERS_TIMEOUT_MS_DEF 15000 /* Envoy's listener_filters_timeout */

struct px_snapshot *px_snapshot_new(void);
/* Checks references, builds indexes and balancer tables. 0, or -EINVAL with *err naming the
 * resource and the problem (arena-allocated). The snapshot is immutable afterwards. */
int px_snapshot_finalize(struct px_snapshot *s, const char **err);
void px_snapshot_get(struct px_snapshot *s);
/* The snapshot takes over the caller's reference to t (released with the snapshot). 0 or
 * -ENOMEM (then the reference is released). */
int px_snapshot_own_tls(struct px_snapshot *s, struct px_tls_ctx *t);
/* Whether any filter chain of l terminates TLS (its sockets stay out of the SOCKHASH). */
bool px_listener_terminates_tls(const struct px_listener *l);
void px_snapshot_put(struct px_snapshot *s);
/* The built-in configuration without a control plane: outbound and inbound passthrough. */
struct px_snapshot *px_snapshot_passthrough(void);

const struct px_cluster *px_cluster_find(const struct px_snapshot *s, const char *name);

/* Circuit breakers. px_cb_try takes one of resource r within c's limit (true), or refuses
 * (false: Envoy's overflow); px_cb_done gives it back to the state it was taken from. Without
 * a state (a snapshot never published) nothing is counted and nothing refused. */
uint32_t px_cb_limit(const struct px_cluster *c, enum px_cb_res r);
bool px_cb_try(const struct px_cluster *c, enum px_cb_res r);
/* Takes one whatever the limit (Envoy's first connection of a host that has none). */
void px_cb_force(const struct px_cluster *c, enum px_cb_res r);
void px_cb_done(struct px_cb_state *st, enum px_cb_res r);
struct px_cb_state *px_cb_get(struct px_cb_state *st);
void px_cb_put(struct px_cb_state *st);
/* What connections and streams use: takes one of r (within the limit, or whatever it unless
 * force) and a reference on the state it counts in, into *held (NULL when nothing counts);
 * px_cb_release gives both back and clears *held (a no-op on NULL). */
bool px_cb_acquire(const struct px_cluster *c, enum px_cb_res r, bool force,
		   struct px_cb_state **held);
void px_cb_release(struct px_cb_state **held, enum px_cb_res r);
/* Gives each cluster of s the state of the same-named cluster in old, or a new one. */
int px_cb_adopt(struct px_snapshot *s, const struct px_snapshot *old);
const struct px_route_config *px_route_config_find(const struct px_snapshot *s, const char *name);
/* Which listener handles a connection that arrived on `via` (a virtual listener) for `ci->dst`:
 * an exact ip:port listener, else the 0.0.0.0/[::] listener of that port, else `via` itself. */
/* The bound listener (bind_to_port) that accepted a connection on ci->dst: exact address first,
 * then the wildcard one of that port; NULL if the snapshot has none. */
const struct px_listener *px_listener_bound(const struct px_snapshot *s,
					    const struct px_conn_info *ci);
/* The listener of that name, NULL if the snapshot has none. */
const struct px_listener *px_listener_find(const struct px_snapshot *s, const char *name);
/* Whether s still serves connections that chain fc of listener l (of an older snapshot) took:
 * l is in s by name with the same fingerprint, and one of its chains has fc's. No: drain them. */
bool px_listener_keeps(const struct px_snapshot *s, const struct px_listener *l,
		       const struct px_filter_chain *fc);
/* The same, giving s's own listener and (in *nfc) chain for them; NULL when not kept. */
const struct px_listener *px_listener_kept(const struct px_snapshot *s, const struct px_listener *l,
					   const struct px_filter_chain *fc,
					   const struct px_filter_chain **nfc);
const struct px_listener *px_listener_for(const struct px_snapshot *s,
					  const struct px_listener *via,
					  const struct px_conn_info *ci);
/* Envoy's filter-chain selection: most specific match per field, in Envoy's field order. */
const struct px_filter_chain *px_filter_chain_match(const struct px_listener *l,
						    const struct px_conn_info *ci);
bool px_filter_disabled_for(const struct px_filter_disabled *d, __u16 dst_port);
bool px_cidr_contains(const struct px_cidr *c, const struct shunt_addr *a);
int px_cidr_parse(struct px_cidr *c, const char *addr, uint32_t prefix_len);

#endif
