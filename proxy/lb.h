/* Load balancing over a cluster's endpoints: first a priority level by Envoy's priority load
 * (health, overprovisioning factor, panic threshold), then an endpoint of that level by round
 * robin (weighted), least request (power of two choices), random (weighted), ring hash or
 * Maglev. */
#ifndef SHUNT_PROXY_LB_H
#define SHUNT_PROXY_LB_H

#include <stddef.h>
#include <stdint.h>

#include "lib/arena.h"
#include "proxy/config.h"

/* One worker's mutable balancer state for one cluster; zero-initialised is ready. */
struct px_lb_state {
	uint32_t *rr_next;    /* round robin position, per priority level */
	int64_t *wrr_current; /* smooth weighted round robin, per endpoint */
	uint32_t *active;     /* requests in flight, per endpoint (least request) */
	uint32_t nendpoints, nsets;
	uint64_t rng;
};

/* Builds what px_lb_pick reads from the (then immutable) cluster. */
int px_lb_prepare(struct arena *a, struct px_cluster *c);
/* Picks an endpoint index, or -1 when the cluster has none. hash: for RING_HASH/MAGLEV (NULL:
 * pick at random). avoid: endpoints to skip if any other will do (a retry's previous hosts). */
int px_lb_pick(const struct px_cluster *c, struct px_lb_state *st, const uint64_t *hash,
	       const uint32_t *avoid, uint32_t navoid);
/* Least request bookkeeping: a request to endpoint ep starts / ends. */
void px_lb_acquire(struct px_lb_state *st, const struct px_cluster *c, uint32_t ep);
void px_lb_release(struct px_lb_state *st, uint32_t ep);
void px_lb_state_free(struct px_lb_state *st);

uint64_t px_hash_bytes(const void *p, size_t n);
uint64_t px_hash_str(const char *s);

#endif
