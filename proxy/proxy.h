/* The proxy's public interface: worker threads, workloads (pods) and their listeners, counters.
 *
 * The agent creates the proxy, hands it each enrolled workload (its netns and the listening
 * sockets opened inside it) and takes counters back. The proxy owns every socket it is given.
 */
#ifndef SHUNT_PROXY_PROXY_H
#define SHUNT_PROXY_PROXY_H

#include <linux/types.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/strbuf.h"

#define PROXY_MAX_WORKERS	     64
#define PROXY_CONNECT_TIMEOUT_MS_DEF 10000U   /* Envoy's default cluster connect_timeout is 5s; */
#define PROXY_IDLE_TIMEOUT_MS_DEF    3600000U /* tcp_proxy idle_timeout default: 1h */
#define PROXY_DRAIN_TIMEOUT_MS_DEF   5000U
#define PROXY_DRAIN_TIME_MS_DEF	     600000U /* Envoy's --drain-time-s default: 10 min */

struct proxy_config {
	int workers;
	__u32 mark;	     /* SO_MARK of every upstream socket (never captured again) */
	int orig_dst_map_fd; /* orig_dst_by_tuple, or -1 (then SO_ORIGINAL_DST only) */
	int sock_pairs_fd;   /* the short-circuit SOCKHASH, or -1 to leave hops on TCP */
	int msg_fallback_fd; /* sk_msg's sticky-fallback marks, cleared for sockets we insert */
	unsigned connect_timeout_ms;
	unsigned idle_timeout_ms;
	/* How long the connections of a listener that an update removed or changed may take to
	 * end (Envoy's --drain-time-s): then they are closed, TCP ones having no polite way out. */
	unsigned drain_time_ms;
	int access_log_fd; /* -1: no access log */
	bool access_log_json;
};

enum proxy_listener_kind {
	PROXY_LISTENER_OUTBOUND, /* 15001: connections the app made, to their original destination */
	PROXY_LISTENER_INBOUND,	 /* 15006: connections to the app, delivered from 127.0.0.6 */
	PROXY_LISTENER_BOUND,	 /* a config listener shuntd binds itself (bind_to_port) */
};

#define PROXY_WORKLOAD_MAX_LISTENERS 4

struct proxy_workload_desc {
	const char *name;   /* for logs: the pod's cgroup, relative to --cgroup */
	int netns_fd;	    /* dup'ed by the proxy */
	__u64 netns_cookie; /* keys the BPF maps */
	bool sockmap;	    /* put the proxy's ends of in-pod hops into the SOCKHASH */
	int listen_fds
		[PROXY_WORKLOAD_MAX_LISTENERS]; /* owned by the proxy from now on; -1 = none */
	enum proxy_listener_kind kinds[PROXY_WORKLOAD_MAX_LISTENERS];
};

