/* Tests proxy/config.c: CIDRs, listener selection by original destination, Envoy's filter-chain
 * selection (as a table), finalize's reference checks, the passthrough default. */
#include <errno.h>

#include "lib/addr.h"
#include "proxy/config.h"
#include "tests/lib/tap.h"

static struct px_cidr cidr(const char *a, uint32_t len)
{
	struct px_cidr c;

	px_cidr_parse(&c, a, len);
	return c;
}

static void test_cidr(void)
{
	static const struct {
		const char *net;
		uint32_t len;
		const char *addr;
		bool in;
	} t[] = {
		{"10.0.0.0", 8, "10.1.2.3", true},    {"10.0.0.0", 8, "11.0.0.1", false},
		{"10.1.2.0", 24, "10.1.2.255", true}, {"10.1.2.0", 24, "10.1.3.0", false},
		{"10.1.2.3", 32, "10.1.2.3", true},   {"0.0.0.0", 0, "192.168.1.1", true},
		{"0.0.0.0", 0, "fd00::1", false},     {"fd00::", 8, "fd77::3", true},
		{"fd00::", 16, "fd77::3", false},     {"10.1.2.0", 23, "10.1.3.7", true},
		{"::", 0, "10.0.0.1", true}, /* ::/0 covers the v4-mapped range too */
	};
	struct px_cidr c;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct shunt_addr a;

		c = cidr(t[i].net, t[i].len);
		addr_parse(&a, t[i].addr);
		is_int(px_cidr_contains(&c, &a), t[i].in, "%s/%u %s %s", t[i].net, t[i].len,
		       t[i].in ? "contains" : "does not contain", t[i].addr);
	}
	is_int(px_cidr_parse(&c, "10.0.0.0", 33), -EINVAL, "an IPv4 prefix over 32 is refused");
	is_int(px_cidr_parse(&c, "fd00::", 129), -EINVAL, "an IPv6 prefix over 128 is refused");
	is_int(px_cidr_parse(&c, "10.0.0", 8), -EINVAL, "a malformed address is refused");
}

/* A listener with the filter chains Istio puts on virtualInbound, and a few more. */
static struct px_cidr pr_pod[1], pr_wide[1];
static const char *sni_exact[] = {"api.example.com"}, *sni_wild[] = {"*.example.com"},
		  *alpn_h2[] = {"h2"};
static struct px_filter_chain chains[] = {
	{.name = "port-80", .match = {.dst_port = 80}},
	{.name = "port-80-pod-ip",
	 .match = {.dst_port = 80, .prefix_ranges = pr_pod, .nprefix_ranges = 1}},
	{.name = "port-80-wide",
	 .match = {.dst_port = 80, .prefix_ranges = pr_wide, .nprefix_ranges = 1}},
	{.name = "tls-any", .match = {.dst_port = 443, .transport_protocol = "tls"}},
	{.name = "tls-exact-sni",
	 .match = {.dst_port = 443,
		   .transport_protocol = "tls",
		   .server_names = sni_exact,
		   .nserver_names = 1}},
	{.name = "tls-wild-sni",
	 .match = {.dst_port = 443,
		   .transport_protocol = "tls",
		   .server_names = sni_wild,
		   .nserver_names = 1}},
	{.name = "raw-9000", .match = {.dst_port = 9000, .transport_protocol = "raw_buffer"}},
	{.name = "h2-9000",
	 .match = {.dst_port = 9000,
		   .transport_protocol = "raw_buffer",
		   .application_protocols = alpn_h2,
		   .napplication_protocols = 1}},
};
static struct px_filter_chain fallback = {.name = "default"};

static const struct {
	const char *dst;
	__u16 port;
	const char *transport, *sni, *alpn;
	const char *want;
} match_cases[] = {
	{"10.77.0.3", 80, NULL, NULL, NULL, "port-80-pod-ip"}, /* longest prefix wins */
	{"10.77.0.9", 80, NULL, NULL, NULL, "port-80-wide"},
	{"192.168.0.1", 80, NULL, NULL, NULL, "port-80"},
	{"10.77.0.3", 443, "tls", "api.example.com", NULL, "tls-exact-sni"},
	{"10.77.0.3", 443, "tls", "www.example.com", NULL, "tls-wild-sni"},
	{"10.77.0.3", 443, "tls", "other.org", NULL, "tls-any"},
	{"10.77.0.3", 443, "raw_buffer", NULL, NULL, "default"},
	{"10.77.0.3", 9000, NULL, NULL, "h2", "h2-9000"},
	{"10.77.0.3", 9000, NULL, NULL, "http/1.1", "raw-9000"},
	{"10.77.0.3", 9000, "tls", NULL, NULL, "default"},
	{"10.77.0.3", 1234, NULL, NULL, NULL, "default"},
};

