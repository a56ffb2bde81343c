/* Tests proxy/lb.c: each balancer's distribution, hashing affinity and minimal disruption,
 * health and priorities, and the retry avoid-list. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/addr.h"
#include "proxy/lb.h"
#include "tests/lib/tap.h"

#define MAXEP 16

struct fixture {
	struct arena a;
	struct px_cluster c;
	struct px_endpoint eps[MAXEP];
};

static void setup(struct fixture *f, enum px_lb_policy lb, int n, const uint32_t *weights)
{
	memset(f, 0, sizeof(*f));
	for (int i = 0; i < n; i++) {
		char ip[32];

		snprintf(ip, sizeof(ip), "10.1.0.%d", i + 1);
		addr_parse(&f->eps[i].addr, ip);
		f->eps[i].port = 8080;
		f->eps[i].weight = weights ? weights[i] : 1;
		f->eps[i].healthy = true;
	}
	f->c.name = "c";
	f->c.type = PX_CLUSTER_EDS;
	f->c.lb = lb;
	f->c.endpoints = f->eps;
	f->c.nendpoints = (uint32_t)n;
}

static int prepare(struct fixture *f)
{
	return px_lb_prepare(&f->a, &f->c);
}

/* Pearson's chi-square of counts against expected shares of `total`. */
static double chi2(const unsigned *counts, const double *share, int n, unsigned total)
{
	double x = 0;

	for (int i = 0; i < n; i++) {
		double e = share[i] * total;

		x += (counts[i] - e) * (counts[i] - e) / e;
	}
	return x;
}

/* Critical values at p = 1e-6 for 1..5 degrees of freedom: a real bias (84% drawn as 80%)
 * is still hundreds, and the draws are seeded, so a run repeats exactly. */
static const double chi2_crit[] = {0, 23.93, 27.63, 30.66, 33.38, 35.89};

/* Every test's balancer state starts from this seed rather than from its stack address. */
#define LB_TEST_SEED 0x5eed5eed5eed5eedULL

/* Frees the state for the next case and seeds it again (px_lb_state_free zeroes the seed). */
static void state_reset(struct px_lb_state *st)
{
	px_lb_state_free(st);
	st->rng = LB_TEST_SEED;
}

static void test_round_robin(void)
{
	struct fixture f;
	struct px_lb_state st = {.rng = LB_TEST_SEED};
	unsigned counts[MAXEP] = {0};
	static const uint32_t w[] = {1, 2, 3};

	setup(&f, PX_LB_ROUND_ROBIN, 3, NULL);
	ok(prepare(&f) == 0 && f.c.sets[0].equal_weights, "round robin, equal weights");
	for (int i = 0; i < 3000; i++)
		counts[px_lb_pick(&f.c, &st, NULL, NULL, 0)]++;
	ok(counts[0] == 1000 && counts[1] == 1000 && counts[2] == 1000,
	   "3000 picks over 3 endpoints: exactly 1000 each (%u %u %u)", counts[0], counts[1],
	   counts[2]);
	state_reset(&st);
	arena_free(&f.a);

	setup(&f, PX_LB_ROUND_ROBIN, 3, w);
	memset(counts, 0, sizeof(counts));
	prepare(&f);
	int run = 0, longest = 0, last = -1;

	for (int i = 0; i < 6000; i++) {
		int ep = px_lb_pick(&f.c, &st, NULL, NULL, 0);

		counts[ep]++;
		run = ep == last ? run + 1 : 1;
		longest = run > longest ? run : longest;
		last = ep;
	}
	ok(counts[0] == 1000 && counts[1] == 2000 && counts[2] == 3000,
	   "weights 1:2:3 give exactly 1000/2000/3000 of 6000 (%u %u %u)", counts[0], counts[1],
	   counts[2]);
	cmp_ge(2, longest, "and interleave smoothly (longest run %d)", longest);
	state_reset(&st);
	arena_free(&f.a);
}

