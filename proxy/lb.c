/* Load balancers. Tables are built once per snapshot; per-worker state holds only counters. */
#include "proxy/lb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/addr.h"

uint64_t px_hash_bytes(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

uint64_t px_hash_str(const char *s)
{
	return px_hash_bytes(s, strlen(s));
}

static uint64_t rng_next(struct px_lb_state *st)
{
	if (!st->rng)
		st->rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)st;
	st->rng ^= st->rng >> 12;
	st->rng ^= st->rng << 25;
	st->rng ^= st->rng >> 27;
	return st->rng * 0x2545F4914F6CDD1DULL;
}

static const char *ep_name(const struct px_endpoint *e, char *buf, size_t len)
{
	return addr_port_fmt(&e->addr, e->port, buf, len);
}

/* ---- tables ---------------------------------------------------------------------------------- */

static int cmp_ring(const void *a, const void *b)
{
	const struct px_ring_entry *x = a, *y = b;

	return x->hash < y->hash ? -1 : x->hash > y->hash;
}

/* Each endpoint gets PX_RING_POINTS points per unit of weight (relative to the lightest), so
 * its points do not depend on which other endpoints exist: when one leaves, only its keys move.
 * (Envoy sizes the ring from min_ring_size instead, which reshuffles some keys.) */
static int build_ring(struct arena *a, struct px_cluster *c)
{
	uint64_t minw = UINT64_MAX, want = 0, n = 0;
	double scale = 1.0;

	for (uint32_t i = 0; i < c->neligible; i++)
		if (c->endpoints[c->eligible[i]].weight < minw)
			minw = c->endpoints[c->eligible[i]].weight;
	for (uint32_t i = 0; i < c->neligible; i++)
		want += PX_RING_POINTS * c->endpoints[c->eligible[i]].weight / minw;
	if (want > PX_RING_MAX_SIZE)
		scale = (double)PX_RING_MAX_SIZE / (double)want;
	c->ring = arena_new(a, struct px_ring_entry, want + c->neligible);
	if (!c->ring)
		return -ENOMEM;
	for (uint32_t i = 0; i < c->neligible; i++) {
		const struct px_endpoint *e = &c->endpoints[c->eligible[i]];
		uint64_t k = (uint64_t)(scale * (double)(PX_RING_POINTS * e->weight / minw));
		char name[ADDR_STRLEN + 16];
		size_t base;

		if (!k)
			k = 1;
		ep_name(e, name, sizeof(name));
		base = strlen(name);
		for (uint64_t j = 0; j < k; j++) {
			snprintf(name + base, sizeof(name) - base, "_%llu", (unsigned long long)j);
			c->ring[n].hash = px_hash_str(name);
			c->ring[n].endpoint = c->eligible[i];
			n++;
		}
	}
	qsort(c->ring, n, sizeof(*c->ring), cmp_ring);
	c->ring_size = (uint32_t)n;
	return 0;
}

/* Maglev (Eisenbud et al.), weighted the way Envoy weights it: in each round an endpoint
 * earns weight/max_weight of a turn and claims its next preferred slot per whole turn. */
static int build_maglev(struct arena *a, struct px_cluster *c)
{
	const uint32_t m = PX_MAGLEV_TABLE_SIZE;
	uint32_t n = c->neligible, filled = 0, maxw = 1;
	uint64_t *offset, *skip, *next;
	double *credit;

	c->maglev = arena_new(a, uint32_t, m);
	offset = calloc(n, sizeof(*offset));
	skip = calloc(n, sizeof(*skip));
	next = calloc(n, sizeof(*next));
	credit = calloc(n, sizeof(*credit));
	if (!c->maglev || !offset || !skip || !next || !credit) {
		free(offset);
		free(skip);
		free(next);
		free(credit);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct px_endpoint *e = &c->endpoints[c->eligible[i]];
		char name[ADDR_STRLEN];

		ep_name(e, name, sizeof(name));
		offset[i] = px_hash_str(name) % m;
		skip[i] = (px_hash_bytes(name, strlen(name)) ^ 0x5bd1e995ULL) % (m - 1) + 1;
		if (e->weight > maxw)
			maxw = e->weight;
	}
	for (uint32_t k = 0; k < m; k++)
		c->maglev[k] = UINT32_MAX;
	while (filled < m) {
		for (uint32_t i = 0; i < n && filled < m; i++) {
			credit[i] += (double)c->endpoints[c->eligible[i]].weight / maxw;
			while (credit[i] >= 1.0 && filled < m) {
				uint64_t slot;

				credit[i] -= 1.0;
				do {
					slot = (offset[i] + next[i] * skip[i]) % m;
					next[i]++;
				} while (c->maglev[slot] != UINT32_MAX);
				c->maglev[slot] = c->eligible[i];
				filled++;
			}
		}
	}
	c->maglev_size = m;
	free(offset);
	free(skip);
	free(next);
	free(credit);
	return 0;
}

