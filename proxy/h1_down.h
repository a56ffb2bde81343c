/* The HTTP/1.1 downstream codec (see h1_down.c). */
#ifndef SHUNT_PROXY_H1_DOWN_H
#define SHUNT_PROXY_H1_DOWN_H

#include <stdint.h>

#include "lib/addr.h"
#include "proxy/config.h"

struct worker;
struct ev_handler;
struct proxy_workload;
struct tlsio;
struct hconn;

/* Takes over fd (already in the worker's epoll set) for an HTTP filter chain, and tls (the
 * handshake done; zeroed on success) when the chain terminated TLS, or NULL. The connection
 * holds references to w and snap. 0 or -errno (then fd and tls are still the caller's). */
int h1_down_start(struct worker *wk, int fd, struct proxy_workload *w, struct px_snapshot *snap,
		  const struct px_listener *l, const struct px_filter_chain *fc,
		  const struct shunt_addr *remote, __u16 remote_port,
		  const struct shunt_addr *local, __u16 local_port, struct tlsio *tls);
void h1_down_on_event(struct worker *wk, struct ev_handler *h, uint32_t events);
/* Connections whose exchange ended during this iteration go on with the next request. */
void h1_down_run_ready(struct worker *wk);
/* Stream timers and idle connections. */
void h1_down_tick(struct worker *wk);
/* Draining began: idle connections close now, busy ones after their response (which says
 * connection: close). */
void h1_down_drain(struct worker *wk);
/* The same for one connection (hc of an HTTP/1 connection). */
void h1_down_drain_conn(struct worker *wk, struct hconn *hc);
void h1_down_free_dead(struct worker *wk);
void h1_down_close_all(struct worker *wk);

#endif
