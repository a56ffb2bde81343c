/* Upstream connection pools, per worker and per (cluster, endpoint): HTTP/1 connections are
 * lent to one stream at a time and kept alive between them; HTTP/2 connections carry many.
 * Circuit breakers bound connections, pending requests and requests per cluster. */
#ifndef SHUNT_PROXY_UPOOL_H
#define SHUNT_PROXY_UPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/list.h"
#include "lib/strbuf.h"
#include "proxy/config.h"
#include "proxy/http1-t.h"
#include "proxy/tlsio.h"
#include "proxy/worker.h"

#define UCONN_IN_SIZE	  BUF_SIZE  /* response bytes read at a time: one pool buffer */
#define UCONN_HDRS	  128	    /* response field lines accepted */
#define UCONN_OUT_HIGH	  (1 << 20) /* request bytes queued before the downstream is paused */
#define UPOOL_IDLE_MS_DEF 60000	    /* pooled connections idle this long close */
#define UPOOL_LINGER_MS	  10000	    /* a tunnel's last bytes get this long to be written */

struct hstream;
struct upool;

enum uconn_state {
	UC_CONNECTING,
	UC_IDLE,
	UC_BUSY,
	UC_CLOSED
};

/* One upstream connection (HTTP/1 for now). Owned by its pool. */
struct uconn {
	struct ev_handler h; /* EV_UPSTREAM */
	struct upool *pool;
	struct list_head node;		/* in the pool's idle or busy list */
	struct list_head dead;		/* in the worker's free-at-end-of-iteration list */
	struct wk_deferred flush_later; /* a request head waiting for its body */
	int fd;
	bool readable, writable;
	bool rdhup;	  /* the server's FIN or an error was reported: read until 0 */
	struct tlsio tls; /* the pool's cluster originates TLS */
	enum uconn_state state;
	struct hstream *stream; /* the exchange using it (HTTP/1: one) */
	uint64_t deadline;	/* connect timeout while connecting, idle expiry while idle */
	uint32_t requests;
	bool bound_local;
	/* Opened for one stream alone (an upgrade or CONNECT): it goes to owner once connected,
	 * never to the pool's waiters, and is closed rather than parked afterwards. */
	bool fresh;
	struct hstream *owner;
	/* The exchange became a tunnel that this codec carries (the downstream cannot take the
	 * socket over, HTTP/2): raw bytes both ways, EOF is the end of the response. */
	bool raw;
	bool shut_wanted, wr_shut; /* the stream ended its side: FIN once out[] is written */
	bool linger;		   /* the stream is gone; close once out[] is written */
	struct px_cb_state *cbs;   /* the breaker state that counts it (a reference) */
	/* HTTP/1 codec state. in is a pool buffer held only while response bytes wait in it (or
	 * are being delivered); NULL between reads, so a parked connection holds none. */
	char *in;
	size_t in_len;
	struct strbuf out;
	size_t out_off;
	bool req_chunked, req_done;
	struct http1_parser parser; /* the head is parsed whole each time, into scratch_h1 */
	enum http1_method req_method;
	struct http1_chunked chunked;
	struct http1_header trailers[16];
	bool head_done;	 /* response head received */
	size_t head_len; /* its bytes at the start of in[] while the stream sees its headers */
	enum http1_body body;
	uint64_t body_left;
	bool keep_alive;
	bool resp_done;
};

/* A pool of connections from one workload (its netns) to one endpoint of one cluster. */
struct upool {
	struct list_head node; /* in the worker's pools */
	struct proxy_workload *w;
	char cluster[256];
	struct shunt_addr addr;
	__u16 port;
	struct px_cluster cfg; /* the cluster's settings when last used (no endpoints) */
	/* The endpoint's TLS context (a reference; NULL: plain) and SNI, from the newest snapshot
	 * that used the pool: new connections use them, open ones keep their own. */
	struct px_tls_ctx *tls;
	char sni[256];
	bool alpn_h2; /* an alpn_auto cluster's endpoint chose h2: its streams go to p->h2 */
	struct list_head idle, busy, pending; /* HTTP/1 connections, connections, streams */
	struct list_head h2;		      /* HTTP/2 connections (shared by streams) */
	uint32_t nconns, npending;
	uint32_t ndead; /* closed connections not yet freed: they still point here */
};

/* Finds s an upstream for endpoint ep of cluster c (for ORIGINAL_DST clusters, an endpoint
 * made of the connection's original destination). The pool calls hstream_on_upstream_ready
 * (possibly before returning) or hstream_on_upstream_failure later. -EBUSY when a circuit
 * breaker refuses (the caller answers 503 UO); -errno for other failures. */
int upool_request(struct worker *wk, struct hstream *s, const struct px_cluster *c,
		  const struct px_endpoint *ep);
/* As upool_request, on a new connection of its own that no other stream will use (upgrades
 * and CONNECT). -EBUSY when max_connections is reached. */
int upool_request_fresh(struct worker *wk, struct hstream *s, const struct px_cluster *c,
			const struct px_endpoint *ep);
/* s waits in p's line, counted by c's breaker (-EBUSY: the line is full, Envoy's pending
 * overflow); upool_unqueue takes it out. */
int upool_enqueue(struct upool *p, struct hstream *s, const struct px_cluster *c);
void upool_unqueue(struct upool *p, struct hstream *s);
/* A new connection of p may open: counted in the cluster's breaker, the count held in *held
 * (give it back with px_cb_release). */
bool upool_cx_take(struct upool *p, struct px_cb_state **held);
/* s no longer waits for a connection (timeout, downstream gone). */
void upool_cancel(struct worker *wk, struct hstream *s);
/* A connection of pool p failed to connect after the fact: takes its oldest waiter off the pool
 * (call before closing the connection) and returns it, or NULL. */
struct hstream *upool_take_oldest(struct worker *wk, struct upool *p);
/* Tells that waiter (once the connection is closed); s may be NULL. */
void upool_connect_failed(struct hstream *s, int err);
/* The exchange on u ended; reusable: the connection may carry another request. */
void upool_release(struct worker *wk, struct uconn *u, bool reusable);
/* Connect timeouts and idle expiry. */
void upool_tick(struct worker *wk);
void upool_destroy(struct worker *wk);
void uconn_on_event(struct worker *wk, struct uconn *u, uint32_t events);
/* Hands connections that became free to waiting streams (end of each loop iteration). */
void upool_dispatch(struct worker *wk);
/* Starts client TLS on a new connection of pool p (fd connected); fresh: an upgrade's own
 * connection. 0 or -ENOMEM. */
int upool_tls_start(struct upool *p, struct tlsio *t, int fd, bool fresh);
/* Steps the TLS handshake of a new connection of pool p whose codec is `codec` ("h2" or
 * "http/1.1"). false: not finished, wait for the next event. true: finished, with t->err empty on
 * success or saying why not (counted; a server that chose the other HTTP by ALPN fails it). */
bool upool_tls_step(struct worker *wk, struct upool *p, struct tlsio *t, const char *codec);
/* Frees a pool nothing uses any more. */
void upool_maybe_free(struct upool *p);
/* Frees connections closed during this loop iteration. */
void upool_free_dead(struct worker *wk);

#endif
