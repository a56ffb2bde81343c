/* Tests bpf/sk_lookup.bpf.c with BPF_PROG_TEST_RUN: which SYNs are steered to a pod's 15006
 * listener and which pass, as a table. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/counters.h"
#include "lib/addr.h"
#include "sk_lookup.skel.h"
#include "tests/lib/tap.h"

#define POD_NETNS 4242ULL
#define POD_IP4	  "10.77.0.3"
#define POD_IP6	  "fd77::3"
#define NOLIS_IP4 "10.77.0.9" /* a pod address whose listener is missing */

static int listen_any(int family)
{
	struct sockaddr_storage ss = {.ss_family = (sa_family_t)family};
	int fd = socket(family, SOCK_STREAM, 0), one = 1;

	setsockopt(fd, family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP,
		   family == AF_INET6 ? IPV6_V6ONLY : IP_FREEBIND, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss,
		 family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) ||
	    listen(fd, 8))
		return -1;
	return fd;
}

static __u64 cookie_of(int fd)
{
	__u64 c = 0;
	socklen_t len = sizeof(c);

	getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len);
	return c;
}

struct tcase {
	const char *name;
	int family, protocol;
	const char *remote, *local;
	__u16 remote_port, local_port;
	int want; /* 0: passes, 4: steered to the v4 listener, 6: to the v6 listener */
};

/* clang-format off: one case per line reads as a table. */
static const struct tcase cases[] = {
	{"v4 SYN to a pod port is steered", AF_INET, IPPROTO_TCP, "10.77.0.2", POD_IP4, 40000, 80,
	 4},
	{"v4 SYN to a high port is steered", AF_INET, IPPROTO_TCP, "10.77.0.2", POD_IP4, 40000,
	 32000, 4},
	{"v6 SYN to a pod port is steered", AF_INET6, IPPROTO_TCP, "fd77::2", POD_IP6, 40000, 80,
	 6},
	{"15001 passes (the proxy's own port)", AF_INET, IPPROTO_TCP, "10.77.0.2", POD_IP4, 40000,
	 15001, 0},
	{"15006 passes", AF_INET, IPPROTO_TCP, "10.77.0.2", POD_IP4, 40000, 15006, 0},
	{"15008 passes (HBONE)", AF_INET, IPPROTO_TCP, "10.77.0.2", POD_IP4, 40000, 15008, 0},
	{"15020 passes (admin)", AF_INET, IPPROTO_TCP, "10.77.0.2", POD_IP4, 40000, 15020, 0},
	{"15021 passes (health)", AF_INET, IPPROTO_TCP, "10.77.0.2", POD_IP4, 40000, 15021, 0},
	{"15090 passes (Prometheus)", AF_INET, IPPROTO_TCP, "10.77.0.2", POD_IP4, 40000, 15090, 0},
	{"an excluded inbound port passes", AF_INET, IPPROTO_TCP, "10.77.0.2", POD_IP4, 40000, 9090,
	 0},
	{"from 127.0.0.6 passes (the proxy reaching the app)", AF_INET, IPPROTO_TCP, "127.0.0.6",
	 POD_IP4, 40000, 80, 0},
	{"from ::6 passes", AF_INET6, IPPROTO_TCP, "::6", POD_IP6, 40000, 80, 0},
	{"from 127.0.0.1 passes", AF_INET, IPPROTO_TCP, "127.0.0.1", POD_IP4, 40000, 80, 0},
	{"from the pod's own address passes", AF_INET, IPPROTO_TCP, POD_IP4, POD_IP4, 40000, 80, 0},
	{"to an address that is no pod's passes", AF_INET, IPPROTO_TCP, "10.77.0.2", "10.77.0.77",
	 40000, 80, 0},
	{"to a pod without a listener passes", AF_INET, IPPROTO_TCP, "10.77.0.2", NOLIS_IP4, 40000,
	 80, 0},
	{"UDP passes", AF_INET, IPPROTO_UDP, "10.77.0.2", POD_IP4, 40000, 53, 0},
};
/* clang-format on */

