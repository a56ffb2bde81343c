/* Kernel and privilege probe through libbpf's feature probes and capget(2). */
#include "agent/probe.h"

#include <bpf/libbpf.h>
#include <ctype.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

static const char *const names[] = {
#define PROBE_NAME(id, what, path) #id,
	PROBE_FEATURES(PROBE_NAME)
#undef PROBE_NAME
};
static const char *const whats[] = {
#define PROBE_WHAT(id, what, path) what,
	PROBE_FEATURES(PROBE_WHAT)
#undef PROBE_WHAT
};
static const char *const paths[] = {
#define PROBE_PATH(id, what, path) path,
	PROBE_FEATURES(PROBE_PATH)
#undef PROBE_PATH
};

const char *probe_name(enum probe_feature f)
{
	return names[f];
}

const char *probe_what(enum probe_feature f)
{
	return whats[f];
}

const char *probe_path(enum probe_feature f)
{
	return paths[f];
}

static bool cap_has(const struct __user_cap_data_struct d[2], int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
}

bool probe_privileges(char *missing, size_t len)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2] = {0};
	size_t off = 0;

	missing[0] = '\0';
	if (syscall(SYS_capget, &h, d)) {
		snprintf(missing, len, "capabilities (capget: %s)", strerror(errno));
		return true;
	}
#define NEED(cond, text)                                                                           \
	if (!(cond))                                                                               \
		off += (size_t)snprintf(missing + off, off < len ? len - off : 0, "%s%s",          \
					off ? ", " : "", text);
	NEED(cap_has(d, CAP_BPF) || cap_has(d, CAP_SYS_ADMIN), "CAP_BPF (or CAP_SYS_ADMIN)");
	NEED(cap_has(d, CAP_NET_ADMIN), "CAP_NET_ADMIN");
	NEED(cap_has(d, CAP_SYS_ADMIN), "CAP_SYS_ADMIN (setns into pods, mount bpffs)");
#undef NEED
	return off > 0;
}

static bool hidden_by_env(enum probe_feature f)
{
	const char *env = getenv("SHUNT_PROBE_HIDE");
	char want[64];
	size_t n = strlen(names[f]);

	if (!env || n >= sizeof(want))
		return false;
	for (size_t i = 0; i <= n; i++)
		want[i] = (char)tolower((unsigned char)names[f][i]);
	for (const char *p = env; *p;) {
		size_t len = strcspn(p, ",");

		if (len == n && strncmp(p, want, n) == 0)
			return true;
		p += len;
		if (*p == ',')
			p++;
	}
	return false;
}

static bool have_netns_cookie(void)
{
	unsigned long long cookie;
	socklen_t len = sizeof(cookie);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	ok = getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) == 0;
	close(fd);
	return ok;
}

void probe_kernel(struct probe_result *r)
{
	memset(r, 0, sizeof(*r));
	r->have[PROBE_BTF] = access("/sys/kernel/btf/vmlinux", R_OK) == 0;
	r->have[PROBE_PROG_CGROUP_SOCK_ADDR] =
		libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, NULL) == 1;
	r->have[PROBE_PROG_CGROUP_SOCKOPT] =
		libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_CGROUP_SOCKOPT, NULL) == 1;
	r->have[PROBE_PROG_SOCK_OPS] =
		libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SOCK_OPS, NULL) == 1;
	r->have[PROBE_PROG_SK_LOOKUP] =
		libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_LOOKUP, NULL) == 1;
	r->have[PROBE_PROG_SK_MSG] = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_MSG, NULL) == 1;
	r->have[PROBE_HELPER_SK_LOOKUP_TCP] =
		libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_sk_lookup_tcp,
					NULL) == 1;
	r->have[PROBE_HELPER_NETNS_COOKIE_SOCKOPS] =
		libbpf_probe_bpf_helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_netns_cookie, NULL) ==
		1;
	r->have[PROBE_HELPER_NETNS_COOKIE_SK_MSG] =
		libbpf_probe_bpf_helper(BPF_PROG_TYPE_SK_MSG, BPF_FUNC_get_netns_cookie, NULL) == 1;
	r->have[PROBE_HELPER_SK_ASSIGN] =
		libbpf_probe_bpf_helper(BPF_PROG_TYPE_SK_LOOKUP, BPF_FUNC_sk_assign, NULL) == 1;
	r->have[PROBE_HELPER_MSG_REDIRECT_HASH] =
		libbpf_probe_bpf_helper(BPF_PROG_TYPE_SK_MSG, BPF_FUNC_msg_redirect_hash, NULL) ==
		1;
	r->have[PROBE_SO_NETNS_COOKIE] = have_netns_cookie();
	for (int f = 0; f < PROBE__MAX; f++) {
		if (hidden_by_env(f)) {
			r->have[f] = false;
			r->hidden[f] = true;
		}
	}
}

int probe_missing(const struct probe_result *r, const char *path, char *buf, size_t len)
{
	size_t off = 0;
	int n = 0;

	buf[0] = '\0';
	for (int f = 0; f < PROBE__MAX; f++) {
		if (r->have[f])
			continue;
		if (strcmp(paths[f], path) != 0 && strcmp(paths[f], "all") != 0)
			continue;
		off += (size_t)snprintf(buf + off, off < len ? len - off : 0, "%s%s%s",
					off ? ", " : "", whats[f],
					r->hidden[f] ? " (hidden by SHUNT_PROBE_HIDE)" : "");
		n++;
	}
	return n;
}