static void test_random_and_least_request(void)
{
	static const uint32_t w[] = {1, 1, 2};
	static const double share[] = {0.25, 0.25, 0.5}, even[] = {1.0 / 3, 1.0 / 3, 1.0 / 3};
	struct fixture f;
	struct px_lb_state st = {.rng = LB_TEST_SEED};
	unsigned counts[MAXEP] = {0};

	setup(&f, PX_LB_RANDOM, 3, w);
	prepare(&f);
	for (int i = 0; i < 40000; i++)
		counts[px_lb_pick(&f.c, &st, NULL, NULL, 0)]++;
	double x = chi2(counts, share, 3, 40000);

	ok(x < chi2_crit[2], "random with weights 1:1:2 fits the weights (chi2 %.2f < %.2f)", x,
	   chi2_crit[2]);
	state_reset(&st);
	arena_free(&f.a);

	setup(&f, PX_LB_LEAST_REQUEST, 3, NULL);
	prepare(&f);
	memset(counts, 0, sizeof(counts));
	for (int i = 0; i < 30000; i++)
		counts[px_lb_pick(&f.c, &st, NULL, NULL, 0)]++;
	x = chi2(counts, even, 3, 30000);
	ok(x < chi2_crit[2], "least request with nothing in flight spreads evenly (chi2 %.2f)", x);
	/* Endpoint 0 is busy: power of two choices avoids it whenever the other pick is idle. */
	for (int i = 0; i < 50; i++)
		px_lb_acquire(&st, &f.c, 0);
	memset(counts, 0, sizeof(counts));
	for (int i = 0; i < 9000; i++)
		counts[px_lb_pick(&f.c, &st, NULL, NULL, 0)]++;
	ok(counts[0] < 9000 / 9 + 200,
	   "a busy endpoint is chosen only when both choices land on it (%u of 9000)", counts[0]);
	for (int i = 0; i < 50; i++)
		px_lb_release(&st, 0);
	is_int(st.active[0], 0, "releases bring it back to zero");
	state_reset(&st);
	arena_free(&f.a);
}

/* Hashing balancers: affinity, distribution, and how many keys move when an endpoint goes. */
static void test_hashing(enum px_lb_policy lb, const char *name, double max_skew, double min_kept)
{
	enum {
		N = 5,
		KEYS = 20000
	};
	struct fixture f, g;
	struct px_lb_state st = {.rng = LB_TEST_SEED};
	unsigned counts[MAXEP] = {0};
	int *first = calloc(KEYS, sizeof(int));
	int moved_other = 0, on_removed = 0;

	setup(&f, lb, N, NULL);
	ok(prepare(&f) == 0, "%s: tables built", name);
	for (int k = 0; k < KEYS; k++) {
		uint64_t h = px_hash_bytes(&k, sizeof(k));

		first[k] = px_lb_pick(&f.c, &st, &h, NULL, 0);
		counts[first[k]]++;
	}
	int same = 1;

	for (int k = 0; k < KEYS; k += 97) {
		uint64_t h = px_hash_bytes(&k, sizeof(k));

		same &= px_lb_pick(&f.c, &st, &h, NULL, 0) == first[k];
	}
	ok(same, "%s: the same key always lands on the same endpoint", name);
	double worst = 0;

	for (int i = 0; i < N; i++) {
		double skew = fabs(counts[i] - KEYS / (double)N) / (KEYS / (double)N);

		worst = skew > worst ? skew : worst;
	}
	ok(worst < max_skew, "%s: keys spread within %.0f%% of even (worst %.1f%%)", name,
	   max_skew * 100, worst * 100);

	/* Endpoint 2 leaves: only its keys should move. */
	setup(&g, lb, N, NULL);
	g.eps[2].healthy = false;
	prepare(&g);
	for (int k = 0; k < KEYS; k++) {
		uint64_t h = px_hash_bytes(&k, sizeof(k));
		int now = px_lb_pick(&g.c, &st, &h, NULL, 0);

		if (first[k] == 2)
			on_removed += now == 2;
		else
			moved_other += now != first[k];
	}
	is_int(on_removed, 0, "%s: nothing goes to the endpoint that left", name);
	double kept = 1.0 - (double)moved_other / (KEYS - counts[2]);

	ok(kept >= min_kept, "%s: %.1f%% of the other keys stay where they were (>= %.0f%%)", name,
	   kept * 100, min_kept * 100);
	free(first);
	state_reset(&st);
	arena_free(&f.a);
	arena_free(&g.a);
}

