/* Building shunt_sock_key from each program type's view of a TCP socket.
 *
 * Port encodings differ by context: local_port is host order everywhere; remote_port is the
 * network-order 16-bit value in the upper half of a u32 in sock_ops and sk_msg (hence ntohl),
 * and a __be16 in struct bpf_sock.
 */
#ifndef SHUNT_BPF_LIB_SOCK_H
#define SHUNT_BPF_LIB_SOCK_H

#include "lib/helpers.h"

/* sock_ops and sk_msg share field names, so one macro serves both. */
#define sock_key_from_ctx(key, ctx)                                                                \
	do {                                                                                       \
		bool v4_ctx_ = (ctx)->family == AF_INET;                                           \
		addr_from_ctx(&(key)->local, v4_ctx_, ctx, local_ip4, local_ip6);                  \
		addr_from_ctx(&(key)->remote, v4_ctx_, ctx, remote_ip4, remote_ip6);               \
		(key)->local_port = (ctx)->local_port;                                             \
		(key)->remote_port = bpf_ntohl((ctx)->remote_port);                                \
	} while (0)

static __always_inline void sock_key_reverse(struct shunt_sock_key *out,
					     const struct shunt_sock_key *in)
{
	out->netns = in->netns;
	out->local = in->remote;
	out->remote = in->local;
	out->local_port = in->remote_port;
	out->remote_port = in->local_port;
}

/* Key of the socket at the other end of sk (the peer's own view of the connection). */
static __always_inline void sock_key_peer_of_bpf_sock(struct shunt_sock_key *key,
						      const struct bpf_sock *sk)
{
	if (sk->family == AF_INET) {
		addr_set_v4(&key->local, sk->dst_ip4);
		addr_set_v4(&key->remote, sk->src_ip4);
	} else {
		addr_set_v6(&key->local, sk, dst_ip6);
		addr_set_v6(&key->remote, sk, src_ip6);
	}
	key->local_port = bpf_ntohs(sk->dst_port);
	key->remote_port = sk->src_port;
}

/* An in-pod hop with the proxy at one end: app<->127.0.0.1:15001, or proxy(127.0.0.6|::6)->app.
 * Only these go into the SOCKHASH: shuntd drains them before it destroys the map, whereas
 * queued bytes of any other socket would be lost when the map (and its psock) goes away. */
static __always_inline bool sock_key_is_proxy_hop(const struct shunt_sock_key *key)
{
	return (key->remote_port == SHUNT_PORT_OUTBOUND && addr_is_loopback(&key->remote)) ||
	       (key->local_port == SHUNT_PORT_OUTBOUND && addr_is_loopback(&key->local)) ||
	       addr_is_inbound_src(&key->remote) || addr_is_inbound_src(&key->local);
}

#endif