static int run_case(int prog_fd, const struct tcase *t, __u64 *cookie)
{
	struct bpf_sk_lookup ctx = {0};
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
		    .ctx_out = &ctx, .ctx_size_out = sizeof(ctx));
	int err;

	ctx.family = (__u32)t->family;
	ctx.protocol = (__u32)t->protocol;
	ctx.remote_port = htons(t->remote_port);
	ctx.local_port = t->local_port;
	if (t->family == AF_INET) {
		inet_pton(AF_INET, t->remote, &ctx.remote_ip4);
		inet_pton(AF_INET, t->local, &ctx.local_ip4);
	} else {
		inet_pton(AF_INET6, t->remote, ctx.remote_ip6);
		inet_pton(AF_INET6, t->local, ctx.local_ip6);
	}
	err = bpf_prog_test_run_opts(prog_fd, &opts);
	*cookie = ctx.cookie;
	return err ? -errno : (int)opts.retval;
}

int main(void)
{
	char dir[] = "/tmp/shunt-bpft.XXXXXX";
	struct shunt_sk_lookup *skel;
	struct shunt_addr a;
	int l4, l6, nmap, lmap, pmap, smap;
	__u64 netns = POD_NETNS, lfd, c4, c6, cookie;
	struct shunt_counters zero[512] = {0}, got;
	__u8 excl = SHUNT_PORT_F_EXCLUDE_IN;
	__u32 port = 9090;

	if (geteuid())
		skip_all("needs root");
	if (!mkdtemp(dir) || mount("bpf", dir, "bpf", 0, "mode=0700"))
		skip_all("cannot mount a private bpffs");
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = dir);
	skel = shunt_sk_lookup__open_opts(&oo);
	ok(skel && shunt_sk_lookup__load(skel) == 0, "sk_lookup program loads");
	if (!skel)
		goto out;
	nmap = bpf_map__fd(skel->maps.pod_by_addr);
	lmap = bpf_map__fd(skel->maps.inbound_listeners);
	pmap = bpf_map__fd(skel->maps.port_policy);
	smap = bpf_map__fd(skel->maps.stats);

	l4 = listen_any(AF_INET);
	l6 = listen_any(AF_INET6);
	c4 = cookie_of(l4);
	c6 = cookie_of(l6);
	ok(l4 >= 0 && l6 >= 0 && c4 && c6, "v4 and v6 listeners stand in for 15006");
	addr_parse(&a, POD_IP4);
	bpf_map_update_elem(nmap, &a, &netns, BPF_ANY);
	lfd = (__u64)l4;
	bpf_map_update_elem(lmap, &a, &lfd, BPF_ANY);
	addr_parse(&a, POD_IP6);
	bpf_map_update_elem(nmap, &a, &netns, BPF_ANY);
	lfd = (__u64)l6;
	bpf_map_update_elem(lmap, &a, &lfd, BPF_ANY);
	addr_parse(&a, NOLIS_IP4);
	bpf_map_update_elem(nmap, &a, &netns, BPF_ANY);
	bpf_map_update_elem(pmap, &port, &excl, BPF_ANY);
	bpf_map_update_elem(smap, &netns, zero, BPF_ANY);

	int prog = bpf_program__fd(skel->progs.shunt_sk_lookup), steered = 0, passed = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tcase *t = &cases[i];
		__u64 want = t->want == 4 ? c4 : t->want == 6 ? c6 : 0;
		int rv = run_case(prog, t, &cookie);

		if (!ok(rv == SK_PASS && cookie == want, "%s", t->name))
			tap_diag("  retval %d, cookie %llu, want cookie %llu", rv,
				 (unsigned long long)cookie, (unsigned long long)want);
		if (t->want)
			steered++;
		else if (t->protocol == IPPROTO_TCP && strcmp(t->local, "10.77.0.77") &&
			 strcmp(t->local, NOLIS_IP4))
			passed++;
	}
	counters_read(smap, netns, &got);
	is_int(got.v[SHUNT_STAT_INBOUND_STEERED], steered,
	       "inbound_steered counts the steered SYNs");
	is_int(got.v[SHUNT_STAT_INBOUND_PASSTHROUGH], passed,
	       "inbound_passthrough counts the pod's SYNs left alone");
	is_int(got.v[SHUNT_STAT_ERR_NO_LISTENER], 1, "err_no_listener counts the pod without one");
	shunt_sk_lookup__destroy(skel);
out:
	umount2(dir, MNT_DETACH);
	rmdir(dir);
	return done_testing();
}
