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
static int build_ring(struct arena *a, const struct px_cluster *c, struct px_lb_set *set)
{
	uint64_t minw = UINT64_MAX, want = 0, n = 0;
	double scale = 1.0;

	for (uint32_t i = 0; i < set->neligible; i++)
		if (c->endpoints[set->eligible[i]].weight < minw)
			minw = c->endpoints[set->eligible[i]].weight;
	for (uint32_t i = 0; i < set->neligible; i++)
		want += PX_RING_POINTS * c->endpoints[set->eligible[i]].weight / minw;
	if (want > PX_RING_MAX_SIZE)
		scale = (double)PX_RING_MAX_SIZE / (double)want;
	set->ring = arena_new(a, struct px_ring_entry, want + set->neligible);
	if (!set->ring)
		return -ENOMEM;
	for (uint32_t i = 0; i < set->neligible; i++) {
		const struct px_endpoint *e = &c->endpoints[set->eligible[i]];
		uint64_t k = (uint64_t)(scale * (double)(PX_RING_POINTS * e->weight / minw));
		char name[ADDR_STRLEN + 16];
		size_t base;

		if (!k)
			k = 1;
		ep_name(e, name, sizeof(name));
		base = strlen(name);
		for (uint64_t j = 0; j < k; j++) {
			snprintf(name + base, sizeof(name) - base, "_%llu", (unsigned long long)j);
			set->ring[n].hash = px_hash_str(name);
			set->ring[n].endpoint = set->eligible[i];
			n++;
		}
	}
	qsort(set->ring, n, sizeof(*set->ring), cmp_ring);
	set->ring_size = (uint32_t)n;
	return 0;
}

/* Maglev (Eisenbud et al.), weighted the way Envoy weights it: in each round an endpoint
 * earns weight/max_weight of a turn and claims its next preferred slot per whole turn. */
static int build_maglev(struct arena *a, const struct px_cluster *c, struct px_lb_set *set)
{
	const uint32_t m = PX_MAGLEV_TABLE_SIZE;
	uint32_t n = set->neligible, filled = 0, maxw = 1;
	uint64_t *offset, *skip, *next;
	double *credit;

	set->maglev = arena_new(a, uint32_t, m);
	offset = calloc(n, sizeof(*offset));
	skip = calloc(n, sizeof(*skip));
	next = calloc(n, sizeof(*next));
	credit = calloc(n, sizeof(*credit));
	if (!set->maglev || !offset || !skip || !next || !credit) {
		free(offset);
		free(skip);
		free(next);
		free(credit);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct px_endpoint *e = &c->endpoints[set->eligible[i]];
		char name[ADDR_STRLEN];

		ep_name(e, name, sizeof(name));
		offset[i] = px_hash_str(name) % m;
		skip[i] = (px_hash_bytes(name, strlen(name)) ^ 0x5bd1e995ULL) % (m - 1) + 1;
		if (e->weight > maxw)
			maxw = e->weight;
	}
	for (uint32_t k = 0; k < m; k++)
		set->maglev[k] = UINT32_MAX;
	while (filled < m) {
		for (uint32_t i = 0; i < n && filled < m; i++) {
			credit[i] += (double)c->endpoints[set->eligible[i]].weight / maxw;
			while (credit[i] >= 1.0 && filled < m) {
				uint64_t slot;

				credit[i] -= 1.0;
				do {
					slot = (offset[i] + next[i] * skip[i]) % m;
					next[i]++;
				} while (set->maglev[slot] != UINT32_MAX);
				set->maglev[slot] = set->eligible[i];
				filled++;
			}
		}
	}
	set->maglev_size = m;
	free(offset);
	free(skip);
	free(next);
	free(credit);
	return 0;
}

/* Envoy's priority load. A level's health is its share of healthy endpoints scaled by the
 * overprovisioning factor, at most 100; the levels take traffic in order, each its health's
 * share of the normalised total (the sum of healths, at most 100), so a level that is short of
 * healthy endpoints spills what it lacks to the next ones. When the normalised total is under
 * 100 there are not enough healthy endpoints anywhere: a level whose healthy share is under the
 * panic threshold then uses all its endpoints. With nothing healthy at all, the first level
 * takes everything in panic, or nothing when panic is disabled. */
