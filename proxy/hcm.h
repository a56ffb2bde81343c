/* The HTTP connection manager: one stream per request, routed by the snapshot's route
 * configuration to a cluster, retried and timed out as the route says, answered locally when
 * it cannot be forwarded, and logged. Codecs (HTTP/1, HTTP/2) sit on both sides behind small
 * ops tables; this file's logic does not know which one it talks to.
 *
 * Ownership: a downstream connection (struct hconn) owns its streams; a stream owns its
 * request body buffer and holds at most one upstream exchange (struct uxchg) at a time. The
 * upstream connection pool owns upstream connections; an exchange borrows one.
 */
#ifndef SHUNT_PROXY_HCM_H
#define SHUNT_PROXY_HCM_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "lib/list.h"
#include "lib/strbuf.h"
#include "proxy/config.h"
#include "proxy/http.h"
#include "proxy/rbac.h"

#define HCM_RETRY_BUFFER_MAX  (1u << 20) /* request body kept for replay (Envoy: 1 MiB) */
#define HCM_MAX_AVOID	      8		 /* previous hosts remembered for retries */
#define HCM_RETRY_BASE_MS_DEF 25	 /* Envoy's retry back-off base interval */
#define HCM_RETRY_CODES_MAX   16	 /* retriable status codes: the route's and the request's */

struct worker;
struct tunnel_end;
struct hconn;
struct hstream;
struct proxy_workload;

/* What the downstream codec does for the stream logic. */
struct hconn_ops {
	/* Response head; end_stream when no body follows. */
	void (*send_headers)(struct hstream *s, int status, struct http_hdrs *h, bool end_stream);
	void (*send_data)(struct hstream *s, const char *data, size_t len, bool end_stream);
	void (*send_trailers)(struct hstream *s, struct http_hdrs *h);
	/* The stream is finished (logged): the codec may release it and go on. */
	void (*stream_done)(struct hstream *s);
	/* Abort the stream (HTTP/1: close the connection; HTTP/2: RST_STREAM). */
	void (*reset)(struct hstream *s);
	/* Response bytes queued but not yet written (the upstream pauses above a mark). */
	size_t (*pending_out)(struct hstream *s);
	/* The upstream drained what we queued: read the request body again. */
	void (*resume)(struct hstream *s);
	/* The response opened a tunnel (s->tunnel): give up the connection's socket, with the
	 * bytes read past the request head and those queued for it, and forget the stream
	 * (the stream is not logged here; the tunnel logs it). NULL: this codec keeps the
	 * stream and carries tunnel bytes as request and response data. */
	void (*detach)(struct hstream *s, struct tunnel_end *e);
};

/* What an upstream codec does for a stream. x is the codec's handle for the exchange
 * (HTTP/1: the connection lent to the stream; HTTP/2: one stream on a shared connection). */
struct uconn_ops {
	/* Sends the request head (and then any body the stream passes on). */
	int (*send_headers)(void *x, struct hstream *s, struct http_hdrs *h, bool end_stream);
	int (*send_data)(void *x, struct hstream *s, const char *data, size_t len, bool end_stream);
	/* The exchange completed: HTTP/1 gives the connection back to its pool. */
	void (*release)(void *x, struct hstream *s);
	/* The stream no longer wants this exchange (timeout, downstream gone, retry). */
	void (*abandon)(void *x, struct hstream *s);
	/* Request bytes queued but not yet written. */
	size_t (*pending_out)(void *x);
	/* The downstream drained the response we queued: read from the upstream again. */
	void (*resume)(void *x);
	/* As hconn_ops.detach, for the upstream connection the tunnel's response came on. */
	void (*detach)(void *x, struct hstream *s, struct tunnel_end *e);
};

