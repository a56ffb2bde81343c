/* DNS for STRICT_DNS and LOGICAL_DNS clusters: a resolver thread that keeps every name the
 * active config uses resolved, refreshing each at its cluster's dns_refresh_rate, and pokes the
 * agent's loop (an eventfd) when an answer changes so that it publishes a new snapshot. Nothing
 * on a proxy worker or on the agent's loop ever waits for DNS. A failed lookup keeps the last
 * good answer (Envoy does the same); a name never answered has no address (503 UH). */
#ifndef SHUNT_AGENT_DNS_H
#define SHUNT_AGENT_DNS_H

#include <linux/types.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/lib/shunt_maps.h"

#define DNS_MAX_NAMES	   4096 /* names resolved at once; more are counted and left out */
#define DNS_MAX_ADDRS	   32	/* addresses kept per name */
#define DNS_REFRESH_MS_MIN 100	/* a dns_refresh_rate below this is raised to it */

struct dns_cache;

struct dns_stats {
	uint64_t lookups, failures, changes, names, names_dropped;
};

/* Starts the resolver thread. NULL (errno set) when it cannot. */
struct dns_cache *dns_cache_start(void);
/* Readable when an answer changed since the last dns_cache_drain. */
int dns_cache_fd(const struct dns_cache *c);
void dns_cache_drain(struct dns_cache *c);
/* One name the active config needs, and how often: refresh_ms after an answer; after a failed
 * lookup, with a dns_failure_refresh_rate (fail_base_ms > 0), a jittered backoff from
 * fail_base_ms doubling up to fail_max_ms, else refresh_ms again. */
struct dns_want {
	const char *name;
	uint32_t refresh_ms, fail_base_ms, fail_max_ms;
};

/* Replaces the set of names (answers of names that stay are kept; new ones are resolved at
 * once). A name in several clusters takes the fastest of their schedules. */
void dns_cache_want(struct dns_cache *c, const struct dns_want *want, size_t n);
/* The wait before the next lookup of a name: refresh_ms after an answer (failures 0); after
 * the failures-th failure in a row, refresh_ms, or with fail_base_ms a random wait in
 * [d/2, d] where d = fail_base_ms * 2^(failures-1), at most fail_max_ms. */
uint32_t dns_next_wait(const struct dns_want *w, uint32_t failures, unsigned *rng);
/* The addresses of host for a family policy (enum px_dns_family), at most max of them, in the
 * order the resolver gave; 0 when the name has no answer yet. Safe from any thread; ctx is the
 * cache (the signature of xds_snapshot's lookup hook). */
int dns_cache_lookup(void *ctx, const char *host, int family, struct shunt_addr *out, int max);
void dns_cache_stats(struct dns_cache *c, struct dns_stats *out);
void dns_cache_stop(struct dns_cache *c);

#endif