static void test_filter_chains(void)
{
	struct px_listener l = {.name = "virtualInbound",
				.chains = chains,
				.nchains = sizeof(chains) / sizeof(chains[0]),
				.default_chain = &fallback};

	pr_pod[0] = cidr("10.77.0.3", 32);
	pr_wide[0] = cidr("10.77.0.0", 16);
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		struct px_conn_info ci = {.dst_port = match_cases[i].port,
					  .transport_protocol = match_cases[i].transport,
					  .server_name = match_cases[i].sni,
					  .application_protocols = &match_cases[i].alpn,
					  .napplication_protocols = match_cases[i].alpn ? 1 : 0};
		const struct px_filter_chain *fc;

		addr_parse(&ci.dst, match_cases[i].dst);
		fc = px_filter_chain_match(&l, &ci);
		is_str(fc ? fc->name : NULL, match_cases[i].want, "%s:%u %s sni=%s alpn=%s -> %s",
		       match_cases[i].dst, match_cases[i].port,
		       match_cases[i].transport ? match_cases[i].transport : "-",
		       match_cases[i].sni ? match_cases[i].sni : "-",
		       match_cases[i].alpn ? match_cases[i].alpn : "-", match_cases[i].want);
	}
	/* The client offers several protocols: any one of them in a chain's list matches. */
	static const char *offered[] = {"http/1.1", "h2"};
	struct px_conn_info multi = {
		.dst_port = 9000, .application_protocols = offered, .napplication_protocols = 2};
	const struct px_filter_chain *mfc;

	addr_parse(&multi.dst, "10.77.0.3");
	mfc = px_filter_chain_match(&l, &multi);
	is_str(mfc ? mfc->name : NULL, "h2-9000", "ALPN http/1.1,h2 offered -> h2-9000");
	l.default_chain = NULL;
	struct px_conn_info ci = {.dst_port = 1234};

	addr_parse(&ci.dst, "10.77.0.3");
	ok(px_filter_chain_match(&l, &ci) == NULL, "no match and no default: no chain");
}