static void test_health_priority_avoid(void)
{
	struct fixture f;
	struct px_lb_state st = {.rng = LB_TEST_SEED};
	unsigned counts[MAXEP] = {0};

	setup(&f, PX_LB_ROUND_ROBIN, 4, NULL);
	f.eps[0].healthy = false;
	f.eps[2].priority = 1;
	f.eps[3].priority = 1;
	prepare(&f);
	for (int i = 0; i < 100; i++)
		counts[px_lb_pick(&f.c, &st, NULL, NULL, 0)]++;
	ok(counts[0] == 0 && counts[1] > 0 && counts[2] + counts[3] > 0,
	   "half of priority 0 down: its healthy endpoint and priority 1 share (%u %u %u %u)",
	   counts[0], counts[1], counts[2], counts[3]);
	arena_free(&f.a);

	setup(&f, PX_LB_ROUND_ROBIN, 4, NULL);
	f.eps[0].healthy = f.eps[1].healthy = false;
	f.eps[2].priority = f.eps[3].priority = 1;
	prepare(&f);
	memset(counts, 0, sizeof(counts));
	for (int i = 0; i < 100; i++)
		counts[px_lb_pick(&f.c, &st, NULL, NULL, 0)]++;
	ok(counts[2] == 50 && counts[3] == 50, "priority 1 takes over when priority 0 is down");
	arena_free(&f.a);

	setup(&f, PX_LB_ROUND_ROBIN, 2, NULL);
	f.eps[0].healthy = f.eps[1].healthy = false;
	prepare(&f);
	ok(px_lb_pick(&f.c, &st, NULL, NULL, 0) >= 0,
	   "with nothing healthy, panic mode still picks");
	arena_free(&f.a);

	for (int lb = PX_LB_ROUND_ROBIN; lb <= PX_LB_MAGLEV; lb++) {
		setup(&f, lb, 2, NULL);
		prepare(&f);
		int same = 0;

		/* Every time, not just usually: 2,000 draws with different hashes and states. */
		for (uint64_t h = 0; h < 2000; h++) {
			int a = px_lb_pick(&f.c, &st, &h, NULL, 0);
			uint32_t avoid = (uint32_t)a;
			int b = px_lb_pick(&f.c, &st, &h, &avoid, 1);

			same += a < 0 || b < 0 || a == b;
		}
		is_int(same, 0,
		       "policy %d: a retry avoids the previous endpoint, 2000 times of 2000", lb);
		state_reset(&st);
		arena_free(&f.a);
	}
	setup(&f, PX_LB_ROUND_ROBIN, 0, NULL);
	prepare(&f);
	is_int(px_lb_pick(&f.c, &st, NULL, NULL, 0), -1, "an empty cluster gives no endpoint");
	state_reset(&st);
	arena_free(&f.a);
}

/* The priority loads and panic modes as Envoy's documentation works them out (overprovisioning
 * factor 1.4, panic threshold 50%). */
static bool loads_are(const struct px_cluster *c, const uint32_t *want, const bool *panic, int n)
{
	if ((int)c->nsets != n)
		return false;
	for (int p = 0; p < n; p++)
		if (c->sets[p].load != want[p] || c->sets[p].panic != panic[p])
			return false;
	return true;
}

