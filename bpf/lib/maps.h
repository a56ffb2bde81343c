/* shunt's BPF maps: one definition each, pinned by name so every entry object shares them. */
#ifndef SHUNT_BPF_LIB_MAPS_H
#define SHUNT_BPF_LIB_MAPS_H

#include "lib/shunt_maps.h"

/* Enrolled pods by netns cookie. Written by the agent; read by every program. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHUNT_MAX_PODS);
	__type(key, __u64);
	__type(value, struct shunt_pod);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mesh_netns SEC(".maps");

/* Pod address -> netns cookie of the pod that owns it. Written by the agent; read by
 * sk_lookup, which has no netns cookie of its own. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHUNT_MAX_PODS_ADDRS);
	__type(key, struct shunt_addr);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pod_by_addr SEC(".maps");

/* Pod address -> that pod's 15006 listener (v4 or v6 to match). Written by the agent; read by
 * sk_lookup to steer inbound SYNs. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SHUNT_MAX_PODS_ADDRS);
	__type(key, struct shunt_addr);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} inbound_listeners SEC(".maps");

/* Original destination of a redirected connect, by the app socket's cookie. Written by
 * connect4/6; read by getpeername4/6 and sockops; deleted by sockops when the socket closes. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SHUNT_MAX_CONNS);
	__type(key, __u64);
	__type(value, struct shunt_orig_dst);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} orig_dst_by_cookie SEC(".maps");

/* Original destination by (netns cookie, app socket's 4-tuple). Written by sockops at
 * ESTABLISHED; read by the proxy (for the socket it accepted) and by getsockopt
 * (SO_ORIGINAL_DST); deleted by sockops when the app socket closes. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SHUNT_MAX_CONNS);
	__type(key, struct shunt_sock_key);
	__type(value, struct shunt_orig_dst);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} orig_dst_by_tuple SEC(".maps");

/* Both ends of every in-pod hop (app<->proxy over loopback, proxy->app from 127.0.0.6), by
 * (netns cookie, 4-tuple). Written by sockops and by the proxy for its own sockets; sk_msg is
 * attached here and redirects each message to the socket keyed by the reversed tuple. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SHUNT_MAX_SOCKS);
	__type(key, struct shunt_sock_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sock_pairs SEC(".maps");

/* Senders whose first message could not be redirected (the peer was not in sock_pairs yet):
 * they stay on the TCP path for good, because bytes already queued in the peer's TCP receive
 * queue would otherwise be read after later, redirected ones. Keyed by the sender's own key.
 * Written by sk_msg; entries of a new connection are cleared by sockops (app side) and by the
 * proxy (its side) when they insert the socket into sock_pairs. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SHUNT_MAX_SOCKS);
	__type(key, struct shunt_sock_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} msg_fallback SEC(".maps");

/* The kernel service LB: services by VIP:port and their backends by (service id, generation,
 * slot). Written by the agent (agent/svcmap.c) from every snapshot that becomes active; read by
 * connect4/6 and by shuntctl services.
 *
 * Update protocol, so that no connect ever sees a half-applied service:
 *   change:  write every slot of generation g+1, then replace the service entry (count and
 *            generation g+1) in one map update -- a hash map swaps the element as a whole, so a
 *            reader sees either g with its slots or g+1 with its slots -- then delete g's slots;
 *   add:     slots of generation 1 first, then the service entry;
 *   remove:  the service entry first, then its slots.
 * A reader that looked up generation g just before the swap may still find g's slots deleted
 * under it; it counts lb_slot_miss and takes the proxy path, which serves the VIP as well.
 * The VIP a connect asked for is kept in orig_dst_by_cookie, so getpeername answers it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHUNT_MAX_SERVICES);
	__type(key, struct shunt_svc_key);
	__type(value, struct shunt_svc);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHUNT_MAX_SVC_SLOTS);
	__type(key, struct shunt_svc_slot_key);
	__type(value, struct shunt_svc_backend);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} service_slots SEC(".maps");

/* Per-port policy (SHUNT_PORT_F_*), indexed by port. Written by the agent at start. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} port_policy SEC(".maps");

/* Counters by netns cookie (0: not attributable). Entries created by the agent at enrollment;
 * incremented by every program; read by shuntctl and the metrics exporter. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, SHUNT_MAX_PODS + 1);
	__type(key, __u64);
	__type(value, struct shunt_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stats SEC(".maps");

#endif
