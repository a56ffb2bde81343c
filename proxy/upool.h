/* Upstream connection pools, per worker and per (cluster, endpoint): HTTP/1 connections are
 * lent to one stream at a time and kept alive between them; HTTP/2 connections carry many.
 * Circuit breakers bound connections, pending requests and requests per cluster. */
#ifndef SHUNT_PROXY_UPOOL_H
#define SHUNT_PROXY_UPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/config.h"

struct worker;
struct hstream;
struct uconn;

/* Finds s an upstream for endpoint ep of cluster c. The pool calls hstream_on_upstream_ready
 * (possibly before returning) or hstream_on_upstream_failure later. -EBUSY when a circuit
 * breaker refuses (the caller answers 503 UO); -errno for other failures. */
int upool_request(struct worker *wk, struct hstream *s, const struct px_cluster *c, uint32_t ep);
/* s no longer waits for a connection (timeout, downstream gone). */
void upool_cancel(struct worker *wk, struct hstream *s);
/* The exchange on u ended; reusable: the connection may carry another request. */
void upool_release(struct worker *wk, struct uconn *u, bool reusable);
/* Connect timeouts and idle expiry. */
void upool_tick(struct worker *wk);
void upool_destroy(struct worker *wk);

#endif
