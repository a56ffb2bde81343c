/* Tests agent/svcmap.c: which snapshot services reach the kernel LB's maps, with which flags and
 * slots, and the generation protocol's writes against real (private, unpinned) BPF maps. */
#include <errno.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/bootstrap.h"
#include "agent/svcmap.h"
#include "agent/xds_snapshot.h"
#include "lib/addr.h"
#include "tests/lib/tap.h"

static const char *const yaml =
	"static_resources:\n"
	"  listeners:\n"
	"  - name: l4\n"
	"    address: {socket_address: {address: 10.96.0.1, port_value: 80}}\n"
	"    bind_to_port: false\n"
	"    filter_chains:\n"
	"    - filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {\"@type\": "
	"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: "
	"x, cluster: web}}]\n"
	"  - name: optout\n"
	"    address: {socket_address: {address: 10.96.0.6, port_value: 80}}\n"
	"    bind_to_port: false\n"
	"    filter_chains:\n"
	"    - filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {\"@type\": "
	"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: "
	"x, cluster: optout}}]\n"
	"  - name: wild\n"
	"    address: {socket_address: {address: 0.0.0.0, port_value: 9000}}\n"
	"    bind_to_port: false\n"
	"    filter_chains:\n"
	"    - filter_chain_match: {prefix_ranges: [{address_prefix: 10.96.0.2, prefix_len: 32}, "
	"{address_prefix: 10.97.0.0, prefix_len: 16}], destination_port: 81}\n"
	"      filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {\"@type\": "
	"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: "
	"x, cluster: weighted}}]\n"
	"    - filter_chain_match: {prefix_ranges: [{address_prefix: 10.96.0.3, prefix_len: 32}], "
	"server_names: [a.example]}\n"
	"      filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {\"@type\": "
	"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: "
	"x, cluster: web}}]\n"
	"    - filter_chain_match: {prefix_ranges: [{address_prefix: 10.96.0.4, prefix_len: 32}]}\n"
	"      filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {\"@type\": "
	"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: "
	"x, weighted_clusters: {clusters: [{name: web, weight: 1}]}}}]\n"
	"    - filter_chain_match: {prefix_ranges: [{address_prefix: 10.96.0.5, prefix_len: 32}]}\n"
	"      filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {\"@type\": "
	"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: "
	"x, cluster: odst}}]\n"
	"  - name: bound\n"
	"    address: {socket_address: {address: 127.0.0.1, port_value: 9001}}\n"
	"    filter_chains:\n"
	"    - filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {\"@type\": "
	"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: "
	"x, cluster: web}}]\n"
	"  - name: plain\n"
	"    address: {socket_address: {address: 10.96.0.7, port_value: 80}}\n"
	"    bind_to_port: false\n"
	"    filter_chains:\n"
	"    - filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {\"@type\": "
	"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: "
	"x, cluster: plain}}]\n"
	"  clusters:\n"
	"  - name: web\n"
	"    metadata: {filter_metadata: {shunt: {kernel_lb: true}}}\n"
	"    load_assignment:\n"
	"      cluster_name: web\n"
	"      endpoints:\n"
	"      - lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.1.0.1, "
	"port_value: 80}}}, health_status: UNHEALTHY}]\n"
	"      - priority: 1\n"
	"        lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.1.0.2, "
	"port_value: 80}}}}, {endpoint: {address: {socket_address: {address: 10.1.0.3, port_value: "
	"80}}}}]\n"
	"  - name: weighted\n"
	"    metadata: {filter_metadata: {shunt: {kernel_lb: true}}}\n"
	"    load_assignment:\n"
	"      cluster_name: weighted\n"
	"      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: "
	"10.2.0.1, port_value: 80}}}, load_balancing_weight: 2}, {endpoint: {address: "
	"{socket_address: {address: 10.2.0.2, port_value: 80}}}, load_balancing_weight: 6}]}]\n"
	"  - name: optout\n"
	"    metadata: {filter_metadata: {shunt: {kernel_lb: false}}}\n"
	"    load_assignment: {cluster_name: optout, endpoints: [{lb_endpoints: [{endpoint: "
	"{address: {socket_address: {address: 10.3.0.1, port_value: 80}}}}]}]}\n"
	"  - name: plain\n"
	"    load_assignment: {cluster_name: plain, endpoints: [{lb_endpoints: [{endpoint: "
	"{address: {socket_address: {address: 10.4.0.1, port_value: 80}}}}]}]}\n"
	"  - name: odst\n"
	"    type: ORIGINAL_DST\n"
	"    lb_policy: CLUSTER_PROVIDED\n";