int px_lb_prepare(struct arena *a, struct px_cluster *c)
{
	uint32_t best_prio = UINT32_MAX, n = 0;

	if (c->type == PX_CLUSTER_ORIGINAL_DST || !c->nendpoints)
		return 0;
	for (uint32_t i = 0; i < c->nendpoints; i++) {
		if (!c->endpoints[i].weight)
			c->endpoints[i].weight = 1;
		if (c->endpoints[i].healthy && c->endpoints[i].priority < best_prio)
			best_prio = c->endpoints[i].priority;
	}
	/* Panic: nothing healthy anywhere, so spread over priority 0 as Envoy does. */
	bool panic = best_prio == UINT32_MAX;

	if (panic)
		best_prio = 0;
	c->eligible = arena_new(a, uint32_t, c->nendpoints);
	c->cumulative_weight = arena_new(a, uint64_t, c->nendpoints);
	if (!c->eligible || !c->cumulative_weight)
		return -ENOMEM;
	c->equal_weights = true;
	c->total_weight = 0;
	for (uint32_t i = 0; i < c->nendpoints; i++) {
		const struct px_endpoint *e = &c->endpoints[i];

		if (e->priority != best_prio || (!panic && !e->healthy))
			continue;
		if (n && e->weight != c->endpoints[c->eligible[0]].weight)
			c->equal_weights = false;
		c->total_weight += e->weight;
		c->eligible[n] = i;
		c->cumulative_weight[n] = c->total_weight;
		n++;
	}
	c->neligible = n;
	if (!n)
		return 0;
	if (c->lb == PX_LB_RING_HASH)
		return build_ring(a, c);
	if (c->lb == PX_LB_MAGLEV)
		return build_maglev(a, c);
	return 0;
}

/* ---- picking --------------------------------------------------------------------------------- */

static bool avoided(uint32_t ep, const uint32_t *avoid, uint32_t navoid)
{
	for (uint32_t i = 0; i < navoid; i++)
		if (avoid[i] == ep)
			return true;
	return false;
}

static int ensure_state(struct px_lb_state *st, const struct px_cluster *c)
{
	if (st->nendpoints == c->nendpoints && st->active)
		return 0;
	free(st->active);
	free(st->wrr_current);
	st->active = calloc(c->nendpoints ? c->nendpoints : 1, sizeof(*st->active));
	st->wrr_current = calloc(c->nendpoints ? c->nendpoints : 1, sizeof(*st->wrr_current));
	st->nendpoints = c->nendpoints;
	st->rr_next = 0;
	return st->active && st->wrr_current ? 0 : -ENOMEM;
}

static uint32_t pick_weighted_random(const struct px_cluster *c, uint64_t r)
{
	uint64_t target = r % c->total_weight;
	uint32_t lo = 0, hi = c->neligible - 1;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (c->cumulative_weight[mid] > target)
			hi = mid;
		else
			lo = mid + 1;
	}
	return c->eligible[lo];
}

/* Smooth weighted round robin: every pick adds each weight to its counter, takes the largest
 * and charges it the total, which interleaves endpoints in proportion to their weights. */
static uint32_t pick_wrr(const struct px_cluster *c, struct px_lb_state *st)
{
	uint32_t best = 0;

	for (uint32_t i = 0; i < c->neligible; i++) {
		st->wrr_current[i] += c->endpoints[c->eligible[i]].weight;
		if (st->wrr_current[i] > st->wrr_current[best])
			best = i;
	}
	st->wrr_current[best] -= (int64_t)c->total_weight;
	return c->eligible[best];
}

static uint32_t pick_ring(const struct px_cluster *c, uint64_t h, uint32_t step)
{
	uint32_t lo = 0, hi = c->ring_size;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (c->ring[mid].hash < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return c->ring[(lo + step) % c->ring_size].endpoint;
}

static uint32_t pick_one(const struct px_cluster *c, struct px_lb_state *st, const uint64_t *hash,
			 uint32_t attempt)
{
	switch (c->lb) {
	case PX_LB_RING_HASH:
		return pick_ring(c, hash ? *hash : rng_next(st), attempt);
	case PX_LB_MAGLEV:
		/* A retry walks to the next slot: a different endpoint, still deterministic. */
		return c->maglev[((hash ? *hash : rng_next(st)) + attempt) % c->maglev_size];
	case PX_LB_RANDOM:
		return pick_weighted_random(c, rng_next(st));
	case PX_LB_LEAST_REQUEST: {
		uint32_t a = pick_weighted_random(c, rng_next(st));
		uint32_t b = pick_weighted_random(c, rng_next(st));
		/* Fewer requests per unit of weight wins: compare active/weight crosswise. */
		uint64_t la = (uint64_t)st->active[a] * c->endpoints[b].weight;
		uint64_t lb = (uint64_t)st->active[b] * c->endpoints[a].weight;

		return la <= lb ? a : b;
	}
	case PX_LB_ROUND_ROBIN:
	default:
		if (c->equal_weights)
			return c->eligible[st->rr_next++ % c->neligible];
		return pick_wrr(c, st);
	}
}

int px_lb_pick(const struct px_cluster *c, struct px_lb_state *st, const uint64_t *hash,
	       const uint32_t *avoid, uint32_t navoid)
{
	uint32_t ep;

	if (!c->neligible || ensure_state(st, c))
		return -1;
	ep = pick_one(c, st, hash, 0);
	/* Another endpoint when possible; bounded, so a tiny cluster still gets an answer. */
	for (uint32_t attempt = 1;
	     navoid && avoided(ep, avoid, navoid) && attempt <= 2 * c->neligible; attempt++)
		ep = pick_one(c, st, hash, attempt);
	/* The random policies can draw the avoided ones every time (1 in 32 with two endpoints):
	 * then the first eligible endpoint not avoided, if there is one. */
	for (uint32_t i = 0; navoid && avoided(ep, avoid, navoid) && i < c->neligible; i++)
		if (!avoided(c->eligible[i], avoid, navoid))
			ep = c->eligible[i];
	return (int)ep;
}

void px_lb_acquire(struct px_lb_state *st, const struct px_cluster *c, uint32_t ep)
{
	if (ensure_state(st, c) == 0 && ep < st->nendpoints)
		st->active[ep]++;
}

void px_lb_release(struct px_lb_state *st, uint32_t ep)
{
	if (ep < st->nendpoints && st->active[ep])
		st->active[ep]--;
}

void px_lb_state_free(struct px_lb_state *st)
{
	free(st->active);
	free(st->wrr_current);
	memset(st, 0, sizeof(*st));
}
