/* Loads, pins, attaches and removes shunt's BPF programs and maps. */
#include "agent/datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "bpf/lib/shunt_maps.h"
#include "connect.skel.h"
#include "lib/log.h"
#include "sk_lookup.skel.h"
#include "sk_msg.skel.h"
#include "sockops.skel.h"
#include "sockopt.skel.h"

#define BPFFS_STD "/sys/fs/bpf"

static const char *const cg_names[] = {
#define DP_NAME(id, name) name,
	DP_CGROUP_PROGS(DP_NAME)
#undef DP_NAME
};

const char *dp_cgroup_prog_name(enum dp_cgroup_prog p)
{
	return cg_names[p];
}

void dp_map_path(const char *bpffs_dir, const char *map, char *buf, size_t len)
{
	snprintf(buf, len, "%s/" SHUNT_PIN_MAPS "/%s", bpffs_dir, map);
}

void dp_link_path(const char *bpffs_dir, const char *link, char *buf, size_t len)
{
	snprintf(buf, len, "%s/" SHUNT_PIN_LINKS "/%s", bpffs_dir, link);
}

/* libbpf's chatter goes to debug; its warnings (verifier logs on failure) to the log, one
 * line per line so that a multi-line verifier log survives intact. */
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char *text, *line, *save;

	if (level == LIBBPF_DEBUG && log_threshold < L_DEBUG)
		return 0;
	if (vasprintf(&text, fmt, ap) < 0)
		return 0;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		log_msg(level == LIBBPF_WARN ? L_WARN : L_DEBUG, "%s", line);
	free(text);
	return 0;
}

static bool is_bpffs(const char *path)
{
	struct statfs sfs;

	return statfs(path, &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC;
}

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

/* Makes bpffs_dir a directory on a bpffs. Under /sys/fs/bpf the standard bpffs is mounted if
 * absent (and left mounted, as every BPF user expects it there); anywhere else a private
 * bpffs is mounted on the directory itself and unmounted by dp_close. */
static int bpffs_prepare(struct datapath *dp)
{
	const char *dir = dp->bpffs_dir;
	int err;

	if (strncmp(dir, BPFFS_STD "/", sizeof(BPFFS_STD)) == 0 && !is_bpffs(BPFFS_STD)) {
		if (mount("bpf", BPFFS_STD, "bpf", 0, "mode=0700")) {
			pr_err("cannot mount bpffs at " BPFFS_STD ": %m");
			return -errno;
		}
		pr_info("mounted bpffs at " BPFFS_STD);
	}
	err = mkdir_p(dir);
	if (err) {
		pr_err("cannot create --bpffs-dir %s: %s", dir, strerror(-err));
		return err;
	}
	if (!is_bpffs(dir)) {
		if (mount("bpf", dir, "bpf", 0, "mode=0700")) {
			pr_err("cannot mount bpffs at --bpffs-dir %s: %m", dir);
			return -errno;
		}
		snprintf(dp->mount_point, sizeof(dp->mount_point), "%s", dir);
		pr_info("mounted a bpffs at %s", dir);
	}
	return 0;
}

/* Removes every pin in dir (and dir). A pin left by a shuntd that died is stale: with the
 * run-dir lock held, nobody else owns it. Unpinning a link detaches it. */
static void unpin_dir(const char *dir, bool report)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) == 0 && report)
			pr_warn("removed stale pin %s (left by a shuntd that did not stop cleanly)",
				path);
	}
	closedir(d);
	rmdir(dir);
}

static int pin_link(struct datapath *dp, struct bpf_link *link, const char *name)
{
	char path[PATH_MAX];
	int err;

	dp_link_path(dp->bpffs_dir, name, path, sizeof(path));
	err = bpf_link__pin(link, path);
	if (err)
		pr_err("cannot pin link %s: %s", path, strerror(-err));
	return err;
}

#define SKEL_OPEN(dp, field, type, pin_root)                                                       \
	({                                                                                         \
		LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = (pin_root));                \
		(dp)->field = type##__open_opts(&oo);                                              \
		(dp)->field ? 0 : -errno;                                                          \
	})