static void test_snapshot(void)
{
	struct px_snapshot *s = px_snapshot_passthrough();
	struct px_conn_info ci = {.dst_port = 5432};
	const struct px_listener *l;
	const char *err;

	ok(s && s->virtual_outbound && s->virtual_inbound, "the passthrough snapshot has both "
							   "virtual listeners");
	ok(px_cluster_find(s, PX_CLUSTER_PASSTHROUGH) && px_cluster_find(s, "nope") == NULL,
	   "clusters are found by name");
	addr_parse(&ci.dst, "10.0.0.5");
	l = px_listener_for(s, s->virtual_outbound, &ci);
	ok(l == s->virtual_outbound, "with no port listener, virtualOutbound keeps the connection");
	is_str(px_filter_chain_match(l, &ci)->tcp.cluster, PX_CLUSTER_PASSTHROUGH,
	       "and passes it through");
	ok(px_cluster_find(s, PX_CLUSTER_INBOUND_PASSTHROUGH)->has_bind4,
	   "inbound passthrough binds 127.0.0.6");
	px_snapshot_put(s);

	/* Listeners for a port: exact ip:port first, then 0.0.0.0:port. */
	s = px_snapshot_new();
	s->nlisteners = 3;
	s->listeners = arena_new(&s->arena, struct px_listener, 3);
	s->listeners[0] = (struct px_listener){.name = "virtualOutbound", .use_original_dst = true};
	s->listeners[1] = (struct px_listener){.name = "0.0.0.0_80", .port = 80};
	addr_parse(&s->listeners[1].addr, "0.0.0.0");
	s->listeners[2] = (struct px_listener){.name = "10.96.0.10_80", .port = 80};
	addr_parse(&s->listeners[2].addr, "10.96.0.10");
	ok(px_snapshot_finalize(s, &err) == 0, "a snapshot with port listeners finalizes");
	ci.dst_port = 80;
	addr_parse(&ci.dst, "10.96.0.10");
	is_str(px_listener_for(s, s->virtual_outbound, &ci)->name, "10.96.0.10_80",
	       "an exact ip:port listener wins");
	addr_parse(&ci.dst, "10.96.0.11");
	is_str(px_listener_for(s, s->virtual_outbound, &ci)->name, "0.0.0.0_80",
	       "else the wildcard listener of the port");
	addr_parse(&ci.dst, "fd00::1");
	is_str(px_listener_for(s, s->virtual_outbound, &ci)->name, "virtualOutbound",
	       "an IPv6 destination does not take the IPv4 wildcard");
	px_snapshot_put(s);

	/* Many listeners (Istio sends one per service port): the port index answers as a scan
	 * in snapshot order would, the exact address first, else the first wildcard. */
	{
		enum {
			N = 3000
		};
		char(*names)[24] = calloc(N, sizeof(*names));
		int wrong = 0;

		s = px_snapshot_new();
		s->nlisteners = N;
		s->listeners = arena_new(&s->arena, struct px_listener, N);
		for (int i = 0; i < N && names; i++) {
			struct px_listener *x = &s->listeners[i];
			char a[32];

			snprintf(names[i], sizeof(names[i]), "l%d", i);
			*x = (struct px_listener){.name = names[i],
						  .port = (__u16)(7000 + i % 97),
						  .bind_to_port = true};
			/* Every 10th a wildcard, the rest 10.1.x.y; some ip:port pairs twice. */
			snprintf(a, sizeof(a), i % 10 ? "10.1.%d.%d" : "0.0.0.0", (i % 500) / 250,
				 i % 250);
			addr_parse(&x->addr, a);
		}
		ok(names && px_snapshot_finalize(s, &err) == 0 && s->by_port,
		   "3000 listeners finalize");
		for (int q = 0; names && q < 2000; q++) {
			struct px_conn_info c = {.dst_port = (__u16)(7000 + q % 101)};
			const struct px_listener *want = NULL, *wild = NULL;
			char a[32];

			snprintf(a, sizeof(a), "10.1.%d.%d", (q % 500) / 250, (q * 7) % 250);
			addr_parse(&c.dst, a);
			for (int i = 0; i < N && !want; i++) {
				const struct px_listener *x = &s->listeners[i];

				if (x->port != c.dst_port)
					continue;
				if (!memcmp(&x->addr, &c.dst, sizeof(c.dst)))
					want = x;
				else if (!wild && i % 10 == 0)
					wild = x;
			}
			if (!want)
				want = wild;
			wrong += px_listener_bound(s, &c) != want;
		}
		is_int(wrong, 0, "2000 lookups agree with a scan");
		px_snapshot_put(s);
		free(names);
	}

	/* finalize refuses dangling references and duplicates, naming them. */
	s = px_snapshot_new();
	s->nclusters = 1;
	s->clusters = arena_new(&s->arena, struct px_cluster, 1);
	s->clusters[0] = (struct px_cluster){.name = "a", .type = PX_CLUSTER_STATIC};
	s->nlisteners = 1;
	s->listeners = arena_new(&s->arena, struct px_listener, 1);
	s->listeners[0] = (struct px_listener){.name = "l", .nchains = 1};
	s->listeners[0].chains = arena_new(&s->arena, struct px_filter_chain, 1);
	s->listeners[0].chains[0] = (struct px_filter_chain){.name = "fc", .tcp.cluster = "b"};
	is_int(px_snapshot_finalize(s, &err), -EINVAL, "a tcp_proxy to an unknown cluster fails");
	is_str(err, "listener \"l\" filter chain \"fc\" tcp_proxy: unknown cluster \"b\"",
	       "and the error names where and what");
	px_snapshot_put(s);

	s = px_snapshot_new();
	s->nclusters = 2;
	s->clusters = arena_new(&s->arena, struct px_cluster, 2);
	s->clusters[0] = (struct px_cluster){.name = "a"};
	s->clusters[1] = (struct px_cluster){.name = "a"};
	is_int(px_snapshot_finalize(s, &err), -EINVAL, "duplicate cluster names fail");
	is_str(err, "cluster \"a\": duplicate name", "and say so");
	px_snapshot_put(s);

	/* Listener names: the duplicates need not be neighbours. */
	s = px_snapshot_new();
	s->nlisteners = 3;
	s->listeners = arena_new(&s->arena, struct px_listener, 3);
	s->listeners[0] = (struct px_listener){.name = "m"};
	s->listeners[1] = (struct px_listener){.name = "z"};
	s->listeners[2] = (struct px_listener){.name = "m"};
	is_int(px_snapshot_finalize(s, &err), -EINVAL, "duplicate listener names fail");
	is_str(err, "listener \"m\": duplicate name", "and say which");
	px_snapshot_put(s);

	s = px_snapshot_new();
	s->nlisteners = 3;
	s->listeners = arena_new(&s->arena, struct px_listener, 3);
	s->listeners[0] = (struct px_listener){.name = "m"};
	s->listeners[1] = (struct px_listener){.name = "z"};
	s->listeners[2] = (struct px_listener){.name = "a"};
	is_int(px_snapshot_finalize(s, &err), 0, "distinct listener names pass");
	is_str(s->listeners[0].name, "m", "in their order (only a copy was sorted)");
	px_snapshot_put(s);
}

