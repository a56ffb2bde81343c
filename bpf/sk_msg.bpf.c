// SPDX-License-Identifier: GPL-2.0
/* sk_msg: hand each message of an in-pod hop straight to the peer socket's receive queue. */
#include "lib/helpers.h"
#include "lib/sock.h"

char LICENSE[] SEC("license") = "GPL";

/* Redirected bytes land in the peer's ingress queue, which the peer reads before its TCP
 * receive queue. Bytes this socket sent through TCP before the peer was in the map (the proxy
 * inserts its end after accept) must be read first, or the stream would be reordered: redirect
 * only once the peer has consumed everything we ever wrote to TCP. */
static __always_inline bool peer_caught_up(struct bpf_sock *me, struct bpf_sock *peer)
{
	struct tcp_sock *tme = bpf_skc_to_tcp_sock(me);
	struct tcp_sock *tpeer = bpf_skc_to_tcp_sock(peer);

	if (!tme || !tpeer)
		return false;
	return tme->write_seq == tpeer->copied_seq;
}

SEC("sk_msg")
int shunt_sk_msg(struct sk_msg_md *msg)
{
	struct shunt_sock_key me, peer_key;
	struct bpf_sock *peer, *sk = msg->sk;
	bool caught_up;

	me.netns = bpf_get_netns_cookie(msg);
	sock_key_from_ctx(&me, msg);
	sock_key_reverse(&peer_key, &me);

	peer = bpf_map_lookup_elem(&sock_pairs, &peer_key);
	if (!peer) {
		stat_inc(me.netns, SHUNT_STAT_MSG_FALLBACK_NO_PEER);
		return SK_PASS;
	}
	caught_up = sk && peer_caught_up(sk, peer);
	bpf_sk_release(peer);
	if (!caught_up) {
		stat_inc(me.netns, SHUNT_STAT_MSG_FALLBACK_ORDER);
		return SK_PASS;
	}
	if (bpf_msg_redirect_hash(msg, &sock_pairs, &peer_key, BPF_F_INGRESS) != SK_PASS) {
		stat_inc(me.netns, SHUNT_STAT_ERR_REDIRECT);
		return SK_PASS;
	}
	stat_inc(me.netns, SHUNT_STAT_MSG_REDIRECTED);
	stat_add(me.netns, SHUNT_STAT_MSG_BYTES, msg->size);
	return SK_PASS;
}