static const struct svcmap_entry *find(const struct svcmap_entry *e, size_t n, const char *vip,
				       __u16 port)
{
	struct shunt_addr a;

	addr_parse(&a, vip);
	for (size_t i = 0; i < n; i++)
		if (memcmp(&e[i].key.vip, &a, sizeof(a)) == 0 && e[i].key.port == port)
			return &e[i];
	return NULL;
}

static struct px_snapshot *build(const char *text)
{
	struct jtree_err err = {0};
	struct xds_config *cfg;
	struct px_snapshot *s = NULL;

	if (bootstrap_parse(text, strlen(text), &cfg, &err)) {
		tap_diag("parse: %s", err.msg);
		return NULL;
	}
	if (xds_snapshot_build(cfg, 1, &s, &err))
		tap_diag("build: %s", err.msg);
	xds_config_free(cfg);
	return s;
}

static const struct {
	const char *vip;
	__u16 port;
	bool listed, kernel_lb;
	uint32_t nslots, nbackends;
	const char *why;
} cases[] = {
	{"10.96.0.1", 80, true, true, 2, 2, "listener address, tcp_proxy: kernel LB, priority 1"},
	{"10.96.0.2", 81, true, true, 4, 2, "a /32 prefix_range at destination_port; weights 2:6"},
	{"10.97.0.0", 81, false, false, 0, 0, "a /16 prefix range is no VIP"},
	{"10.96.0.3", 9000, true, false, 2, 2, "a chain matching on SNI: listed, proxy only"},
	{"10.96.0.4", 9000, false, false, 0, 0, "weighted_clusters: not a single cluster"},
	{"10.96.0.5", 9000, true, false, 0, 0, "ORIGINAL_DST cluster: listed, proxy only"},
	{"10.96.0.6", 80, true, false, 1, 1, "metadata shunt.kernel_lb false: proxy only"},
	{"10.96.0.7", 80, true, false, 1, 1, "no shunt.kernel_lb mark: proxy only (opt-in)"},
	{"127.0.0.1", 9001, false, false, 0, 0, "a bound listener is served by shuntd itself"},
};

static void test_desired(const struct px_snapshot *s)
{
	uint32_t truncated = 9;
	size_t n = 0;
	struct svcmap_entry *e = svcmap_desired(s, &n, &truncated);

	ok(e && n == 6 && truncated == 0, "six services, none truncated (got %zu)", n);
	for (size_t i = 0; e && i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct svcmap_entry *x = find(e, n, cases[i].vip, cases[i].port);

		if (!cases[i].listed) {
			ok(!x, "%s:%u not listed: %s", cases[i].vip, cases[i].port, cases[i].why);
			continue;
		}
		ok(x && !!(x->val.flags & SHUNT_SVC_F_KERNEL_LB) == cases[i].kernel_lb &&
			   x->nslots == cases[i].nslots && x->val.count == cases[i].nslots &&
			   x->val.nbackends == cases[i].nbackends,
		   "%s:%u: %s", cases[i].vip, cases[i].port, cases[i].why);
	}
	const struct svcmap_entry *w = find(e, n, "10.96.0.2", 81);
	int heavy = 0;

	for (uint32_t i = 0; w && i < w->nslots; i++)
		heavy += w->slots[i].addr.ip[3] == htonl(0x0a020002);
	ok(heavy == 3, "weight 6 against 2 is 3 slots of 4");
	svcmap_entries_free(e, n);
}

static long count_keys(int fd, size_t ksz)
{
	char k[64], nk[64];
	void *prev = NULL;
	long n = 0;

	while (bpf_map_get_next_key(fd, prev, nk) == 0) {
		memcpy(k, nk, ksz);
		prev = k;
		n++;
	}
	return n;
}

