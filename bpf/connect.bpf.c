// SPDX-License-Identifier: GPL-2.0
/* Outbound capture: connect4/6 rewrite an enrolled pod's connects to the in-pod proxy. */
#include "lib/helpers.h"

char LICENSE[] SEC("license") = "GPL";

/* Is the proxy listening on 15001 in the caller's netns? If not, shuntd is gone (crash,
 * upgrade gap) and the connection should go direct rather than be refused. */
static __always_inline bool proxy_listening4(struct bpf_sock_addr *ctx)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;

	t.ipv4.daddr = bpf_htonl(0x7f000001);
	t.ipv4.dport = bpf_htons(SHUNT_PORT_OUTBOUND);
	sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return false;
	bpf_sk_release(sk);
	return true;
}

static __always_inline bool proxy_listening6(struct bpf_sock_addr *ctx)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;

	t.ipv6.daddr[3] = bpf_htonl(1);
	t.ipv6.dport = bpf_htons(SHUNT_PORT_OUTBOUND);
	sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return false;
	bpf_sk_release(sk);
	return true;
}

/* What connect4/6 do with one connect. */
enum verdict_action {
	ACT_NONE,    /* leave the address alone */
	ACT_PROXY,   /* rewrite to the in-pod proxy */
	ACT_BACKEND, /* rewrite to *be (kernel service LB) */
};

/* Keeps the address the app asked for, so getpeername answers it and sockops/the proxy find
 * it. False (counted) when the map is full. */
static __always_inline bool remember_dst(struct bpf_sock_addr *ctx, __u64 netns,
					 const struct shunt_addr *dst, __u16 port, __u16 family)
{
	struct shunt_orig_dst orig = {};
	__u64 cookie;

	orig.addr = *dst;
	orig.port = port;
	orig.family = family;
	cookie = bpf_get_socket_cookie(ctx);
	if (bpf_map_update_elem(&orig_dst_by_cookie, &cookie, &orig, BPF_ANY)) {
		stat_inc(netns, SHUNT_STAT_ERR_ORIGDST_FULL);
		return false;
	}
	return true;
}

/* The kernel service LB: a connect to a kernel-LB service's VIP goes to one of its backends,
 * picked at random from the generation the service entry names. False means "not served here":
 * not a kernel-LB service, no backend, or no room to remember the VIP -- the proxy path then
 * handles the connect as it would without the kernel LB (503/UH or a reset for no backend). */
static __always_inline bool lb_pick(struct bpf_sock_addr *ctx, __u64 netns,
				    const struct shunt_addr *dst, __u16 port, __u16 family,
				    struct shunt_svc_backend *be)
{
	struct shunt_svc_key key = {};
	struct shunt_svc_slot_key sk;
	struct shunt_svc_backend *b;
	struct shunt_svc *svc;

	key.vip = *dst;
	key.port = port;
	key.proto = IPPROTO_TCP;
	key.family = addr_is_v4(dst) ? AF_INET : AF_INET6;
	svc = bpf_map_lookup_elem(&services, &key);
	if (!svc || !(svc->flags & SHUNT_SVC_F_KERNEL_LB))
		return false;
	if (svc->count == 0) {
		stat_inc(netns, SHUNT_STAT_LB_NO_BACKEND);
		return false;
	}
	sk.id = svc->id;
	sk.generation = svc->generation;
	sk.slot = bpf_get_prandom_u32() % svc->count;
	b = bpf_map_lookup_elem(&service_slots, &sk);
	if (!b) {
		stat_inc(netns, SHUNT_STAT_LB_SLOT_MISS);
		return false;
	}
	if (family == AF_INET && !addr_is_v4(&b->addr)) {
		stat_inc(netns, SHUNT_STAT_LB_FAMILY);
		return false;
	}
	*be = *b;
	if (!remember_dst(ctx, netns, dst, port, family))
		return false;
	stat_inc(netns, SHUNT_STAT_LB_HIT);
	return true;
}

