/* The ABI between shunt's BPF programs and userspace: map keys, values, counters, pin names.
 *
 * Included by the BPF programs (after vmlinux.h) and by agent/, proxy/ and tools/ (after
 * <linux/types.h>). Addresses are always stored as 16 bytes: IPv4 as ::ffff:a.b.c.d, so that a
 * v4 socket and a v4-mapped v6 socket describe the same connection with the same key. Ports in
 * keys and values are in host byte order.
 */
#ifndef SHUNT_BPF_MAPS_H
#define SHUNT_BPF_MAPS_H

/* Ports with a fixed meaning in a captured pod (Istio's numbers). */
#define SHUNT_PORT_OUTBOUND 15001 /* proxy's outbound listener in each pod */
#define SHUNT_PORT_INBOUND  15006 /* proxy's inbound listener in each pod */
#define SHUNT_PORT_HBONE    15008
#define SHUNT_PORT_ADMIN    15020
#define SHUNT_PORT_HEALTH   15021
#define SHUNT_PORT_PROM	    15090

/* Source address of the proxy's connections to the app (Istio's InboundPassthrough bind). */
#define SHUNT_INBOUND_SRC4 0x7f000006 /* 127.0.0.6 */

/* SO_MARK on every socket the proxy opens: connect4/6 never redirect such sockets. */
#define SHUNT_MARK_DEFAULT 0x534e

/* Map sizes. Exceeding one is counted (SHUNT_STAT_ERR_*), never silent. */
#define SHUNT_MAX_PODS	     4096
#define SHUNT_MAX_PODS_ADDRS (4 * SHUNT_MAX_PODS)
#define SHUNT_MAX_CONNS	     65536  /* tracked redirected connections (original destinations) */
#define SHUNT_MAX_SOCKS	     131072 /* sockets in the short-circuit SOCKHASH (two per hop) */
#define SHUNT_POD_NAME_LEN   64
#define SHUNT_MAX_SERVICES   65536  /* service VIP:port entries of the kernel service LB */
#define SHUNT_MAX_SVC_SLOTS  524288 /* backend slots of all services, both generations */
#define SHUNT_SVC_MAX_SLOTS  256    /* slots of one service (weights are replicated slots) */
#define SHUNT_SVC_NAME_LEN   128

struct shunt_addr {
	__u32 ip[4]; /* network byte order; IPv4 as ::ffff:a.b.c.d */
};

/* A TCP connection as seen from one of its sockets, in the netns it lives in. */
struct shunt_sock_key {
	__u64 netns; /* netns cookie */
	struct shunt_addr local;
	struct shunt_addr remote;
	__u32 local_port;  /* host byte order */
	__u32 remote_port; /* host byte order */
};

/* Where a redirected connection was going before connect4/6 rewrote it. */
struct shunt_orig_dst {
	struct shunt_addr addr;
	__u16 port;   /* host byte order */
	__u16 family; /* AF_INET or AF_INET6, as the app asked */
	__u32 pad;
};

/* An enrolled pod (keyed by netns cookie). Written by the agent at enrollment. */
#define SHUNT_POD_F_FAIL_CLOSED (1u << 0) /* refuse, instead of going direct, if no proxy listens */
#define SHUNT_POD_F_NO_SOCKMAP	(1u << 1) /* leave the app<->proxy hop on the TCP stack */
struct shunt_pod {
	__u64 cgroup_id;
	__u32 flags; /* SHUNT_POD_F_* */
	__u32 pid;   /* a member process, at enrollment */
	struct shunt_addr addr4;
	struct shunt_addr addr6;
	char name[SHUNT_POD_NAME_LEN]; /* cgroup path relative to --cgroup */
};

/* The kernel service LB (see the update protocol at the maps in bpf/lib/maps.h).
 *
 * A service is a VIP:port of one protocol. Its backends live in numbered slots of one
 * generation; connect4/6 pick slot (random % count) of the generation the service entry names. */
struct shunt_svc_key {
	struct shunt_addr vip;
	__u16 port;  /* host byte order */
	__u8 proto;  /* IPPROTO_TCP */
	__u8 family; /* AF_INET or AF_INET6 of the VIP as written in the config */
};

