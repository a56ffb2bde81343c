/* Helpers shared by shunt's BPF programs: address keys, policy checks, counters. */
#ifndef SHUNT_BPF_LIB_HELPERS_H
#define SHUNT_BPF_LIB_HELPERS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/maps.h"

#define AF_INET		     2
#define AF_INET6	     10

#define SOL_IP		     0
#define SOL_IPV6	     41
#define SO_ORIGINAL_DST	     80
#define IP6T_SO_ORIGINAL_DST 80

#define SHUNT_ALLOW	     1
#define SHUNT_DENY	     0

/* Set by the agent before load. */
const volatile __u32 proxy_mark = SHUNT_MARK_DEFAULT;

static __always_inline void addr_set_v4(struct shunt_addr *a, __u32 ip4)
{
	a->ip[0] = 0;
	a->ip[1] = 0;
	a->ip[2] = bpf_htonl(0xffff);
	a->ip[3] = ip4;
}

/* Context fields cannot be read through a pointer; each IPv6 word is loaded by name. */
#define addr_set_v6(a, ctx, field)                                                                 \
	do {                                                                                       \
		(a)->ip[0] = (ctx)->field[0];                                                      \
		(a)->ip[1] = (ctx)->field[1];                                                      \
		(a)->ip[2] = (ctx)->field[2];                                                      \
		(a)->ip[3] = (ctx)->field[3];                                                      \
	} while (0)

/* Loads one address of either family from a context into *a. Both forms are loaded
 * unconditionally and pinned with barrier_var: left to itself, clang merges the v4/v6 choice
 * into one load through a computed context pointer, which the verifier refuses. */
#define addr_from_ctx(a, is_v4, ctx, f4, f6)                                                       \
	do {                                                                                       \
		__u32 v4_ = (ctx)->f4, w0_ = (ctx)->f6[0], w1_ = (ctx)->f6[1], w2_ = (ctx)->f6[2], \
		      w3_ = (ctx)->f6[3];                                                          \
		barrier_var(v4_);                                                                  \
		barrier_var(w0_);                                                                  \
		barrier_var(w1_);                                                                  \
		barrier_var(w2_);                                                                  \
		barrier_var(w3_);                                                                  \
		if (is_v4) {                                                                       \
			addr_set_v4(a, v4_);                                                       \
		} else {                                                                           \
			(a)->ip[0] = w0_;                                                          \
			(a)->ip[1] = w1_;                                                          \
			(a)->ip[2] = w2_;                                                          \
			(a)->ip[3] = w3_;                                                          \
		}                                                                                  \
	} while (0)

static __always_inline bool addr_is_v4(const struct shunt_addr *a)
{
	return a->ip[0] == 0 && a->ip[1] == 0 && a->ip[2] == bpf_htonl(0xffff);
}

static __always_inline bool addr_is_loopback(const struct shunt_addr *a)
{
	if (addr_is_v4(a))
		return (bpf_ntohl(a->ip[3]) >> 24) == 127;
	return a->ip[0] == 0 && a->ip[1] == 0 && a->ip[2] == 0 && a->ip[3] == bpf_htonl(1);
}

/* The source the proxy uses to reach the app: 127.0.0.6 or ::6. */
static __always_inline bool addr_is_inbound_src(const struct shunt_addr *a)
{
	if (addr_is_v4(a))
		return a->ip[3] == bpf_htonl(SHUNT_INBOUND_SRC4);
	return a->ip[0] == 0 && a->ip[1] == 0 && a->ip[2] == 0 && a->ip[3] == bpf_htonl(6);
}

static __always_inline bool addr_eq(const struct shunt_addr *a, const struct shunt_addr *b)
{
	return a->ip[0] == b->ip[0] && a->ip[1] == b->ip[1] && a->ip[2] == b->ip[2] &&
	       a->ip[3] == b->ip[3];
}

static __always_inline bool port_is_proxy_own(__u32 port)
{
	return port == SHUNT_PORT_OUTBOUND || port == SHUNT_PORT_INBOUND ||
	       port == SHUNT_PORT_HBONE || port == SHUNT_PORT_ADMIN || port == SHUNT_PORT_HEALTH ||
	       port == SHUNT_PORT_PROM;
}

static __always_inline bool port_has(__u32 port, __u8 flag)
{
	__u8 *p = bpf_map_lookup_elem(&port_policy, &port);
	return p && (*p & flag);
}

static __always_inline void stat_add(__u64 netns, enum shunt_stat s, __u64 n)
{
	struct shunt_counters *c = bpf_map_lookup_elem(&stats, &netns);
	if (!c) {
		__u64 unattributed = 0;
		c = bpf_map_lookup_elem(&stats, &unattributed);
		if (!c)
			return;
	}
	if (s < SHUNT_STAT__MAX)
		__sync_fetch_and_add(&c->v[s], n);
}

static __always_inline void stat_inc(__u64 netns, enum shunt_stat s)
{
	stat_add(netns, s, 1);
}

#endif