static void priority_loads(const struct px_cluster *c, uint32_t nlevels, const uint32_t *healthy,
			   const uint32_t *total, uint32_t *load, bool *panic)
{
	uint32_t over = c->overprovisioning_pct ? c->overprovisioning_pct : PX_OVERPROVISIONING_DEF;
	uint32_t panic_pct =
		c->panic_threshold_pct ? c->panic_threshold_pct : PX_PANIC_THRESHOLD_DEF;
	uint32_t sum = 0, left = 100, first_healthy = UINT32_MAX;
	uint32_t health[PX_LB_MAX_PRIORITIES];

	for (uint32_t p = 0; p < nlevels; p++) {
		uint64_t h = (uint64_t)over * healthy[p] / total[p];

		health[p] = h > 100 ? 100 : (uint32_t)h;
		sum += health[p];
		load[p] = 0;
		panic[p] = false;
		if (health[p] && first_healthy == UINT32_MAX)
			first_healthy = p;
	}
	if (!sum) {
		if (!c->panic_disabled) {
			load[0] = 100;
			panic[0] = true;
		}
		return;
	}
	uint32_t normalised = sum > 100 ? 100 : sum;

	for (uint32_t p = 0; p < nlevels; p++) {
		uint32_t share = health[p] * 100 / normalised;

		load[p] = share < left ? share : left;
		left -= load[p];
		panic[p] = normalised < 100 && !c->panic_disabled &&
			   (uint64_t)healthy[p] * 100 < (uint64_t)panic_pct * total[p];
	}
	load[first_healthy] += left; /* what integer division left over */
}

/* The priority levels present, in order (endpoints may skip levels). */
static uint32_t distinct_priorities(const struct px_cluster *c, uint32_t *prio)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < c->nendpoints; i++) {
		uint32_t p = c->endpoints[i].priority, j = n;

		for (uint32_t k = 0; k < n; k++)
			if (prio[k] == p)
				goto seen;
		if (n == PX_LB_MAX_PRIORITIES)
			continue; /* the translator bounds them; past the bound, ignore */
		while (j > 0 && prio[j - 1] > p) {
			prio[j] = prio[j - 1];
			j--;
		}
		prio[j] = p;
		n++;
	seen:;
	}
	return n;
}

static bool same_locality(const char *a, const char *b)
{
	return !strcmp(a ? a : "", b ? b : "");
}

static bool in_set(const struct px_lb_set *set, const struct px_endpoint *e)
{
	return e->priority == set->priority &&
	       (!set->by_locality || same_locality(e->locality, set->locality));
}

static int prepare_set(struct arena *a, const struct px_cluster *c, struct px_lb_set *set)
{
	set->eligible = arena_new(a, uint32_t, c->nendpoints);
	set->cumulative_weight = arena_new(a, uint64_t, c->nendpoints);
	if (!set->eligible || !set->cumulative_weight)
		return -ENOMEM;
	set->equal_weights = true;
	for (uint32_t i = 0; i < c->nendpoints; i++) {
		const struct px_endpoint *e = &c->endpoints[i];

		if (!in_set(set, e) || (!set->panic && !e->healthy))
			continue;
		if (set->neligible && e->weight != c->endpoints[set->eligible[0]].weight)
			set->equal_weights = false;
		set->total_weight += e->weight;
		set->eligible[set->neligible] = i;
		set->cumulative_weight[set->neligible] = set->total_weight;
		set->neligible++;
	}
	if (!set->share || !set->neligible)
		return 0;
	if (c->lb == PX_LB_RING_HASH)
		return build_ring(a, c, set);
	if (c->lb == PX_LB_MAGLEV)
		return build_maglev(a, c, set);
	return 0;
}

/* Scratch space of locality_sets, one slot per endpoint (a locality has at least one). */
struct locality_scratch {
	uint32_t *healthy, *total;
	uint64_t *eff;
};

/* Envoy's locality weighted balancing (common_lb_config.locality_weighted_lb_config): a level's
 * share is split between its localities by load_balancing_weight x availability (the healthy
 * share with the overprovisioning factor, at most 1; ignored in panic), and a locality without a
 * weight takes nothing. One set per locality, written from `out`; returns how many. */
static uint32_t locality_sets(const struct px_cluster *c, uint32_t prio, uint32_t load, bool panic,
			      struct px_lb_set *out, const struct locality_scratch *sc)
{
	uint32_t over = c->overprovisioning_pct ? c->overprovisioning_pct : PX_OVERPROVISIONING_DEF;
	uint32_t n = 0, best = 0, *healthy = sc->healthy, *total = sc->total;
	uint64_t *eff = sc->eff, sum = 0, given = 0;
	uint64_t level_share = (uint64_t)load * (PX_LB_SHARE_SCALE / 100);

