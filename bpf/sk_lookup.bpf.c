// SPDX-License-Identifier: GPL-2.0
/* Inbound capture: steer SYNs for a pod's own addresses to its 15006 listener. Attached once
 * per enrolled pod netns. */
#include "lib/helpers.h"

char LICENSE[] SEC("license") = "GPL";

SEC("sk_lookup")
int shunt_sk_lookup(struct bpf_sk_lookup *ctx)
{
	struct shunt_addr local, remote;
	struct bpf_sock *listener;
	__u32 port = ctx->local_port;
	__u64 *netns;

	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	addr_from_ctx(&local, ctx->family == AF_INET, ctx, local_ip4, local_ip6);
	addr_from_ctx(&remote, ctx->family == AF_INET, ctx, remote_ip4, remote_ip6);
	netns = bpf_map_lookup_elem(&pod_by_addr, &local);
	if (!netns)
		return SK_PASS; /* not one of the pod's addresses */

	if (port_is_proxy_own(port) || port_has(port, SHUNT_PORT_F_EXCLUDE_IN) ||
	    addr_is_inbound_src(&remote) || addr_is_loopback(&remote) || addr_eq(&local, &remote)) {
		stat_inc(*netns, SHUNT_STAT_INBOUND_PASSTHROUGH);
		return SK_PASS;
	}

	listener = bpf_map_lookup_elem(&inbound_listeners, &local);
	if (!listener) {
		stat_inc(*netns, SHUNT_STAT_ERR_NO_LISTENER);
		return SK_PASS;
	}
	if (bpf_sk_assign(ctx, listener, 0))
		stat_inc(*netns, SHUNT_STAT_ERR_SK_ASSIGN);
	else
		stat_inc(*netns, SHUNT_STAT_INBOUND_STEERED);
	bpf_sk_release(listener);
	return SK_PASS;
}