/* A request in flight. */
struct hstream {
	struct hconn *hc;
	/* A reference from its request head on: the snapshot its route, cluster and balancer
	 * come from (its connection may move to a newer one meanwhile). */
	struct px_snapshot *snap;
	const struct hconn_ops *down;
	struct list_head node; /* in its connection's streams */
	uint32_t codec_id;     /* HTTP/2 stream id downstream; 0 for HTTP/1 */

	/* The request as received: spans into the codec's buffers (HTTP/1) or copies it keeps
	 * for the stream's lifetime (HTTP/2). */
	struct px_req_view req;
	bool req_end;	   /* the whole request (body and trailers) has arrived */
	bool req_has_body; /* a body follows the head */
	bool is_head;	   /* HEAD: a response never has a body */
	bool is_grpc;	   /* content-type application/grpc: local replies are gRPC-shaped */
	/* Upgrades and CONNECT that the config allows: sent on a fresh upstream connection of
	 * their own, never retried, and a tunnel once answered 101 (or 2xx to CONNECT). */
	bool upgrade;
	bool is_connect;
	bool connect_terminate;	   /* the route's connect_config: we answer CONNECT ourselves */
	bool tunnel;		   /* the response opens the tunnel: no framing downstream */
	bool resp_end;		   /* a tunnel whose upstream ended its side (half-closed) */
	const char *upgrade_value; /* the request's Upgrade (an HTTP/1.1 upgrade) */
	size_t upgrade_len;
	/* An HTTP/2 extended CONNECT the codec turned into an upgrade: the answer's 101 is 200
	 * downstream; ws_key_made: the codec made the Sec-WebSocket-Key, so the upstream's
	 * Sec-WebSocket-Accept is not the client's business. */
	bool h2_ext_connect;
	bool ws_key_made;

	/* Routing. */
	const struct px_route *route;
	const struct px_route_config *rc;
	const struct px_vhost *vh;
	const struct px_cluster *cluster;
	const struct px_retry_policy *retry; /* the route's, or retry_hdr */
	/* What a trusted request's x-envoy-* headers made of the route's policy and timeouts. */
	struct px_retry_policy retry_hdr;
	uint16_t retry_codes[HCM_RETRY_CODES_MAX];
	uint32_t timeout_ms;	  /* the route timeout in force; 0: none */
	uint32_t per_try_ms;	  /* the per-try timeout in force; 0: none */
	bool envoy_internal;	  /* Envoy's internal request: its x-envoy-* headers count */
	bool timeout_alt;	  /* x-envoy-upstream-rq-timeout-alt-response: 204 on a timeout */
	int endpoint;		  /* index in cluster->endpoints; -1 for ORIGINAL_DST */
	struct px_endpoint up_ep; /* where this attempt goes */
	uint32_t attempt;	  /* 1 for the first try */
	bool retry_exhausted;	  /* a covered failure found no retry left: URX */
	/* What the cluster's circuit breakers count for this stream (references; NULL: not
	 * counted): waiting for a connection, active, a retry waiting for its back-off. */
	struct px_cb_state *cb_pending, *cb_rq, *cb_retry;
	uint32_t avoid[HCM_MAX_AVOID];
	uint32_t navoid;
	char request_id[HTTP_UUID_LEN + 1];

	/* The request body, kept while it may still be replayed. */
	struct strbuf body;
	bool body_replayable;

	/* The upstream side. up_path/up_authority are what the upstream request carries
	 * (rewritten), valid during uconn_ops.send_headers. */
	const char *up_path, *up_authority;
	size_t up_path_len, up_authority_len;
	void *up;
	const struct uconn_ops *up_ops;
	struct list_head pool_node; /* waiting in a pool for a connection */
	struct upool *pool_wait;
	struct uconn *up_fresh; /* connecting for this stream alone (an upgrade) */
	bool resp_started;	/* response headers went downstream: no retry any more */
	bool done;
	int status;
	const char *flags;
	const char *details;
	char failure[96];
	char details_buf
		[160]; /* details that carry the failure (Envoy's {connection_failure,...}) */