	for (uint32_t i = 0; i < c->nendpoints; i++) {
		const struct px_endpoint *e = &c->endpoints[i];
		uint32_t l;

		if (e->priority != prio)
			continue;
		for (l = 0; l < n && !same_locality(out[l].locality, e->locality); l++)
			;
		if (l == n) {
			out[n] = (struct px_lb_set){.priority = prio,
						    .load = load,
						    .panic = panic,
						    .by_locality = true,
						    .locality = e->locality,
						    .locality_weight = e->locality_weight};
			healthy[n] = total[n] = 0;
			n++;
		}
		total[l]++;
		healthy[l] += e->healthy;
	}
	for (uint32_t l = 0; l < n; l++) {
		uint64_t avail = (uint64_t)over * healthy[l] / total[l];

		eff[l] = (uint64_t)out[l].locality_weight * (panic	   ? 100
							     : avail > 100 ? 100
									   : avail);
		sum += eff[l];
		if (eff[l] > eff[best])
			best = l;
	}
	if (!sum)
		return n; /* no weighted locality has an endpoint to give: the level takes nothing */
	for (uint32_t l = 0; l < n; l++) {
		out[l].share = level_share * eff[l] / sum;
		given += out[l].share;
	}
	out[best].share += level_share - given; /* what integer division left over */
	return n;
}

int px_lb_prepare(struct arena *a, struct px_cluster *c)
{
	uint32_t prio[PX_LB_MAX_PRIORITIES], healthy[PX_LB_MAX_PRIORITIES] = {0},
					     total[PX_LB_MAX_PRIORITIES] = {0},
					     load[PX_LB_MAX_PRIORITIES], n;
	bool panic[PX_LB_MAX_PRIORITIES];
	bool by_locality =
		c->locality_weighted && c->lb != PX_LB_RING_HASH && c->lb != PX_LB_MAGLEV;
	uint64_t end = 0;

	c->nsets = 0;
	c->neligible = 0;
	c->total_share = 0;
	if (c->type == PX_CLUSTER_ORIGINAL_DST || !c->nendpoints)
		return 0;
	for (uint32_t i = 0; i < c->nendpoints; i++)
		if (!c->endpoints[i].weight)
			c->endpoints[i].weight = 1;
	n = distinct_priorities(c, prio);
	for (uint32_t i = 0; i < c->nendpoints; i++) {
		for (uint32_t p = 0; p < n; p++) {
			if (c->endpoints[i].priority == prio[p]) {
				total[p]++;
				healthy[p] += c->endpoints[i].healthy;
			}
		}
	}
	priority_loads(c, n, healthy, total, load, panic);
	/* Each locality has an endpoint: there are at most as many as endpoints. */
	c->sets = arena_new(a, struct px_lb_set, by_locality ? c->nendpoints : n);
	if (!c->sets)
		return -ENOMEM;
	if (by_locality) {
		struct locality_scratch sc = {calloc(c->nendpoints, sizeof(uint32_t)),
					      calloc(c->nendpoints, sizeof(uint32_t)),
					      calloc(c->nendpoints, sizeof(uint64_t))};

		for (uint32_t p = 0; p < n && sc.healthy && sc.total && sc.eff; p++)
			c->nsets += locality_sets(c, prio[p], load[p], panic[p], &c->sets[c->nsets],
						  &sc);
		free(sc.healthy);
		free(sc.total);
		free(sc.eff);
		if (!c->nsets)
			return -ENOMEM; /* n >= 1 level, so each gave a set unless calloc failed */
	}
	for (uint32_t p = 0; p < n && !by_locality; p++) {
		c->sets[c->nsets++] =
			(struct px_lb_set){.priority = prio[p],
					   .load = load[p],
					   .panic = panic[p],
					   .share = (uint64_t)load[p] * (PX_LB_SHARE_SCALE / 100)};
	}
	for (uint32_t k = 0; k < c->nsets; k++) {
		struct px_lb_set *set = &c->sets[k];
		int err = prepare_set(a, c, set);

		if (err)
			return err;
		/* A share whose set has no endpoint goes to nobody: the others' grow. */
		if (!set->neligible)
			set->share = 0;
		end += set->share;
		set->share_end = end;
		if (set->share)
			c->neligible += set->neligible;
	}
	c->total_share = end;
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
	if (st->nendpoints == c->nendpoints && st->nsets == c->nsets && st->active)
		return 0;
	free(st->active);
	free(st->wrr_current);
	free(st->rr_next);
	st->active = calloc(c->nendpoints ? c->nendpoints : 1, sizeof(*st->active));
	st->wrr_current = calloc(c->nendpoints ? c->nendpoints : 1, sizeof(*st->wrr_current));
	st->rr_next = calloc(c->nsets ? c->nsets : 1, sizeof(*st->rr_next));
	st->nendpoints = c->nendpoints;
	st->nsets = c->nsets;
	return st->active && st->wrr_current && st->rr_next ? 0 : -ENOMEM;
}

