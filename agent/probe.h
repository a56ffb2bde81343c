/* Kernel and privilege probe: what shunt's eBPF data path needs, and what is missing. */
#ifndef SHUNT_AGENT_PROBE_H
#define SHUNT_AGENT_PROBE_H

#include <stdbool.h>
#include <stddef.h>

/* id, what it is (for messages), which capture path needs it. */
#define PROBE_FEATURES(X)                                                                          \
	X(BTF, "kernel BTF (/sys/kernel/btf/vmlinux)", "all")                                      \
	X(PROG_CGROUP_SOCK_ADDR, "program type cgroup_sock_addr (connect4/6, getpeername4/6)",     \
	  "outbound")                                                                              \
	X(PROG_CGROUP_SOCKOPT, "program type cgroup_sockopt (SO_ORIGINAL_DST)", "outbound")        \
	X(PROG_SOCK_OPS, "program type sock_ops", "outbound")                                      \
	X(PROG_SK_LOOKUP, "program type sk_lookup", "inbound")                                     \
	X(PROG_SK_MSG, "program type sk_msg", "sockmap")                                           \
	X(HELPER_SK_LOOKUP_TCP, "helper bpf_sk_lookup_tcp in cgroup_sock_addr", "outbound")        \
	X(HELPER_NETNS_COOKIE_SOCKOPS, "helper bpf_get_netns_cookie in sock_ops", "outbound")      \
	X(HELPER_NETNS_COOKIE_SK_MSG, "helper bpf_get_netns_cookie in sk_msg", "sockmap")          \
	X(HELPER_SK_ASSIGN, "helper bpf_sk_assign in sk_lookup", "inbound")                        \
	X(HELPER_MSG_REDIRECT_HASH, "helper bpf_msg_redirect_hash in sk_msg", "sockmap")           \
	X(SO_NETNS_COOKIE, "socket option SO_NETNS_COOKIE (Linux 5.14)", "all")

#define PROBE_ENUM(id, what, path) PROBE_##id,
enum probe_feature {
	PROBE_FEATURES(PROBE_ENUM) PROBE__MAX
};
#undef PROBE_ENUM

struct probe_result {
	bool have[PROBE__MAX];
	bool hidden[PROBE__MAX]; /* reported missing on purpose (SHUNT_PROBE_HIDE, for tests) */
};

/* Which capabilities are missing, as "CAP_BPF (or CAP_SYS_ADMIN), CAP_NET_ADMIN"; empty string
 * when all are present. Returns true if anything is missing. */
bool probe_privileges(char *missing, size_t len);
/* Probes every feature. Features named in the environment variable SHUNT_PROBE_HIDE (comma
 * separated ids, lower case, e.g. "prog_sk_lookup") are reported missing, to test fallbacks. */
void probe_kernel(struct probe_result *r);
const char *probe_name(enum probe_feature f);
const char *probe_what(enum probe_feature f);
const char *probe_path(enum probe_feature f);
/* "program type sk_lookup, helper bpf_sk_assign in sk_lookup" for the missing ones that the
 * given path needs ("all" features count for every path); empty if none. Returns the count. */
int probe_missing(const struct probe_result *r, const char *path, char *buf, size_t len);

#endif
