/* The eBPF data path: load the programs through their skeletons, pin maps and links under
 * --bpffs-dir, attach at --cgroup (and per pod netns for sk_lookup), and take it all down. */
#ifndef SHUNT_AGENT_DATAPATH_H
#define SHUNT_AGENT_DATAPATH_H

#include <limits.h>
#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>

#define DP_CGROUP_PROGS(X)                                                                         \
	X(CONNECT4, "connect4")                                                                    \
	X(CONNECT6, "connect6")                                                                    \
	X(GETPEERNAME4, "getpeername4")                                                            \
	X(GETPEERNAME6, "getpeername6")                                                            \
	X(GETSOCKOPT, "getsockopt")                                                                \
	X(SOCKOPS, "sockops")

#define DP_ENUM(id, name) DP_##id,
enum dp_cgroup_prog {
	DP_CGROUP_PROGS(DP_ENUM) DP__CGROUP_MAX
};
#undef DP_ENUM

/* Pinned map names (files under <bpffs-dir>/maps). */
#define DP_MAPS(X)                                                                                 \
	X(mesh_netns)                                                                              \
	X(pod_by_addr)                                                                             \
	X(inbound_listeners)                                                                       \
	X(orig_dst_by_cookie)                                                                      \
	X(orig_dst_by_tuple)                                                                       \
	X(sock_pairs)                                                                              \
	X(msg_fallback)                                                                            \
	X(port_policy)                                                                             \
	X(services)                                                                                \
	X(service_slots)                                                                           \
	X(stats)

struct dp_opts {
	const char *bpffs_dir;
	const char *cgroup_path;
	__u32 mark;
	bool sockmap;		  /* attach sk_msg to the SOCKHASH */
	bool outbound;		  /* attach connect/getpeername/getsockopt/sockops */
	bool inbound;		  /* load sk_lookup (attached per pod) */
	const __u16 *exclude_in;  /* extra ports never captured inbound; 0-terminated or NULL */
	const __u16 *exclude_out; /* ports never captured outbound; 0-terminated or NULL */
};

struct datapath {
	char bpffs_dir[PATH_MAX];
	char mount_point[PATH_MAX]; /* non-empty if we mounted a bpffs and must unmount it */
	int cgroup_fd;
	struct shunt_connect *connect;
	struct shunt_sockopt *sockopt;
	struct shunt_sockops *sockops;
	struct shunt_sk_msg *sk_msg;
	struct shunt_sk_lookup *sk_lookup;
	struct bpf_link *cg_links[DP__CGROUP_MAX];
	int sk_msg_link_fd; /* -1 if attached the legacy way (bpf_prog_attach) */
	bool sk_msg_attached;
	struct {
#define DP_MAP_FD(name) int name;
		DP_MAPS(DP_MAP_FD)
#undef DP_MAP_FD
	} fd;
};

/* Everything or nothing: on failure, whatever was set up is taken down again and a message
 * naming the failed step has been logged. */
int dp_open(struct datapath *dp, const struct dp_opts *o);
/* Attaches sk_lookup to a pod netns; pinned as links/sk_lookup-<cookie>. */
struct bpf_link *dp_attach_sk_lookup(struct datapath *dp, int netns_fd, __u64 cookie);
void dp_detach_sk_lookup(struct datapath *dp, struct bpf_link *link, __u64 cookie);
/* Detaches and unpins everything dp_open created; unmounts a bpffs it mounted. */
void dp_close(struct datapath *dp);
const char *dp_cgroup_prog_name(enum dp_cgroup_prog p);

/* Paths shared with shuntctl. */
void dp_map_path(const char *bpffs_dir, const char *map, char *buf, size_t len);
void dp_link_path(const char *bpffs_dir, const char *link, char *buf, size_t len);

#endif