static int load_all(struct datapath *dp, const struct dp_opts *o, const char *maps_dir)
{
	int err;

	err = SKEL_OPEN(dp, connect, shunt_connect, maps_dir);
	if (!err)
		err = SKEL_OPEN(dp, sockopt, shunt_sockopt, maps_dir);
	if (!err)
		err = SKEL_OPEN(dp, sockops, shunt_sockops, maps_dir);
	if (!err)
		err = SKEL_OPEN(dp, sk_msg, shunt_sk_msg, maps_dir);
	if (!err)
		err = SKEL_OPEN(dp, sk_lookup, shunt_sk_lookup, maps_dir);
	if (err) {
		pr_err("cannot open BPF objects: %s", strerror(-err));
		return err;
	}
	dp->connect->rodata->proxy_mark = o->mark;
	dp->sockopt->rodata->proxy_mark = o->mark;
	dp->sockops->rodata->proxy_mark = o->mark;
	dp->sk_msg->rodata->proxy_mark = o->mark;
	dp->sk_lookup->rodata->proxy_mark = o->mark;

	/* The first load creates and pins the maps; the others reuse them by pin name. */
	struct {
		const char *name;
		int (*load)(void *);
		void *skel;
	} steps[] = {
		{"connect", (int (*)(void *))shunt_connect__load, dp->connect},
		{"sockopt", (int (*)(void *))shunt_sockopt__load, dp->sockopt},
		{"sockops", (int (*)(void *))shunt_sockops__load, dp->sockops},
		{"sk_msg", (int (*)(void *))shunt_sk_msg__load, dp->sk_msg},
		{"sk_lookup", (int (*)(void *))shunt_sk_lookup__load, dp->sk_lookup},
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		err = steps[i].load(steps[i].skel);
		if (err) {
			pr_err("cannot load BPF program %s: %s (the verifier log is above)",
			       steps[i].name, strerror(-err));
			return err;
		}
	}
#define DP_MAP_FD_GET(name) dp->fd.name = bpf_map__fd(dp->connect->maps.name);
	DP_MAPS(DP_MAP_FD_GET)
#undef DP_MAP_FD_GET
	return 0;
}

static int write_port_policy(struct datapath *dp, const struct dp_opts *o)
{
	__u8 flags[65536] = {0};

	for (const __u16 *p = o->exclude_in; p && *p; p++)
		flags[*p] |= SHUNT_PORT_F_EXCLUDE_IN;
	for (const __u16 *p = o->exclude_out; p && *p; p++)
		flags[*p] |= SHUNT_PORT_F_EXCLUDE_OUT;
	for (__u32 port = 0; port < 65536; port++) {
		if (!flags[port])
			continue;
		if (bpf_map_update_elem(dp->fd.port_policy, &port, &flags[port], BPF_ANY)) {
			pr_err("cannot write port policy for port %u: %m", port);
			return -errno;
		}
	}
	return 0;
}

static int attach_all(struct datapath *dp, const struct dp_opts *o)
{
	struct bpf_program *progs[DP__CGROUP_MAX] = {
		[DP_CONNECT4] = dp->connect->progs.shunt_connect4,
		[DP_CONNECT6] = dp->connect->progs.shunt_connect6,
		[DP_GETPEERNAME4] = dp->sockopt->progs.shunt_getpeername4,
		[DP_GETPEERNAME6] = dp->sockopt->progs.shunt_getpeername6,
		[DP_GETSOCKOPT] = dp->sockopt->progs.shunt_getsockopt,
		[DP_SOCKOPS] = dp->sockops->progs.shunt_sockops,
	};
	int err;

	for (int i = 0; o->outbound && i < DP__CGROUP_MAX; i++) {
		char name[64];

		dp->cg_links[i] = bpf_program__attach_cgroup(progs[i], dp->cgroup_fd);
		if (!dp->cg_links[i]) {
			err = -errno;
			pr_err("cannot attach %s to %s: %s", cg_names[i], o->cgroup_path,
			       strerror(-err));
			return err;
		}
		snprintf(name, sizeof(name), "cgroup_%s", cg_names[i]);
		err = pin_link(dp, dp->cg_links[i], name);
		if (err)
			return err;
	}
	if (!o->sockmap)
		return 0;
	int prog_fd = bpf_program__fd(dp->sk_msg->progs.shunt_sk_msg);
	char path[PATH_MAX];

	/* Kernels since 6.10 give sockmap attachments a bpf_link, pinned like the others; older
	 * ones take the legacy attach, which lives as long as the map. */
	dp->sk_msg_link_fd = bpf_link_create(prog_fd, dp->fd.sock_pairs, BPF_SK_MSG_VERDICT, NULL);
	if (dp->sk_msg_link_fd >= 0) {
		dp_link_path(dp->bpffs_dir, "sk_msg", path, sizeof(path));
		if (bpf_obj_pin(dp->sk_msg_link_fd, path)) {
			err = -errno;
			pr_err("cannot pin link %s: %s", path, strerror(-err));
			return err;
		}
	} else if (bpf_prog_attach(prog_fd, dp->fd.sock_pairs, BPF_SK_MSG_VERDICT, 0)) {
		err = -errno;
		pr_err("cannot attach sk_msg to the sock_pairs map: %s", strerror(-err));
		return err;
	}
	dp->sk_msg_attached = true;
	return 0;
}