static int lookup_svc(int fd, const char *vip, __u16 port, struct shunt_svc *out)
{
	struct shunt_svc_key k = {.port = port, .proto = 6};

	addr_parse(&k.vip, vip);
	k.family = addr_is_v4(&k.vip) ? AF_INET : AF_INET6;
	return bpf_map_lookup_elem(fd, &k, out);
}

static void test_apply(const struct px_snapshot *s1, const struct px_snapshot *s2)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_NO_PREALLOC);
	int svc = bpf_map_create(BPF_MAP_TYPE_HASH, "services", sizeof(struct shunt_svc_key),
				 sizeof(struct shunt_svc), 64, &o);
	int slots = bpf_map_create(BPF_MAP_TYPE_HASH, "service_slots",
				   sizeof(struct shunt_svc_slot_key),
				   sizeof(struct shunt_svc_backend), 64, &o);
	struct svcmap_stats st;
	struct shunt_svc v1, v2;
	struct svcmap m;

	if (!ok(svc >= 0 && slots >= 0, "BPF maps created (needs root)"))
		return;
	svcmap_init(&m, svc, slots);
	ok(svcmap_apply(&m, s1, &st) == 0 && st.added == 6 && st.slots_written == 10,
	   "first apply: 6 added, 10 slots");
	ok(lookup_svc(svc, "10.96.0.1", 80, &v1) == 0 && v1.generation == 1 && v1.count == 2 &&
		   strcmp(v1.cluster, "web") == 0,
	   "service entry: generation 1, 2 slots, cluster web");
	ok(svcmap_apply(&m, s1, &st) == 0 && st.unchanged == 6 && st.slots_written == 0,
	   "the same snapshot again writes nothing");
	/* s2: web has one endpoint less; the odst service is gone. */
	ok(svcmap_apply(&m, s2, &st) == 0 && st.changed == 2 && st.removed == 1 &&
		   st.unchanged == 3,
	   "web's endpoints change (two services) and one service goes");
	ok(lookup_svc(svc, "10.96.0.1", 80, &v2) == 0 && v2.generation == 2 && v2.id == v1.id &&
		   v2.count == 1,
	   "changed: same id, generation 2, 1 slot");
	struct shunt_svc_slot_key old = {.id = v1.id, .generation = 1, .slot = 0};
	struct shunt_svc_slot_key now = {.id = v1.id, .generation = 2, .slot = 0};
	struct shunt_svc_backend be;

	ok(bpf_map_lookup_elem(slots, &old, &be) != 0 && bpf_map_lookup_elem(slots, &now, &be) == 0,
	   "generation 1's slots are deleted, generation 2's are there");
	ok(lookup_svc(svc, "10.96.0.5", 9000, &v2) != 0, "the removed service's entry is gone");
	ok(count_keys(svc, sizeof(struct shunt_svc_key)) == 5 &&
		   count_keys(slots, sizeof(struct shunt_svc_slot_key)) == 1 + 4 + 1 + 1 + 1,
	   "the maps hold exactly the live generations' slots");
	ok(svcmap_apply(&m, NULL, &st) == 0 && st.removed == 5 &&
		   count_keys(svc, sizeof(struct shunt_svc_key)) == 0 &&
		   count_keys(slots, sizeof(struct shunt_svc_slot_key)) == 0,
	   "an empty snapshot removes everything");
	svcmap_free(&m);
	close(svc);
	close(slots);
}

/* Writes that fail (a full services map) leave the map stale; the next apply repairs it from
 * what the maps hold: the services that never got their entry are written, and the junk that
 * blocked them is deleted first. */
