/* Enrolled pods: one per network namespace, with its in-pod listeners, map entries and
 * sk_lookup link. Owned by the agent thread. */
#ifndef SHUNT_AGENT_PODS_H
#define SHUNT_AGENT_PODS_H

#include <linux/types.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bpf/lib/shunt_maps.h"
#include "lib/list.h"
#include "lib/strbuf.h"

#define POD_MAX_ADDRS	 8
#define POD_LINGER_MS	 300 /* a pod without cgroups waits this long for one before it goes */
#define POD_MAX_EXCLUDED 256 /* netns opted out with `shuntctl unenroll` */

struct datapath;
struct ipt_config;
struct proxy;
struct proxy_workload;
struct bpf_link;

/* How each pod's traffic reaches the proxy. Outbound and inbound are captured by eBPF
 * (connect4/6 at the cgroup, sk_lookup per netns) or by Istio's iptables rules loaded in the pod's
 * netns; `--mode auto` picks per path by what the kernel offers. */
struct pods_capture {
	bool bpf_inbound;	      /* attach sk_lookup to each pod netns */
	const struct ipt_config *ipt; /* rules to load per pod (only the iptables paths), or NULL */
	int ipt_backend;	      /* enum ipt_backend */
	const char *state_dir;	      /* remembers which netns got our rules (restart adoption) */
};

struct pod {
	struct list_head node;
	__u64 id; /* unique for the life of shuntd: holders of a reference keep the id, not a
		   * pointer, since `shuntctl unenroll` may remove the pod under them */
	char name[SHUNT_POD_NAME_LEN];
	__u64 netns_ino;
	__u64 netns_cookie;
	int netns_fd;
	pid_t pid;
	unsigned long long cgroup_id;
	struct shunt_addr addrs[POD_MAX_ADDRS];
	int naddrs;
	bool has_v6;
	bool added_inbound_src6; /* we added ::6/128 to the pod's lo */
	struct bpf_link *sk_lookup;
	bool ipt_applied; /* the Istio rule set is loaded in the pod's netns */
	struct proxy_workload *pw;
	int refs; /* cgroups whose processes live in this netns, plus one if enrolled by hand */
	bool manual;
	__u64 enrolled_at;     /* CLOCK_REALTIME seconds */
	uint64_t orphan_since; /* CLOCK_MONOTONIC ms when refs reached 0; 0 while referenced */
};

struct pods {
	struct list_head list;
	int count;
	struct datapath *dp;
	struct proxy *proxy;
	__u64 own_netns_ino;
	__u32 pod_flags; /* SHUNT_POD_F_* for every pod */
	struct pods_capture cap;
	__u64 excluded[POD_MAX_EXCLUDED];
	int nexcluded;
	__u64 next_id;
	int *deferred_src6; /* netns fds whose ::6 goes once the proxy has drained */
	int ndeferred_src6;
};

/* dp may be NULL: no eBPF at all (iptables capture only). cap is copied; cap.ipt must outlive
 * the pods. */
void pods_init(struct pods *ps, struct datapath *dp, struct proxy *proxy, __u32 pod_flags,
	       const struct pods_capture *cap);
struct pod *pods_find_ino(struct pods *ps, __u64 netns_ino);
struct pod *pods_find_id(struct pods *ps, __u64 id);
/* Enrolls the netns of pid (or takes another reference on it when already enrolled).
 * name: the cgroup path relative to --cgroup, or NULL for "pid-<pid>". manual: by hand. */
int pods_enroll(struct pods *ps, pid_t pid, unsigned long long cgroup_id, const char *name,
		bool manual, struct pod **out);
/* Drops one reference taken by pods_enroll on the pod with this id. A pod left without
 * references lingers POD_LINGER_MS (a process moving between container cgroups empties one
 * before it fills the other), then pods_tick unenrolls it. A pod removed by hand in the
 * meantime is not touched. */
void pods_put_id(struct pods *ps, __u64 id);
/* Unenrolls pods whose linger ran out; returns the ms until the next one would, or -1. */
int pods_tick(struct pods *ps, uint64_t now_ms);
/* shuntctl unenroll: removes the pod whatever its references, and keeps its netns out of
 * automatic enrollment until enrolled by hand again. */
int pods_unenroll_pid(struct pods *ps, pid_t pid);
bool pods_is_excluded(const struct pods *ps, __u64 netns_ino);
/* Unenrolls every pod (at shutdown). */
void pods_destroy(struct pods *ps);
/* After the proxy has drained: removes the ::6 addresses pods_destroy left in place. */
void pods_release_deferred(struct pods *ps);
/* JSON array of the enrolled pods. */
void pods_to_json(struct pods *ps, struct strbuf *sb);

#endif
