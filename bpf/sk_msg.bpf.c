// SPDX-License-Identifier: GPL-2.0
/* sk_msg: hand each message of an in-pod hop straight to the peer socket's receive queue. */
#include "lib/helpers.h"
#include "lib/sock.h"

char LICENSE[] SEC("license") = "GPL";

/* Redirected bytes land in the peer's ingress queue, which the peer reads before its TCP
 * receive queue. So a sender switches path at most once, at its first message: if the peer is
 * not in sock_pairs yet (the proxy inserts its end after accept), that message and every later
 * one take the TCP path, and no byte can overtake another. */
SEC("sk_msg")
int shunt_sk_msg(struct sk_msg_md *msg)
{
	struct shunt_sock_key me, peer;
	__u8 one = 1;

	me.netns = bpf_get_netns_cookie(msg);
	sock_key_from_ctx(&me, msg);
	if (bpf_map_lookup_elem(&msg_fallback, &me)) {
		stat_inc(me.netns, SHUNT_STAT_MSG_FALLBACK_STICKY);
		return SK_PASS;
	}
	sock_key_reverse(&peer, &me);
	if (bpf_msg_redirect_hash(msg, &sock_pairs, &peer, BPF_F_INGRESS) != SK_PASS) {
		bpf_map_update_elem(&msg_fallback, &me, &one, BPF_ANY);
		stat_inc(me.netns, SHUNT_STAT_MSG_FALLBACK_NO_PEER);
		return SK_PASS;
	}
	stat_inc(me.netns, SHUNT_STAT_MSG_REDIRECTED);
	stat_add(me.netns, SHUNT_STAT_MSG_BYTES, msg->size);
	return SK_PASS;
}