	/* Timers (CLOCK_MONOTONIC ms; 0 = not armed). */
	uint64_t t_start, t_req_end, t_upstream_start, t_first_byte;
	uint64_t deadline_route, deadline_try, deadline_backoff;
	uint64_t last_activity;

	uint64_t bytes_rx, bytes_tx;
	struct timespec start_real;
};

/* A downstream connection as the stream logic sees it; codecs embed it. */
struct hconn {
	struct worker *wk;
	struct proxy_workload *w;
	struct px_snapshot *snap; /* a reference: the connection's streams route on it */
	const struct px_hcm *cfg;
	/* Where it came from, in snap: the listener whose chain served it (a virtual listener's
	 * hand-off target) and that chain. A snapshot that no longer has both drains it. */
	const struct px_listener *listener;
	const struct px_filter_chain *chain;
	/* Draining (shutdown, or its listener changed): the codec ends the connection politely
	 * (HTTP/1: connection: close; HTTP/2: GOAWAY); drain_deadline (ms, 0: none) closes it
	 * whatever it is doing. */
	bool draining;
	uint64_t drain_deadline;
	struct shunt_addr remote, local;
	__u16 remote_port, local_port;
	char remote_ip[48];
	/* The peer as RBAC sees it: a verified TLS client certificate and its principal (first
	 * URI SAN, else DNS SAN, else subject; NULL: none), and the TLS SNI (NULL: none). The
	 * codec fills them from its TLS session; they point into memory it keeps. */
	bool peer_authenticated;
	const char *peer_principal;
	const char *sni;
	char peer_principal_buf[PX_RBAC_PRINCIPAL_MAX];
	struct list_head streams;
	struct list_head node; /* in the worker's HTTP connections (for timers) */
	uint64_t last_activity;
	uint64_t rng;
};

/* The part every downstream codec's connection shares: takes a reference on the workload and
 * the snapshot, which hconn_release drops. */
void hconn_init(struct hconn *hc, struct worker *wk, struct proxy_workload *w,
		struct px_snapshot *snap, const struct px_hcm *cfg, const struct shunt_addr *remote,
		__u16 remote_port, const struct shunt_addr *local, __u16 local_port);
void hconn_release(struct hconn *hc);
/* The connection's TLS session (NULL: plain) gives the peer and SNI that RBAC matches. */
struct tlsio;
void hconn_set_tls(struct hconn *hc, const struct tlsio *tls);

/* Stream lifecycle, called by downstream codecs. */
void hstream_init(struct hstream *s, struct hconn *hc, const struct hconn_ops *ops);
/* The request head is complete: route it and start the first attempt (or answer locally). */
void hstream_on_request_headers(struct hstream *s);
void hstream_on_request_data(struct hstream *s, const char *data, size_t len, bool end);
/* The downstream is gone: abandon upstream work and log. */
void hstream_on_downstream_reset(struct hstream *s, const char *why);
/* Frees what the stream owns (after stream_done or reset). */
void hstream_release(struct hstream *s);

/* Called by upstream codecs. */
void hstream_on_upstream_ready(struct hstream *s, void *x, const struct uconn_ops *ops);
void hstream_on_response_headers(struct hstream *s, int status, const struct px_hdr *hdrs,
				 uint32_t n, bool end_stream);
void hstream_on_response_data(struct hstream *s, const char *data, size_t len, bool end);
/* Trailers end the response (gRPC's grpc-status travels here). */
void hstream_on_response_trailers(struct hstream *s, const struct px_hdr *hdrs, uint32_t n);
/* The exchange failed before (or after) response headers: how (which gives the response flag,
 * the details and the retry decision) and why, for the log's transport failure reason. */
void hstream_on_upstream_failure(struct hstream *s, enum px_upstream_reset kind,
				 const char *reason);

/* Timers of all streams of a connection; called from the worker's tick. */
void hconn_tick(struct hconn *hc, uint64_t now_ms);

#endif