/* Decides for one connect. *verdict is what the hook must return. */
static __always_inline enum verdict_action capture(struct bpf_sock_addr *ctx,
						   const struct shunt_addr *dst, __u16 port,
						   __u16 family, struct shunt_svc_backend *be,
						   int *verdict)
{
	struct shunt_pod *pod;
	struct bpf_sock *sk;
	bool listening;
	__u64 netns;

	*verdict = SHUNT_ALLOW;
	if (ctx->protocol != IPPROTO_TCP)
		return ACT_NONE;
	netns = bpf_get_netns_cookie(ctx);
	pod = bpf_map_lookup_elem(&mesh_netns, &netns);
	if (!pod)
		return ACT_NONE;
	sk = ctx->sk;
	if (sk && sk->mark == proxy_mark)
		return ACT_NONE;
	if (addr_is_loopback(dst) || port_has(port, SHUNT_PORT_F_EXCLUDE_OUT)) {
		stat_inc(netns, SHUNT_STAT_CONNECT_PASSTHROUGH);
		return ACT_NONE;
	}
	/* Before the proxy check: the kernel LB needs no proxy. */
	if (lb_pick(ctx, netns, dst, port, family, be))
		return ACT_BACKEND;

	listening = addr_is_v4(dst) ? proxy_listening4(ctx) : proxy_listening6(ctx);
	if (!listening) {
		if (pod->flags & SHUNT_POD_F_FAIL_CLOSED) {
			stat_inc(netns, SHUNT_STAT_CONNECT_REFUSED);
			*verdict = SHUNT_DENY;
		} else {
			stat_inc(netns, SHUNT_STAT_CONNECT_NO_PROXY);
		}
		return ACT_NONE;
	}
	if (!remember_dst(ctx, netns, dst, port, family))
		return ACT_NONE;
	stat_inc(netns, SHUNT_STAT_CONNECT_REDIRECTED);
	return ACT_PROXY;
}

SEC("cgroup/connect4")
int shunt_connect4(struct bpf_sock_addr *ctx)
{
	struct shunt_svc_backend be;
	struct shunt_addr dst;
	int verdict;

	addr_set_v4(&dst, ctx->user_ip4);
	switch (capture(ctx, &dst, bpf_ntohs(ctx->user_port), AF_INET, &be, &verdict)) {
	case ACT_PROXY:
		ctx->user_ip4 = bpf_htonl(0x7f000001);
		ctx->user_port = bpf_htons(SHUNT_PORT_OUTBOUND);
		break;
	case ACT_BACKEND:
		ctx->user_ip4 = be.addr.ip[3];
		ctx->user_port = bpf_htons(be.port);
		break;
	case ACT_NONE:
		break;
	}
	return verdict;
}

SEC("cgroup/connect6")
int shunt_connect6(struct bpf_sock_addr *ctx)
{
	struct shunt_svc_backend be;
	struct shunt_addr dst;
	int verdict;
	bool v4;

	addr_set_v6(&dst, ctx, user_ip6);
	v4 = addr_is_v4(&dst);
	switch (capture(ctx, &dst, bpf_ntohs(ctx->user_port), AF_INET6, &be, &verdict)) {
	case ACT_PROXY:
		/* A v4-mapped destination stays v4-mapped: ::ffff:127.0.0.1. */
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = v4 ? bpf_htonl(0xffff) : 0;
		ctx->user_ip6[3] = v4 ? bpf_htonl(0x7f000001) : bpf_htonl(1);
		ctx->user_port = bpf_htons(SHUNT_PORT_OUTBOUND);
		break;
	case ACT_BACKEND:
		/* Backends are stored v4-mapped, which is what a v6 socket dials for IPv4. */
		ctx->user_ip6[0] = be.addr.ip[0];
		ctx->user_ip6[1] = be.addr.ip[1];
		ctx->user_ip6[2] = be.addr.ip[2];
		ctx->user_ip6[3] = be.addr.ip[3];
		ctx->user_port = bpf_htons(be.port);
		break;
	case ACT_NONE:
		break;
	}
	return verdict;
}