#define SHUNT_SVC_F_KERNEL_LB (1u << 0) /* L4-only: connect4/6 pick the backend themselves */
struct shunt_svc {
	__u32 id;	  /* stable while the VIP:port exists; part of every slot key */
	__u32 generation; /* which slots are live; bumped by every change of backends */
	__u32 count;	  /* slots 0..count-1 of (id, generation) are all written */
	__u32 flags;	  /* SHUNT_SVC_F_* */
	__u32 nbackends;  /* distinct backends behind the slots (for listings) */
	__u32 pad;
	char cluster[SHUNT_SVC_NAME_LEN]; /* the cluster it stands for (for listings) */
};

struct shunt_svc_slot_key {
	__u32 id;
	__u32 generation;
	__u32 slot;
};

struct shunt_svc_backend {
	struct shunt_addr addr;
	__u16 port; /* host byte order */
	__u16 pad;
};

/* Per-port policy, indexed by port (host order): which directions are never captured. */
#define SHUNT_PORT_F_EXCLUDE_OUT (1u << 0)
#define SHUNT_PORT_F_EXCLUDE_IN	 (1u << 1)

/* Counters, per netns cookie and per CPU. Key 0 collects what cannot be attributed. */
#define SHUNT_STATS(X)                                                                             \
	X(CONNECT_REDIRECTED, "connect_redirected", "outbound connects rewritten to 15001")        \
	X(CONNECT_PASSTHROUGH, "connect_passthrough", "outbound connects left alone (policy)")     \
	X(CONNECT_NO_PROXY, "connect_no_proxy", "fail-open: no proxy listening, went direct")      \
	X(CONNECT_REFUSED, "connect_refused", "fail-closed: no proxy listening, refused")          \
	X(INBOUND_STEERED, "inbound_steered", "inbound SYNs steered to 15006")                     \
	X(INBOUND_PASSTHROUGH, "inbound_passthrough", "inbound SYNs left alone (policy)")          \
	X(SOCK_INSERTED, "sock_inserted", "sockets put into the short-circuit map by sockops")     \
	X(MSG_REDIRECTED, "msg_redirected", "sk_msg messages redirected to the peer socket")       \
	X(MSG_BYTES, "msg_bytes", "bytes redirected by sk_msg")                                    \
	X(MSG_FALLBACK_NO_PEER, "msg_fallback_no_peer", "sk_msg: peer not in map, TCP path")       \
	X(MSG_FALLBACK_STICKY, "msg_fallback_sticky", "sk_msg: sender stays on TCP (order kept)")  \
	X(LB_HIT, "lb_hit", "connects to a kernel-LB service sent straight to a backend")          \
	X(LB_NO_BACKEND, "lb_no_backend", "kernel-LB service with no backend: proxy path")         \
	X(LB_SLOT_MISS, "lb_slot_miss", "kernel-LB slot missing (should not happen): proxy path")  \
	X(LB_FAMILY, "lb_family", "IPv6 backend for an IPv4 socket: proxy path")                   \
	X(ORIGDST_ANSWERED, "origdst_answered", "SO_ORIGINAL_DST answered from the maps")          \
	X(ERR_ORIGDST_FULL, "err_origdst_full", "original destination map full")                   \
	X(ERR_SOCKHASH, "err_sockhash", "SOCKHASH update failed")                                  \
	X(ERR_REDIRECT, "err_redirect", "sk_msg redirect failed")                                  \
	X(ERR_SK_ASSIGN, "err_sk_assign", "sk_lookup could not assign the 15006 listener")         \
	X(ERR_NO_LISTENER, "err_no_listener", "inbound SYN for an enrolled pod with no listener")

#define SHUNT_STAT_ENUM(id, name, help) SHUNT_STAT_##id,
enum shunt_stat {
	SHUNT_STATS(SHUNT_STAT_ENUM) SHUNT_STAT__MAX
};
#undef SHUNT_STAT_ENUM

struct shunt_counters {
	__u64 v[SHUNT_STAT__MAX];
};

/* Pin names, relative to --bpffs-dir. */
#define SHUNT_PIN_MAPS	"maps"
#define SHUNT_PIN_LINKS "links"

#endif
