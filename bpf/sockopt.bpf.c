// SPDX-License-Identifier: GPL-2.0
/* What a captured app and a third-party proxy ask about a redirected connection:
 * getpeername4/6 return the original destination, getsockopt answers SO_ORIGINAL_DST. */
#include "lib/helpers.h"
#include "lib/sock.h"

char LICENSE[] SEC("license") = "GPL";

static __always_inline struct shunt_orig_dst *orig_of_socket(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);

	return bpf_map_lookup_elem(&orig_dst_by_cookie, &cookie);
}

SEC("cgroup/getpeername4")
int shunt_getpeername4(struct bpf_sock_addr *ctx)
{
	struct shunt_orig_dst *orig = orig_of_socket(ctx);

	if (orig && addr_is_v4(&orig->addr)) {
		ctx->user_ip4 = orig->addr.ip[3];
		ctx->user_port = bpf_htons(orig->port);
	}
	return SHUNT_ALLOW;
}

SEC("cgroup/getpeername6")
int shunt_getpeername6(struct bpf_sock_addr *ctx)
{
	struct shunt_orig_dst *orig = orig_of_socket(ctx);

	if (orig) {
		ctx->user_ip6[0] = orig->addr.ip[0];
		ctx->user_ip6[1] = orig->addr.ip[1];
		ctx->user_ip6[2] = orig->addr.ip[2];
		ctx->user_ip6[3] = orig->addr.ip[3];
		ctx->user_port = bpf_htons(orig->port);
	}
	return SHUNT_ALLOW;
}

struct shunt_sockaddr_in {
	__u16 family;
	__be16 port;
	__be32 addr;
	__u8 zero[8];
};

struct shunt_sockaddr_in6 {
	__u16 family;
	__be16 port;
	__u32 flowinfo;
	__u32 addr[4];
	__u32 scope_id;
};

/* SO_ORIGINAL_DST is asked on the proxy's accepted socket; the map is keyed by the app's end,
 * which is this socket's tuple reversed. Every other option passes untouched. */
SEC("cgroup/getsockopt")
int shunt_getsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct shunt_orig_dst *orig;
	struct shunt_sock_key key;
	void *end = ctx->optval_end;
	bool v6;

	if (ctx->optname != SO_ORIGINAL_DST)
		return 1;
	if (ctx->level == SOL_IP)
		v6 = false;
	else if (ctx->level == SOL_IPV6)
		v6 = true;
	else
		return 1;
	if (!sk || sk->protocol != IPPROTO_TCP)
		return 1;

	key.netns = bpf_get_netns_cookie(ctx);
	sock_key_peer_of_bpf_sock(&key, sk);
	orig = bpf_map_lookup_elem(&orig_dst_by_tuple, &key);
	if (!orig)
		return 1;

	if (!v6) {
		struct shunt_sockaddr_in *sin = ctx->optval;

		if (!addr_is_v4(&orig->addr) || (void *)(sin + 1) > end)
			return 1;
		sin->family = AF_INET;
		sin->port = bpf_htons(orig->port);
		sin->addr = orig->addr.ip[3];
		__builtin_memset(sin->zero, 0, sizeof(sin->zero));
		ctx->optlen = sizeof(*sin);
	} else {
		struct shunt_sockaddr_in6 *sin6 = ctx->optval;

		if ((void *)(sin6 + 1) > end)
			return 1;
		sin6->family = AF_INET6;
		sin6->port = bpf_htons(orig->port);
		sin6->flowinfo = 0;
		sin6->addr[0] = orig->addr.ip[0];
		sin6->addr[1] = orig->addr.ip[1];
		sin6->addr[2] = orig->addr.ip[2];
		sin6->addr[3] = orig->addr.ip[3];
		sin6->scope_id = 0;
		ctx->optlen = sizeof(*sin6);
	}
	ctx->retval = 0;
	stat_inc(key.netns, SHUNT_STAT_ORIGDST_ANSWERED);
	return 1;
}