/* A snapshot of the named clusters, finalized; cb applies to the first. */
static struct px_snapshot *cb_snap(const char *a, const char *b, struct px_circuit_breakers cb)
{
	struct px_snapshot *s = px_snapshot_new();
	const char *err;

	s->nclusters = b ? 2 : 1;
	s->clusters = arena_new(&s->arena, struct px_cluster, 2);
	s->clusters[0] = (struct px_cluster){.name = a, .cb = cb};
	if (b)
		s->clusters[1] = (struct px_cluster){.name = b};
	if (px_snapshot_finalize(s, &err))
		tap_diag("finalize: %s", err);
	return s;
}

static void test_circuit_breakers(void)
{
	struct px_circuit_breakers two = {.set = true,
					  .max_connections = 2,
					  .max_pending_requests = 0,
					  .max_requests = 5,
					  .max_retries = 1};
	struct px_snapshot *s1 = cb_snap("a", NULL, two), *s2 = cb_snap("a", "b", two);
	const struct px_cluster *a1 = &s1->clusters[0], *a2 = &s2->clusters[0];
	const struct px_cluster *b2 = &s2->clusters[1];

	ok(px_cb_try(a1, PX_CB_CX), "no state yet (never published): nothing is counted");
	is_int(px_cb_adopt(s1, NULL), 0, "a published snapshot's clusters get a state");
	ok(px_cb_try(a1, PX_CB_CX) && px_cb_try(a1, PX_CB_CX) && !px_cb_try(a1, PX_CB_CX),
	   "max_connections 2: two taken, the third refused");
	ok(!px_cb_try(a1, PX_CB_PENDING), "an explicit 0 is a limit of 0, as in Envoy");
	px_cb_force(a1, PX_CB_CX);
	is_int((int)atomic_load(&a1->cbs->n[PX_CB_CX]), 3, "force counts past the limit");
	is_int(px_cb_adopt(s2, s1), 0, "the next snapshot adopts");
	ok(a2->cbs == a1->cbs, "a cluster that stays keeps its counts across snapshots");
	ok(b2->cbs && b2->cbs != a1->cbs, "a new cluster gets its own");
	px_cb_done(a1->cbs, PX_CB_CX);
	ok(!px_cb_try(a2, PX_CB_CX), "given back 1 of 3: still at the limit of 2");
	px_cb_done(a2->cbs, PX_CB_CX);
	ok(px_cb_try(a2, PX_CB_CX), "one more given back: one may be taken again");
	is_int((int)px_cb_limit(b2, PX_CB_CX), PX_CB_DEFAULT, "unset thresholds: Envoy's 1024");
	is_int((int)px_cb_limit(b2, PX_CB_RETRIES), PX_CB_RETRIES_DEFAULT, "and 3 retries");
	px_snapshot_put(s1);
	ok(a2->cbs && atomic_load(&a2->cbs->refs) == 1,
	   "the old snapshot gave its reference back; the state lives on with the new one");
	px_snapshot_put(s2);
}

int main(void)
{
	test_cidr();
	test_filter_chains();
	test_snapshot();
	test_circuit_breakers();
	return done_testing();
}
