// SPDX-License-Identifier: GPL-2.0
/* sockops: at ESTABLISHED, re-key the original destination by 4-tuple for the proxy and put
 * in-pod hops into the short-circuit SOCKHASH; at CLOSE, drop what was recorded. */
#include "lib/helpers.h"
#include "lib/sock.h"

char LICENSE[] SEC("license") = "GPL";

static __always_inline void on_established(struct bpf_sock_ops *skops)
{
	struct shunt_orig_dst *orig;
	struct shunt_sock_key key;
	struct shunt_pod *pod;
	__u64 cookie;

	key.netns = bpf_get_netns_cookie(skops);
	pod = bpf_map_lookup_elem(&mesh_netns, &key.netns);
	if (!pod)
		return;
	sock_key_from_ctx(&key, skops);

	cookie = bpf_get_socket_cookie(skops);
	orig = bpf_map_lookup_elem(&orig_dst_by_cookie, &cookie);
	if (orig && bpf_map_update_elem(&orig_dst_by_tuple, &key, orig, BPF_ANY))
		stat_inc(key.netns, SHUNT_STAT_ERR_ORIGDST_FULL);

	if ((pod->flags & SHUNT_POD_F_NO_SOCKMAP) || !sock_key_is_proxy_hop(&key))
		return;
	/* A fallback mark left by an earlier connection with the same tuple is stale. */
	bpf_map_delete_elem(&msg_fallback, &key);
	if (bpf_sock_hash_update(skops, &sock_pairs, &key, BPF_ANY)) {
		stat_inc(key.netns, SHUNT_STAT_ERR_SOCKHASH);
		return;
	}
	stat_inc(key.netns, SHUNT_STAT_SOCK_INSERTED);
	/* Follow it to its close to drop a fallback mark sk_msg may set. */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* The SOCKHASH drops closed sockets by itself; the original-destination entries and the
 * fallback mark are ours. */
static __always_inline void on_close(struct bpf_sock_ops *skops)
{
	struct shunt_sock_key key;
	__u64 cookie = bpf_get_socket_cookie(skops);

	key.netns = bpf_get_netns_cookie(skops);
	sock_key_from_ctx(&key, skops);
	bpf_map_delete_elem(&msg_fallback, &key);
	if (bpf_map_delete_elem(&orig_dst_by_cookie, &cookie) == 0)
		bpf_map_delete_elem(&orig_dst_by_tuple, &key);
}

SEC("sockops")
int shunt_sockops(struct bpf_sock_ops *skops)
{
	__u64 cookie;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		/* Follow redirected sockets to their close, even if the connect fails. */
		cookie = bpf_get_socket_cookie(skops);
		if (bpf_map_lookup_elem(&orig_dst_by_cookie, &cookie))
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
								 BPF_SOCK_OPS_STATE_CB_FLAG);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_established(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			on_close(skops);
		break;
	}
	return 1;
}