/* Counters summed over workers. Single-writer per worker, read without locks. */
#define PROXY_STATS(X)                                                                             \
	X(downstream_cx_total, "connections accepted")                                             \
	X(downstream_cx_active, "connections open now")                                            \
	X(outbound_cx_total, "outbound connections (15001)")                                       \
	X(inbound_cx_total, "inbound connections (15006)")                                         \
	X(upstream_cx_connect_fail, "upstream connects that failed")                               \
	X(upstream_cx_overflow, "upstream connections the max_connections breaker held back")      \
	X(upstream_cx_connect_timeout, "upstream connects that timed out")                         \
	X(cx_idle_timeout, "connections closed by the idle timeout")                               \
	X(cx_no_orig_dst, "connections without an original destination (closed)")                  \
	X(cx_no_route, "connections no listener or filter chain matched (closed, NR)")             \
	X(cx_no_cluster, "connections routed to a cluster that does not exist (closed, NC)")       \
	X(cx_no_healthy_upstream, "connections to a cluster without endpoints (closed, UH)")       \
	X(cx_drained, "connections closed by drain at shutdown")                                   \
	X(downstream_cx_drain_close, "HTTP connections closed gracefully while draining")          \
	X(downstream_cx_config_moved, "HTTP connections moved to a newer config between requests") \
	X(listener_drain_cx, "connections drained because an update removed or changed their "     \
			     "listener or filter chain")                                           \
	X(listener_drain_cx_closed, "of those, still open at the end of the drain time (closed)")  \
	X(tls_inspector_tls_found, "connections the tls_inspector saw a ClientHello on")           \
	X(tls_inspector_tls_not_found, "connections the tls_inspector saw no TLS on")              \
	X(tls_inspector_client_hello_too_large, "ClientHellos past PX_TLS_HELLO_MAX (closed)")     \
	X(ssl_handshake, "TLS handshakes completed (both directions)")                             \
	X(ssl_connection_error, "TLS handshakes that failed for another reason than verification") \
	X(ssl_fail_verify_san, "TLS peers whose certificate matched no subject alt name")          \
	X(ssl_fail_verify_no_cert, "TLS peers that sent no certificate when one was required")     \
	X(ssl_fail_verify_error, "TLS peers whose certificate chain did not verify")               \
	X(ssl_handshake_timeout, "TLS handshakes past TLSIO_HANDSHAKE_TIMEOUT_MS (closed)")        \
	X(ssl_secret_not_ready, "connections refused because their SDS secret has not arrived")    \
	X(http_inspector_found, "connections the http_inspector recognised as HTTP")               \
	X(http_inspector_not_found, "connections the http_inspector saw no HTTP on")               \
	X(listener_filters_timeout, "connections the listener filters ran out of time on")         \
	X(listener_filters_eof, "connections closed before the listener filters decided")          \
	X(bytes_downstream_rx, "bytes read from downstream")                                       \
	X(bytes_upstream_rx, "bytes read from upstream")                                           \
	X(sockmap_inserted, "proxy sockets put into the SOCKHASH")                                 \
	X(sockmap_present, "proxy sockets sockops had already put into the SOCKHASH")              \
	X(sockmap_insert_fail, "proxy sockets the SOCKHASH refused")                               \
	X(accept_fail, "accept(2) failures other than EAGAIN")                                     \
	X(http_cx_total, "HTTP downstream connections")                                            \
	X(http_rq_parsed, "HTTP/1 request heads parsed")                                           \
	X(http2_cx_total, "HTTP/2 downstream connections")                                         \
	X(http2_rq_total, "HTTP/2 requests")                                                       \
	X(http_rq_total, "HTTP requests")                                                          \
	X(http_rq_2xx_3xx, "HTTP requests answered 2xx or 3xx")                                    \
	X(http_rq_4xx, "HTTP requests answered 4xx")                                               \
	X(http_rq_5xx, "HTTP requests answered 5xx")                                               \
	X(http_rq_retry, "HTTP request retries")                                                   \
	X(http_rq_timeout, "HTTP requests that timed out (UT)")                                    \
	X(http_rq_upgrade_refused,                                                                 \
	  "HTTP upgrade or CONNECT requests no upgrade_configs allow (403)")                       \
	X(http_tunnel_total, "HTTP upgrades and CONNECTs that became byte tunnels")                \
	X(http_tunnel_active, "of those, open now")                                                \
	X(http_rq_overflow, "HTTP requests a circuit breaker refused (UO)")                        \
	X(http_rq_retry_overflow, "retries the max_retries breaker refused")                       \
	X(http_rq_retry_codes_dropped,                                                             \
	  "x-envoy-retriable-status-codes past HCM_RETRY_CODES_MAX, ignored")                      \
	X(http_downstream_protocol_error, "HTTP requests refused as malformed (400/414/431/505)")  \
	X(http_downstream_smuggling, "of those, request smuggling shapes (CL/TE conflicts)")       \
	X(http_rbac_allowed, "HTTP requests the RBAC filters allowed (Envoy's rbac.allowed)")      \
	X(http_rbac_denied, "HTTP requests the RBAC filters denied (403, RBAC)")                   \
	X(http_rbac_shadow_allowed, "HTTP requests the RBAC shadow rules would allow")             \
	X(http_rbac_shadow_denied, "HTTP requests the RBAC shadow rules would deny")               \
	X(tcp_rbac_allowed, "connections the network RBAC filters allowed")                        \
	X(tcp_rbac_denied, "connections the network RBAC filters denied (closed, RBAC)")           \
	X(tcp_rbac_shadow_allowed, "connections the network RBAC shadow rules would allow")        \
	X(tcp_rbac_shadow_denied, "connections the network RBAC shadow rules would deny")          \
	X(io_buf_active, "16 KB I/O buffers connections hold now (only while bytes are in them)")  \
	X(io_buf_pooled, "free I/O buffers the workers keep for reuse")

#define PROXY_STAT_FIELD(name, help) uint64_t name;
struct proxy_stats {
	PROXY_STATS(PROXY_STAT_FIELD)
};
#undef PROXY_STAT_FIELD

struct proxy;
struct proxy_workload;
struct px_snapshot;

/* Starts cfg->workers threads. NULL with errno set on failure. */
struct proxy *proxy_start(const struct proxy_config *cfg);
/* Registers a workload and starts accepting on its listeners. NULL + errno on failure (the
 * listen fds are closed either way). */
struct proxy_workload *proxy_workload_add(struct proxy *p, const struct proxy_workload_desc *d);
/* Stops accepting for the workload: connections already queued are still accepted and served,
 * open connections finish. The handle is invalid afterwards. */
void proxy_workload_remove(struct proxy *p, struct proxy_workload *w);
/* Publishes a finalised snapshot (takes over the caller's reference). New connections use it
 * from their next accept; open connections finish on the one they started with. */
void proxy_config_set(struct proxy *p, struct px_snapshot *s);
/* A reference to the snapshot in force now (px_snapshot_put it). */
struct px_snapshot *proxy_config_get(struct proxy *p);
void proxy_stats_get(struct proxy *p, struct proxy_stats *out);
/* Appends "name value\n" lines for every counter (for admin /stats). */
void proxy_stats_format(const struct proxy_stats *s, struct strbuf *sb, bool json);
/* Stops accepting everywhere, waits up to drain_ms for open connections, closes the rest,
 * joins the workers and frees everything. */
void proxy_stop(struct proxy *p, unsigned drain_ms);

#endif