int dp_open(struct datapath *dp, const struct dp_opts *o)
{
	char maps_dir[PATH_MAX], links_dir[PATH_MAX];
	int err;

	memset(dp, 0, sizeof(*dp));
	dp->cgroup_fd = -1;
	dp->sk_msg_link_fd = -1;
	snprintf(dp->bpffs_dir, sizeof(dp->bpffs_dir), "%s", o->bpffs_dir);
	libbpf_set_print(libbpf_print);

	err = bpffs_prepare(dp);
	if (err)
		goto fail;
	snprintf(maps_dir, sizeof(maps_dir), "%s/" SHUNT_PIN_MAPS, dp->bpffs_dir);
	snprintf(links_dir, sizeof(links_dir), "%s/" SHUNT_PIN_LINKS, dp->bpffs_dir);
	unpin_dir(links_dir, true);
	unpin_dir(maps_dir, true);
	if (mkdir(maps_dir, 0700) || mkdir(links_dir, 0700)) {
		err = -errno;
		pr_err("cannot create pin directories under %s: %m", dp->bpffs_dir);
		goto fail;
	}
	dp->cgroup_fd = open(o->cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dp->cgroup_fd < 0) {
		err = -errno;
		pr_err("cannot open --cgroup %s: %m", o->cgroup_path);
		goto fail;
	}
	err = load_all(dp, o, maps_dir);
	if (!err)
		err = write_port_policy(dp, o);
	if (!err) {
		/* Counters nobody can attribute to a pod land in key 0. */
		static struct shunt_counters zero[512];
		__u64 key = 0;
		int ncpu = libbpf_num_possible_cpus();

		if (ncpu > 0 && ncpu <= 512 &&
		    bpf_map_update_elem(dp->fd.stats, &key, zero, BPF_NOEXIST))
			err = -errno;
	}
	if (!err)
		err = attach_all(dp, o);
	if (err)
		goto fail;
	return 0;
fail:
	dp_close(dp);
	return err;
}

struct bpf_link *dp_attach_sk_lookup(struct datapath *dp, int netns_fd, __u64 cookie)
{
	struct bpf_link *link;
	char name[64];

	link = bpf_program__attach_netns(dp->sk_lookup->progs.shunt_sk_lookup, netns_fd);
	if (!link)
		return NULL;
	snprintf(name, sizeof(name), "sk_lookup-%llu", (unsigned long long)cookie);
	if (pin_link(dp, link, name)) {
		bpf_link__destroy(link);
		return NULL;
	}
	return link;
}

void dp_detach_sk_lookup(struct datapath *dp, struct bpf_link *link, __u64 cookie)
{
	if (!link)
		return;
	bpf_link__unpin(link);
	bpf_link__destroy(link);
}

void dp_close(struct datapath *dp)
{
	char dir[PATH_MAX];

	for (int i = 0; i < DP__CGROUP_MAX; i++) {
		if (!dp->cg_links[i])
			continue;
		bpf_link__unpin(dp->cg_links[i]);
		bpf_link__destroy(dp->cg_links[i]);
		dp->cg_links[i] = NULL;
	}
	if (dp->sk_msg_link_fd >= 0) {
		char path[PATH_MAX];

		dp_link_path(dp->bpffs_dir, "sk_msg", path, sizeof(path));
		unlink(path);
		close(dp->sk_msg_link_fd);
		dp->sk_msg_link_fd = -1;
	} else if (dp->sk_msg_attached) {
		bpf_prog_detach2(bpf_program__fd(dp->sk_msg->progs.shunt_sk_msg), dp->fd.sock_pairs,
				 BPF_SK_MSG_VERDICT);
	}
	dp->sk_msg_attached = false;
	/* Unpin the maps (libbpf pinned them by name) before dropping our fds. */
	if (dp->connect) {
		struct bpf_map *m;

		bpf_object__for_each_map(m, dp->connect->obj) if (bpf_map__is_pinned(m))
			bpf_map__unpin(m, NULL);
	}
	shunt_sk_lookup__destroy(dp->sk_lookup);
	shunt_sk_msg__destroy(dp->sk_msg);
	shunt_sockops__destroy(dp->sockops);
	shunt_sockopt__destroy(dp->sockopt);
	shunt_connect__destroy(dp->connect);
	dp->sk_lookup = NULL;
	dp->sk_msg = NULL;
	dp->sockops = NULL;
	dp->sockopt = NULL;
	dp->connect = NULL;
	if (dp->cgroup_fd >= 0)
		close(dp->cgroup_fd);
	dp->cgroup_fd = -1;
	if (dp->bpffs_dir[0]) {
		snprintf(dir, sizeof(dir), "%s/" SHUNT_PIN_LINKS, dp->bpffs_dir);
		unpin_dir(dir, false);
		snprintf(dir, sizeof(dir), "%s/" SHUNT_PIN_MAPS, dp->bpffs_dir);
		unpin_dir(dir, false);
	}
	if (dp->mount_point[0]) {
		if (umount2(dp->mount_point, MNT_DETACH))
			pr_warn("cannot unmount %s: %m", dp->mount_point);
		dp->mount_point[0] = '\0';
	}
	if (dp->bpffs_dir[0])
		rmdir(dp->bpffs_dir);
}
