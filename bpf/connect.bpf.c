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

/* Decide for one connect; on capture, record the original destination and return true so the
 * caller rewrites the address. *verdict is what the hook must return. */
static __always_inline bool capture(struct bpf_sock_addr *ctx, const struct shunt_addr *dst,
				    __u16 port, __u16 family, int *verdict)
{
	struct shunt_orig_dst orig = {};
	struct shunt_pod *pod;
	struct bpf_sock *sk;
	__u64 netns, cookie;
	bool listening;

	*verdict = SHUNT_ALLOW;
	if (ctx->protocol != IPPROTO_TCP)
		return false;
	netns = bpf_get_netns_cookie(ctx);
	pod = bpf_map_lookup_elem(&mesh_netns, &netns);
	if (!pod)
		return false;
	sk = ctx->sk;
	if (sk && sk->mark == proxy_mark)
		return false;
	if (addr_is_loopback(dst) || port_has(port, SHUNT_PORT_F_EXCLUDE_OUT)) {
		stat_inc(netns, SHUNT_STAT_CONNECT_PASSTHROUGH);
		return false;
	}

	listening = addr_is_v4(dst) ? proxy_listening4(ctx) : proxy_listening6(ctx);
	if (!listening) {
		if (pod->flags & SHUNT_POD_F_FAIL_CLOSED) {
			stat_inc(netns, SHUNT_STAT_CONNECT_REFUSED);
			*verdict = SHUNT_DENY;
		} else {
			stat_inc(netns, SHUNT_STAT_CONNECT_NO_PROXY);
		}
		return false;
	}

	orig.addr = *dst;
	orig.port = port;
	orig.family = family;
	cookie = bpf_get_socket_cookie(ctx);
	if (bpf_map_update_elem(&orig_dst_by_cookie, &cookie, &orig, BPF_ANY)) {
		stat_inc(netns, SHUNT_STAT_ERR_ORIGDST_FULL);
		return false;
	}
	stat_inc(netns, SHUNT_STAT_CONNECT_REDIRECTED);
	return true;
}

SEC("cgroup/connect4")
int shunt_connect4(struct bpf_sock_addr *ctx)
{
	struct shunt_addr dst;
	int verdict;

	addr_set_v4(&dst, ctx->user_ip4);
	if (capture(ctx, &dst, bpf_ntohs(ctx->user_port), AF_INET, &verdict)) {
		ctx->user_ip4 = bpf_htonl(0x7f000001);
		ctx->user_port = bpf_htons(SHUNT_PORT_OUTBOUND);
	}
	return verdict;
}

SEC("cgroup/connect6")
int shunt_connect6(struct bpf_sock_addr *ctx)
{
	struct shunt_addr dst;
	int verdict;

	addr_set_v6(&dst, ctx, user_ip6);
	if (capture(ctx, &dst, bpf_ntohs(ctx->user_port), AF_INET6, &verdict)) {
		/* A v4-mapped destination stays v4-mapped: ::ffff:127.0.0.1. */
		bool v4 = addr_is_v4(&dst);

		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = v4 ? bpf_htonl(0xffff) : 0;
		ctx->user_ip6[3] = v4 ? bpf_htonl(0x7f000001) : bpf_htonl(1);
		ctx->user_port = bpf_htons(SHUNT_PORT_OUTBOUND);
	}
	return verdict;
}
