/* Tests agent/dns.c's schedule: the refresh period after an answer, and Envoy's
 * dns_failure_refresh_rate backoff after failed lookups. */
#include <stdint.h>

#include "agent/dns.h"
#include "tests/lib/tap.h"

static void test_plain(void)
{
	const struct dns_want w = {.name = "x", .refresh_ms = 5000};
	unsigned rng = 1;

	is_int(dns_next_wait(&w, 0, &rng), 5000, "an answer: the refresh period");
	is_int(dns_next_wait(&w, 3, &rng), 5000,
	       "failures without dns_failure_refresh_rate: the refresh period too");
}

static void test_backoff(void)
{
	const struct dns_want w = {
		.name = "x", .refresh_ms = 5000, .fail_base_ms = 1000, .fail_max_ms = 6000};
	static const uint32_t ceiling[] = {0, 1000, 2000, 4000, 6000, 6000, 6000};
	unsigned rng = 7;

	is_int(dns_next_wait(&w, 0, &rng), 5000, "an answer resets to the refresh period");
	for (uint32_t f = 1; f < sizeof(ceiling) / sizeof(ceiling[0]); f++) {
		uint32_t lo = UINT32_MAX, hi = 0;

		for (int i = 0; i < 2000; i++) {
			uint32_t d = dns_next_wait(&w, f, &rng);

			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		ok(lo >= ceiling[f] / 2 && hi <= ceiling[f] && hi > lo,
		   "failure %u: jittered within [%u, %u] (saw %u..%u)", f, ceiling[f] / 2,
		   ceiling[f], lo, hi);
	}
	is_int(dns_next_wait(&w, 4000000000u, &rng) <= 6000, 1,
	       "a very long failure streak stays at the max");
}

int main(void)
{
	test_plain();
	test_backoff();
	return done_testing();
}
