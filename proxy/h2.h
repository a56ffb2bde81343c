/* HTTP/2 (h2c, prior knowledge) with nghttp2 on both sides of the connection manager. */
#ifndef SHUNT_PROXY_H2_H
#define SHUNT_PROXY_H2_H

#include <stddef.h>
#include <stdint.h>

#include "lib/addr.h"
#include "proxy/config.h"

#define H2_PREFACE     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24
#define H2_MAX_STREAMS 1024 /* concurrent streams we allow a client (Envoy: 2^31-1) */
#define H2_MAX_HEADERS 128

struct worker;
struct ev_handler;
struct proxy_workload;
struct upool;
struct hstream;
struct tlsio;
struct hconn;

/* Downstream: takes over fd (in the worker's epoll set) after `pre` bytes were read from it
 * (they start with the connection preface), and tls (zeroed on success) when the chain
 * terminated TLS, or NULL. 0 or -errno (then fd and tls are still the caller's). */
int h2_down_start(struct worker *wk, int fd, struct proxy_workload *w, struct px_snapshot *snap,
		  const struct px_listener *l, const struct px_filter_chain *fc,
		  const struct shunt_addr *remote, __u16 remote_port,
		  const struct shunt_addr *local, __u16 local_port, const char *pre, size_t pre_len,
		  struct tlsio *tls);
void h2_down_on_event(struct worker *wk, struct ev_handler *h, uint32_t events);
void h2_down_tick(struct worker *wk);
/* Draining began: each connection gets a shutdown notice, then the final GOAWAY when its
 * streams are done or after the HCM's drain_timeout, whichever is first. */
void h2_down_drain(struct worker *wk);
/* The same for one connection (hc of an HTTP/2 connection). */
void h2_down_drain_conn(struct worker *wk, struct hconn *hc);
void h2_down_free_dead(struct worker *wk);
void h2_down_close_all(struct worker *wk);

/* Upstream, for pools of HTTP/2 clusters (called by upool). */
int h2_up_request(struct worker *wk, struct upool *p, struct hstream *s);
void h2_up_dispatch(struct worker *wk, struct upool *p);
/* Takes over a TLS connection of pool p (fd, in the epoll set, and tls, zeroed on success) on
 * which the server chose h2 by ALPN. 0 or -errno (then both are still the caller's). */
int h2_up_adopt(struct worker *wk, struct upool *p, int fd, struct tlsio *tls);
void h2_up_on_event(struct worker *wk, struct ev_handler *h, uint32_t events);
void h2_up_tick(struct worker *wk, struct upool *p);
void h2_up_close_pool(struct worker *wk, struct upool *p);
void h2_up_free_dead(struct worker *wk);
/* Writes what HTTP/2 connections queued during this loop iteration. */
void h2_flush_dirty(struct worker *wk);

#endif