static void test_priority_load(void)
{
	/* Priorities of 5 endpoints each; `up` of them healthy per level. */
	static const struct {
		int n, up[3];
		uint32_t load[3];
		bool panic[3];
		const char *what;
	} cases[] = {
		{2, {5, 5}, {100, 0}, {0, 0}, "P0 all healthy: P0 takes everything"},
		{2, {4, 5}, {100, 0}, {0, 0}, "P0 80% healthy: 1.4 x 80% caps at 100%"},
		{2, {3, 5}, {84, 16}, {0, 0}, "P0 60% healthy: 84% stays, 16% spills to P1"},
		{2, {1, 5}, {28, 72}, {0, 0}, "P0 20% healthy: 28% stays, P1 takes 72%"},
		{2, {0, 5}, {0, 100}, {0, 0}, "P0 down: P1 takes everything"},
		{2, {2, 1}, {67, 33}, {1, 1}, "P0 40%, P1 20%: normalised loads, both in panic"},
		{3, {1, 1, 5}, {28, 28, 44}, {0, 0, 0}, "three levels: the third fills the gap"},
		{2, {0, 0}, {100, 0}, {1, 0}, "nothing healthy: P0 in panic takes everything"},
	};
	struct fixture f;
	struct px_lb_state st = {.rng = LB_TEST_SEED};

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		memset(&f, 0, sizeof(f));
		setup(&f, PX_LB_RANDOM, 5 * cases[k].n, NULL);
		for (int i = 0; i < 5 * cases[k].n; i++) {
			f.eps[i].priority = (uint32_t)(i / 5);
			f.eps[i].healthy = i % 5 < cases[k].up[i / 5];
		}
		int rc = prepare(&f);

		ok(rc == 0 && loads_are(&f.c, cases[k].load, cases[k].panic, cases[k].n),
		   "%s (%u/%u/%u, panic %d/%d/%d)", cases[k].what, f.c.sets[0].load,
		   f.c.nsets > 1 ? f.c.sets[1].load : 0, f.c.nsets > 2 ? f.c.sets[2].load : 0,
		   f.c.sets[0].panic, f.c.nsets > 1 && f.c.sets[1].panic,
		   f.c.nsets > 2 && f.c.sets[2].panic);
		arena_free(&f.a);
	}

	/* Picks follow the loads: P0 60% healthy keeps 84%; only healthy endpoints are used. */
	setup(&f, PX_LB_RANDOM, 10, NULL);
	for (int i = 0; i < 10; i++) {
		f.eps[i].priority = (uint32_t)(i / 5);
		f.eps[i].healthy = i != 0 && i != 1;
	}
	prepare(&f);
	unsigned p0 = 0, sick = 0;
	const unsigned draws = 10000;

	for (unsigned i = 0; i < draws; i++) {
		int ep = px_lb_pick(&f.c, &st, NULL, NULL, 0);

		p0 += ep < 5;
		sick += ep == 0 || ep == 1;
	}
	double share[2] = {0.84, 0.16};
	unsigned counts[2] = {p0, draws - p0};

	ok(sick == 0 && chi2(counts, share, 2, draws) < chi2_crit[1],
	   "10,000 picks: %u to P0 (84%% expected), none to its unhealthy endpoints", p0);
	state_reset(&st);
	arena_free(&f.a);

	/* Panic: P0 of 5 with 1 healthy and no P1 is 28% healthy overall: all 5 are used. */
	setup(&f, PX_LB_ROUND_ROBIN, 5, NULL);
	for (int i = 1; i < 5; i++)
		f.eps[i].healthy = false;
	prepare(&f);
	unsigned used = 0, seen[MAXEP] = {0};

	for (int i = 0; i < 50; i++)
		seen[px_lb_pick(&f.c, &st, NULL, NULL, 0)]++;
	for (int i = 0; i < 5; i++)
		used += seen[i] > 0;
	ok(used == 5 && f.c.sets[0].panic, "20%% healthy is below the panic threshold: all %u used",
	   used);
	state_reset(&st);
	arena_free(&f.a);

	/* healthy_panic_threshold 0 turns panic off: the one healthy endpoint serves alone, and
	 * with none healthy there is no endpoint (503 UH). */
	setup(&f, PX_LB_ROUND_ROBIN, 5, NULL);
	for (int i = 1; i < 5; i++)
		f.eps[i].healthy = false;
	f.c.panic_disabled = true;
	prepare(&f);
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < 50; i++)
		seen[px_lb_pick(&f.c, &st, NULL, NULL, 0)]++;
	ok(seen[0] == 50, "panic disabled: only the healthy endpoint (%u of 50)", seen[0]);
	arena_free(&f.a);
	setup(&f, PX_LB_ROUND_ROBIN, 2, NULL);
	f.eps[0].healthy = f.eps[1].healthy = false;
	f.c.panic_disabled = true;
	prepare(&f);
	is_int(px_lb_pick(&f.c, &st, NULL, NULL, 0), -1,
	       "panic disabled, none healthy: no endpoint");
	state_reset(&st);
	arena_free(&f.a);

	/* A larger overprovisioning factor keeps more traffic in P0: 60% healthy x 2.0 = 100%. */
	setup(&f, PX_LB_RANDOM, 10, NULL);
	for (int i = 0; i < 10; i++) {
		f.eps[i].priority = (uint32_t)(i / 5);
		f.eps[i].healthy = i >= 2;
	}
	f.c.overprovisioning_pct = 200;
	prepare(&f);
	ok(f.c.sets[0].load == 100 && f.c.sets[1].load == 0,
	   "overprovisioning_factor 200: P0 at 60%% healthy keeps everything");
	arena_free(&f.a);

	/* Ring hash: a key's level comes from its hash, so it stays put while the loads do. */
	setup(&f, PX_LB_RING_HASH, 10, NULL);
	for (int i = 0; i < 10; i++) {
		f.eps[i].priority = (uint32_t)(i / 5);
		f.eps[i].healthy = i != 0 && i != 1;
	}
	prepare(&f);
	int moved = 0;

	for (uint64_t h = 0; h < 1000; h++) {
		uint64_t key = px_hash_bytes(&h, sizeof(h));

		moved += px_lb_pick(&f.c, &st, &key, NULL, 0) !=
			 px_lb_pick(&f.c, &st, &key, NULL, 0);
	}
	is_int(moved, 0,
	       "ring hash over two levels: 1000 keys each land on the same endpoint twice");
	state_reset(&st);
	arena_free(&f.a);
}