static uint32_t pick_weighted_random(const struct px_lb_set *set, uint64_t r)
{
	uint64_t target = r % set->total_weight;
	uint32_t lo = 0, hi = set->neligible - 1;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (set->cumulative_weight[mid] > target)
			hi = mid;
		else
			lo = mid + 1;
	}
	return set->eligible[lo];
}

/* Smooth weighted round robin: every pick adds each weight to its counter, takes the largest
 * and charges it the total, which interleaves endpoints in proportion to their weights. */
static uint32_t pick_wrr(const struct px_cluster *c, const struct px_lb_set *set,
			 struct px_lb_state *st)
{
	uint32_t best = set->eligible[0];

	for (uint32_t i = 0; i < set->neligible; i++) {
		uint32_t ep = set->eligible[i];

		st->wrr_current[ep] += c->endpoints[ep].weight;
		if (st->wrr_current[ep] > st->wrr_current[best])
			best = ep;
	}
	st->wrr_current[best] -= (int64_t)set->total_weight;
	return best;
}

static uint32_t pick_ring(const struct px_lb_set *set, uint64_t h, uint32_t step)
{
	uint32_t lo = 0, hi = set->ring_size;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (set->ring[mid].hash < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return set->ring[(lo + step) % set->ring_size].endpoint;
}

static uint32_t pick_one(const struct px_cluster *c, const struct px_lb_set *set,
			 struct px_lb_state *st, const uint64_t *hash, uint32_t attempt)
{
	uint32_t si = (uint32_t)(set - c->sets);

	switch (c->lb) {
	case PX_LB_RING_HASH:
		return pick_ring(set, hash ? *hash : rng_next(st), attempt);
	case PX_LB_MAGLEV:
		/* A retry walks to the next slot: a different endpoint, still deterministic. */
		return set->maglev[((hash ? *hash : rng_next(st)) + attempt) % set->maglev_size];
	case PX_LB_RANDOM:
		return pick_weighted_random(set, rng_next(st));
	case PX_LB_LEAST_REQUEST: {
		uint32_t a = pick_weighted_random(set, rng_next(st));
		uint32_t b = pick_weighted_random(set, rng_next(st));
		/* Fewer requests per unit of weight wins: compare active/weight crosswise. */
		uint64_t la = (uint64_t)st->active[a] * c->endpoints[b].weight;
		uint64_t lb = (uint64_t)st->active[b] * c->endpoints[a].weight;

		return la <= lb ? a : b;
	}
	case PX_LB_ROUND_ROBIN:
	default:
		if (set->equal_weights)
			return set->eligible[st->rr_next[si]++ % set->neligible];
		return pick_wrr(c, set, st);
	}
}

/* The priority level of a request: by its share of the loads. A hashing balancer draws it from
 * the request's hash (as Envoy does), so a key keeps its level as long as the loads stay. */
static const struct px_lb_set *pick_set(const struct px_cluster *c, struct px_lb_state *st,
					const uint64_t *hash)
{
	uint64_t r;

	if (c->nsets == 1)
		return &c->sets[0];
	r = (hash && (c->lb == PX_LB_RING_HASH || c->lb == PX_LB_MAGLEV) ? *hash : rng_next(st)) %
	    c->total_share;
	for (uint32_t k = 0; k < c->nsets; k++)
		if (r < c->sets[k].share_end)
			return &c->sets[k];
	return &c->sets[c->nsets - 1]; /* not reached: share_end ends at total_share */
}

int px_lb_pick(const struct px_cluster *c, struct px_lb_state *st, const uint64_t *hash,
	       const uint32_t *avoid, uint32_t navoid)
{
	const struct px_lb_set *set;
	uint32_t ep;

	if (!c->neligible || ensure_state(st, c))
		return -1;
	set = pick_set(c, st, hash);
	ep = pick_one(c, set, st, hash, 0);
	/* Another endpoint when possible; bounded, so a tiny cluster still gets an answer. */
	for (uint32_t attempt = 1;
	     navoid && avoided(ep, avoid, navoid) && attempt <= 2 * set->neligible; attempt++)
		ep = pick_one(c, set, st, hash, attempt);
	/* The random policies can draw the avoided ones every time (1 in 32 with two endpoints):
	 * then the first eligible endpoint of the level not avoided, if there is one. */
	for (uint32_t i = 0; navoid && avoided(ep, avoid, navoid) && i < set->neligible; i++)
		if (!avoided(set->eligible[i], avoid, navoid))
			ep = set->eligible[i];
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
	free(st->rr_next);
	memset(st, 0, sizeof(*st));
}