static void test_repair(const struct px_snapshot *s1, const struct px_snapshot *s2)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_NO_PREALLOC);
	int svc = bpf_map_create(BPF_MAP_TYPE_HASH, "services", sizeof(struct shunt_svc_key),
				 sizeof(struct shunt_svc), 5, &o);
	int slots = bpf_map_create(BPF_MAP_TYPE_HASH, "service_slots",
				   sizeof(struct shunt_svc_slot_key),
				   sizeof(struct shunt_svc_backend), 64, &o);
	struct shunt_svc_key junk = {.port = 1, .proto = 6, .family = AF_INET};
	struct shunt_svc junk_val = {.id = 999, .generation = 7};
	struct shunt_svc_slot_key junk_slot = {.id = 999, .generation = 7};
	struct shunt_svc_backend be = {0};
	struct svcmap_entry *want;
	struct svcmap_stats st;
	struct svcmap m;
	size_t n = 0, nslots = 0, held = 0;
	uint32_t trunc;

	if (!ok(svc >= 0 && slots >= 0, "small BPF maps created (needs root)"))
		return;
	addr_parse(&junk.vip, "10.99.9.9");
	ok(bpf_map_update_elem(svc, &junk, &junk_val, BPF_ANY) == 0 &&
		   bpf_map_update_elem(slots, &junk_slot, &be, BPF_ANY) == 0,
	   "a service and a slot nobody knows (left by a crash) take room");
	svcmap_init(&m, svc, slots);
	ok(svcmap_apply(&m, s1, &st) == -EIO && st.errors == 2 && m.stale,
	   "6 services into 4 free entries: 2 writes fail, the map is stale");
	ok(svcmap_apply(&m, s2, &st) == 0 && !m.stale && st.repaired == 2,
	   "the next apply repairs: the 2 services never written are found and written");
	want = svcmap_desired(s2, &n, &trunc);
	for (size_t i = 0; want && i < n; i++) {
		struct shunt_svc v;
		bool good = bpf_map_lookup_elem(svc, &want[i].key, &v) == 0 &&
			    v.count == want[i].nslots;

		for (uint32_t k = 0; good && k < want[i].nslots; k++) {
			struct shunt_svc_slot_key sk = {
				.id = v.id, .generation = v.generation, .slot = k};

			good = bpf_map_lookup_elem(slots, &sk, &be) == 0 &&
			       memcmp(&be, &want[i].slots[k], sizeof(be)) == 0;
		}
		held += good;
		nslots += want[i].nslots;
	}
	is_int(held, n, "every service of the snapshot is in the maps with all its slots");
	ok(count_keys(svc, sizeof(struct shunt_svc_key)) == (long)n &&
		   count_keys(slots, sizeof(struct shunt_svc_slot_key)) == (long)nslots,
	   "and nothing else: the unknown service, its slot and the half-written slots are gone");
	ok(svcmap_apply(&m, s2, &st) == 0 && st.unchanged == n && st.slots_written == 0,
	   "repaired, the same snapshot again writes nothing");
	svcmap_entries_free(want, n);
	svcmap_free(&m);
	close(svc);
	close(slots);
}

int main(void)
{
	char *y2 = strdup(yaml), *p;
	struct px_snapshot *s1 = build(yaml), *s2;

	/* Variant: web loses 10.1.0.3; the odst chain disappears (its VIP becomes a /31). */
	p = strstr(y2, ", {endpoint: {address: {socket_address: {address: 10.1.0.3");
	memmove(p, strstr(p + 2, "}}}}") + 4, strlen(strstr(p + 2, "}}}}") + 4) + 1);
	p = strstr(y2, "10.96.0.5, prefix_len: 32") + strlen("10.96.0.5, prefix_len: ");
	memcpy(p, "31", 2);
	s2 = build(y2);
	if (!ok(s1 && s2, "snapshots build"))
		return done_testing();
	test_desired(s1);
	/* A kernel_lb that is not a bool is an error naming the field. */
	char *bad = strdup(yaml);
	struct jtree_err err = {0};
	struct xds_config *cfg;
	struct px_snapshot *sb = NULL;

	p = strstr(bad, "kernel_lb: false");
	memcpy(p, "kernel_lb: 12345", 16);
	if (bootstrap_parse(bad, strlen(bad), &cfg, &err) == 0) {
		ok(xds_snapshot_build(cfg, 1, &sb, &err) != 0 &&
			   strstr(err.msg,
				  "filter_metadata.shunt.kernel_lb: must be true or false"),
		   "kernel_lb: 12345 is rejected naming the field (%s)", err.msg);
		xds_config_free(cfg);
	} else {
		ok(0, "the bad variant parses: %s", err.msg);
	}
	free(bad);
	test_apply(s1, s2);
	test_repair(s1, s2);
	px_snapshot_put(s1);
	px_snapshot_put(s2);
	free(y2);
	return done_testing();
}