/* Locality weighted balancing: localities "z1" (weight 1) and "z2" (weight 3) of 2 endpoints
 * each, plus "z3" without a weight. */
static void localities(struct fixture *f, enum px_lb_policy lb)
{
	static const char *const zone[] = {"r/z1/", "r/z1/", "r/z2/", "r/z2/", "r/z3/"};
	static const uint32_t lw[] = {1, 1, 3, 3, 0};

	setup(f, lb, 5, NULL);
	for (int i = 0; i < 5; i++) {
		f->eps[i].locality = zone[i];
		f->eps[i].locality_weight = lw[i];
	}
	f->c.locality_weighted = true;
}

static void test_locality_weighted(void)
{
	struct fixture f;
	struct px_lb_state st = {.rng = LB_TEST_SEED};
	unsigned counts[MAXEP] = {0};
	const unsigned draws = 10000;

	localities(&f, PX_LB_RANDOM);
	ok(prepare(&f) == 0 && f.c.nsets == 3 && f.c.sets[0].share == 250000 &&
		   f.c.sets[1].share == 750000 && f.c.sets[2].share == 0,
	   "weights 1:3 give the localities 25%% and 75%%, the unweighted one nothing");
	for (unsigned i = 0; i < draws; i++)
		counts[px_lb_pick(&f.c, &st, NULL, NULL, 0)]++;
	{
		unsigned z[2] = {counts[0] + counts[1], counts[2] + counts[3]};
		double share[2] = {0.25, 0.75};

		ok(counts[4] == 0 && chi2(z, share, 2, draws) < chi2_crit[1],
		   "10,000 random picks: %u in z1, %u in z2, %u in z3", z[0], z[1], counts[4]);
	}
	state_reset(&st);
	arena_free(&f.a);

	/* Half of z2 down: its availability is 1.4 x 50% = 70%, so 1 x 100 against 3 x 70. */
	localities(&f, PX_LB_ROUND_ROBIN);
	f.eps[3].healthy = false;
	prepare(&f);
	ok(f.c.sets[0].share == 322580 && f.c.sets[1].share == 677420,
	   "an unhealthy endpoint lowers its locality's share: %llu / %llu millionths",
	   (unsigned long long)f.c.sets[0].share, (unsigned long long)f.c.sets[1].share);
	memset(counts, 0, sizeof(counts));
	for (unsigned i = 0; i < draws; i++)
		counts[px_lb_pick(&f.c, &st, NULL, NULL, 0)]++;
	ok(counts[3] == 0 && counts[4] == 0 && counts[0] > 0 && counts[1] > 0 &&
		   (counts[0] > counts[1] ? counts[0] - counts[1] : counts[1] - counts[0]) <= 1,
	   "round robin inside z1 alternates its two endpoints (%u, %u); none to the sick one",
	   counts[0], counts[1]);
	state_reset(&st);
	arena_free(&f.a);

	/* Hashing balancers keep one table per level: locality weights do not apply. */
	localities(&f, PX_LB_MAGLEV);
	prepare(&f);
	ok(f.c.nsets == 1 && f.c.sets[0].neligible == 5,
	   "maglev ignores locality weighting, as Envoy does");
	arena_free(&f.a);
}

int main(void)
{
	test_round_robin();
	test_random_and_least_request();
	/* Bounds: 4000 keys per endpoint have a sampling error of about 1.4% (one sigma); the
	 * ring adds the unevenness of 256 points per endpoint. */
	test_hashing(PX_LB_RING_HASH, "ring hash", 0.15, 0.999);
	test_hashing(PX_LB_MAGLEV, "maglev", 0.06, 0.99);
	test_health_priority_avoid();
	test_priority_load();
	test_locality_weighted();
	return done_testing();
}
