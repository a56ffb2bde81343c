/* shuntctl: inspect and steer shunt. Reads pinned BPF maps directly (so it works while shuntd is
 * down) and talks to shuntd's admin socket for changes. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/config_dump.h"
#include "agent/counters.h"
#include "agent/datapath.h"
#include "iptables/cli.h"
#include "lib/addr.h"
#include "lib/json.h"
#include "lib/strbuf.h"

#define EXIT_FAIL  1
#define EXIT_USAGE 2

struct ctl {
	const char *run_dir;
	const char *bpffs_dir;
	bool json;
};

static void usage(FILE *f)
{
	fputs("usage: shuntctl [--run-dir DIR] [--bpffs-dir DIR] [-o table|json] COMMAND\n"
	      "commands:\n"
	      "  status              programs, maps, shuntd and enrolled pods at a glance\n"
	      "  workloads           enrolled pods (from the pinned maps)\n"
	      "  services            kernel service LB: VIP:port, cluster, generation, backends\n"
	      "  conns               redirected connections in flight (from the pinned maps)\n"
	      "  stats               per-pod kernel counters, and proxy counters if shuntd runs\n"
	      "  enroll --pid PID    enroll the pod whose netns PID lives in\n"
	      "  unenroll --pid PID  take it out of the mesh (until enrolled again)\n"
	      "  log-level LEVEL     set shuntd's log level: error, warn, info, debug\n"
	      "  config dump [--type T]  the active configuration as Envoy's /config_dump\n"
	      "                      (T: " CONFIG_DUMP_TYPES ")\n"
	      "  iptables render|apply|clean [--pid PID] [settings]\n"
	      "                      Istio's capture rules (see shuntctl iptables --help)\n",
	      f);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("shuntctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	return EXIT_USAGE;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("shuntctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAIL;
}

/* ---- pinned maps ---------------------------------------------------------------------------- */

static int map_open(const struct ctl *c, const char *name)
{
	char path[PATH_MAX];

	dp_map_path(c->bpffs_dir, name, path, sizeof(path));
	return bpf_obj_get(path);
}

static int maps_or_fail(const struct ctl *c, const char *name, int *fd)
{
	*fd = map_open(c, name);
	if (*fd < 0)
		return fail("cannot open pinned map %s under %s/maps: %s (is shunt running with "
			    "--bpffs-dir %s?)",
			    name, c->bpffs_dir, strerror(errno), c->bpffs_dir);
	return 0;
}

static int map_count(int fd)
{
	struct bpf_map_info info = {0};
	__u32 len = sizeof(info);
	char key[256], next[256];
	void *prev = NULL;
	int n = 0;

	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.key_size > sizeof(key))
		return -1;
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, info.key_size);
		prev = key;
		n++;
	}
	return n;
}

/* ---- shuntd over the admin socket ------------------------------------------------------------ */

/* Sends one request; fills body and returns the HTTP status, or -errno if shuntd is not
 * reachable. */
static int admin_call(const struct ctl *c, const char *method, const char *path,
		      struct strbuf *body)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char req[512], buf[4096];
	struct strbuf raw = {0};
	int fd, status = -EPROTO;
	ssize_t n;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/admin.sock", c->run_dir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		int err = -errno;

		close(fd);
		return err;
	}
	snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\n\r\n", method, path);
	if (write(fd, req, strlen(req)) < 0) {
		close(fd);
		return -errno;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		strbuf_add(&raw, buf, (size_t)n);
	close(fd);
	const char *s = strbuf_str(&raw), *hdr_end = strstr(s, "\r\n\r\n");

	if (sscanf(s, "HTTP/1.%*d %d", &status) == 1 && hdr_end)
		strbuf_adds(body, hdr_end + 4);
	else
		status = -EPROTO;
	strbuf_release(&raw);
	return status;
}

/* Is a shuntd holding the run dir's lock? Returns its pid or 0. */
static int shuntd_pid(const struct ctl *c)
{
	char path[PATH_MAX], buf[32] = "";
	int fd, pid = 0;

	snprintf(path, sizeof(path), "%s/shuntd.pid", c->run_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) && errno == EWOULDBLOCK) {
		if (read(fd, buf, sizeof(buf) - 1) > 0)
			pid = atoi(buf);
		if (pid <= 0)
			pid = -1;
	}
	close(fd);
	return pid;
}

/* ---- commands -------------------------------------------------------------------------------- */

struct pod_row {
	__u64 netns;
	struct shunt_pod pod;
	struct shunt_counters c;
};

static int read_pods(const struct ctl *c, struct pod_row **rows, int *n)
{
	int mesh, stats, cap = 0;
	__u64 key, next;
	void *prev = NULL;

	*rows = NULL;
	*n = 0;
	if (maps_or_fail(c, "mesh_netns", &mesh) || maps_or_fail(c, "stats", &stats))
		return EXIT_FAIL;
	while (bpf_map_get_next_key(mesh, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			*rows = realloc(*rows, (size_t)cap * sizeof(**rows));
			if (!*rows)
				return fail("out of memory");
		}
		struct pod_row *r = &(*rows)[*n];

		memset(r, 0, sizeof(*r));
		r->netns = key;
		if (pod_entry_read(mesh, key, &r->pod))
			continue;
		counters_read(stats, key, &r->c);
		(*n)++;
	}
	close(mesh);
	close(stats);
	return 0;
}

static void addr_or_dash(const struct shunt_addr *a, char *buf, size_t len)
{
	static const struct shunt_addr zero;

	if (memcmp(a, &zero, sizeof(zero)) == 0)
		snprintf(buf, len, "-");
	else
		addr_fmt(a, buf, len);
}

static int cmd_workloads(const struct ctl *c)
{
	struct pod_row *rows;
	int n, err = read_pods(c, &rows, &n);
	struct strbuf sb = {0};
	struct json_writer w;

	if (err)
		return err;
	if (c->json) {
		jw_init(&w, &sb, true);
		jw_arr_begin(&w);
	} else {
		printf("%-24s %-8s %-16s %-26s %-20s %10s %10s\n", "POD", "PID", "IPV4", "IPV6",
		       "NETNS COOKIE", "OUT", "IN");
	}
	for (int i = 0; i < n; i++) {
		char a4[ADDR_STRLEN], a6[ADDR_STRLEN];
		struct pod_row *r = &rows[i];

		addr_or_dash(&r->pod.addr4, a4, sizeof(a4));
		addr_or_dash(&r->pod.addr6, a6, sizeof(a6));
		if (!c->json) {
			printf("%-24s %-8u %-16s %-26s %-20llu %10llu %10llu\n", r->pod.name,
			       r->pod.pid, a4, a6, (unsigned long long)r->netns,
			       (unsigned long long)r->c.v[SHUNT_STAT_CONNECT_REDIRECTED],
			       (unsigned long long)r->c.v[SHUNT_STAT_INBOUND_STEERED]);
			continue;
		}
		jw_obj_begin(&w);
		jw_key(&w, "name");
		jw_str(&w, r->pod.name);
		jw_key(&w, "pid");
		jw_u64(&w, r->pod.pid);
		jw_key(&w, "ipv4");
		jw_str(&w, a4);
		jw_key(&w, "ipv6");
		jw_str(&w, a6);
		jw_key(&w, "netns_cookie");
		jw_u64(&w, r->netns);
		jw_key(&w, "cgroup_id");
		jw_u64(&w, r->pod.cgroup_id);
		jw_key(&w, "fail_closed");
		jw_bool(&w, r->pod.flags & SHUNT_POD_F_FAIL_CLOSED);
		jw_key(&w, "sockmap");
		jw_bool(&w, !(r->pod.flags & SHUNT_POD_F_NO_SOCKMAP));
		jw_key(&w, "connections_redirected_out");
		jw_u64(&w, r->c.v[SHUNT_STAT_CONNECT_REDIRECTED]);
		jw_key(&w, "connections_redirected_in");
		jw_u64(&w, r->c.v[SHUNT_STAT_INBOUND_STEERED]);
		jw_obj_end(&w);
	}
	if (c->json) {
		jw_arr_end(&w);
		printf("%s\n", strbuf_str(&sb));
	}
	strbuf_release(&sb);
	free(rows);
	return 0;
}

/* One service's distinct backends and how many of its slots each holds (its weight). */
struct svc_backend_row {
	struct shunt_svc_backend be;
	unsigned slots;
};

static int svc_backends(int slots_fd, const struct shunt_svc *v, struct svc_backend_row *out)
{
	int n = 0;

	for (__u32 i = 0; i < v->count && i < SHUNT_SVC_MAX_SLOTS; i++) {
		struct shunt_svc_slot_key k = {.id = v->id, .generation = v->generation, .slot = i};
		struct shunt_svc_backend be;
		int j;

		if (bpf_map_lookup_elem(slots_fd, &k, &be))
			continue;
		for (j = 0; j < n; j++)
			if (memcmp(&out[j].be, &be, sizeof(be)) == 0)
				break;
		if (j == n) {
			out[n].be = be;
			out[n++].slots = 0;
		}
		out[j].slots++;
	}
	return n;
}

static int cmd_services(const struct ctl *c)
{
	static struct svc_backend_row rows[SHUNT_SVC_MAX_SLOTS];
	struct shunt_svc_key key, next;
	struct strbuf sb = {0};
	struct json_writer w;
	int svc, slots;
	void *prev = NULL;

	if (maps_or_fail(c, "services", &svc))
		return EXIT_FAIL;
	if (maps_or_fail(c, "service_slots", &slots)) {
		close(svc);
		return EXIT_FAIL;
	}
	if (c->json) {
		jw_init(&w, &sb, true);
		jw_arr_begin(&w);
	} else {
		printf("%-28s %-40s %6s %5s %-9s %s\n", "SERVICE", "CLUSTER", "GEN", "SLOTS",
		       "KERNEL-LB", "BACKENDS");
	}
	while (bpf_map_get_next_key(svc, prev, &next) == 0) {
		char vip[ADDR_STRLEN + 8], be[ADDR_STRLEN + 8];
		struct shunt_svc v;
		int n;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(svc, &key, &v))
			continue;
		addr_port_fmt(&key.vip, key.port, vip, sizeof(vip));
		n = svc_backends(slots, &v, rows);
		if (!c->json) {
			printf("%-28s %-40s %6u %5u %-9s", vip, v.cluster, v.generation, v.count,
			       v.flags & SHUNT_SVC_F_KERNEL_LB ? "yes" : "no");
			for (int i = 0; i < n; i++)
				printf("%s%s", i ? "," : " ",
				       addr_port_fmt(&rows[i].be.addr, rows[i].be.port, be,
						     sizeof(be)));
			printf("%s\n", n ? "" : " -");
			continue;
		}
		jw_obj_begin(&w);
		jw_key(&w, "service");
		jw_str(&w, vip);
		jw_key(&w, "protocol");
		jw_str(&w, key.proto == IPPROTO_TCP ? "tcp" : "other");
		jw_key(&w, "cluster");
		jw_str(&w, v.cluster);
		jw_key(&w, "id");
		jw_u64(&w, v.id);
		jw_key(&w, "generation");
		jw_u64(&w, v.generation);
		jw_key(&w, "slots");
		jw_u64(&w, v.count);
		jw_key(&w, "kernel_lb");
		jw_bool(&w, v.flags & SHUNT_SVC_F_KERNEL_LB);
		jw_key(&w, "backends");
		jw_arr_begin(&w);
		for (int i = 0; i < n; i++) {
			jw_obj_begin(&w);
			jw_key(&w, "address");
			jw_str(&w,
			       addr_port_fmt(&rows[i].be.addr, rows[i].be.port, be, sizeof(be)));
			jw_key(&w, "slots");
			jw_u64(&w, rows[i].slots);
			jw_obj_end(&w);
		}
		jw_arr_end(&w);
		jw_obj_end(&w);
	}
	close(svc);
	close(slots);
	if (c->json) {
		jw_arr_end(&w);
		printf("%s\n", strbuf_str(&sb));
	}
	strbuf_release(&sb);
	return 0;
}

static void json_counters(struct json_writer *w, const struct shunt_counters *cn)
{
	jw_obj_begin(w);
	for (int s = 0; s < SHUNT_STAT__MAX; s++) {
		jw_key(w, counter_name(s));
		jw_u64(w, cn->v[s]);
	}
	jw_obj_end(w);
}

static void json_kernel(struct json_writer *w, const struct shunt_counters *total,
			const struct shunt_counters *unattributed, const struct pod_row *rows,
			int n)
{
	jw_obj_begin(w);
	jw_key(w, "total");
	json_counters(w, total);
	jw_key(w, "unattributed");
	json_counters(w, unattributed);
	jw_key(w, "pods");
	jw_obj_begin(w);
	for (int i = 0; i < n; i++) {
		jw_key(w, rows[i].pod.name);
		json_counters(w, &rows[i].c);
	}
	jw_obj_end(w);
	jw_obj_end(w);
}

static int cmd_stats(const struct ctl *c)
{
	struct shunt_counters unattributed = {0}, total = {0};
	struct strbuf proxy = {0}, sb = {0};
	struct pod_row *rows;
	struct json_writer w;
	int n = 0, stats, st, err;
	/* With iptables capture only, shuntd pins no maps: there are proxy counters alone. */
	bool kernel = true;

	rows = NULL;
	stats = map_open(c, "stats");
	if (stats < 0 && shuntd_pid(c) > 0) {
		kernel = false;
	} else {
		if (stats >= 0)
			close(stats);
		err = read_pods(c, &rows, &n);
		if (err)
			return err;
		if (maps_or_fail(c, "stats", &stats)) {
			free(rows);
			return EXIT_FAIL;
		}
		counters_read(stats, 0, &unattributed);
		close(stats);
	}
	for (int i = 0; i < n; i++)
		for (int s = 0; s < SHUNT_STAT__MAX; s++)
			total.v[s] += rows[i].c.v[s];
	for (int s = 0; s < SHUNT_STAT__MAX; s++)
		total.v[s] += unattributed.v[s];
	st = admin_call(c, "GET", c->json ? "/stats?format=json" : "/stats", &proxy);

	if (c->json) {
		jw_init(&w, &sb, true);
		jw_obj_begin(&w);
		jw_key(&w, "kernel");
		if (kernel)
			json_kernel(&w, &total, &unattributed, rows, n);
		else
			jw_null(&w);
		jw_key(&w, "proxy");
		if (st == 200) {
			jw_raw(&w, strbuf_str(&proxy));
		} else {
			jw_null(&w);
		}
		jw_obj_end(&w);
		printf("%s\n", strbuf_str(&sb));
	} else if (!kernel) {
		printf("(no kernel counters: shuntd captures with iptables only)\n");
	} else {
		printf("%-24s", "COUNTER");
		printf(" %14s", "TOTAL");
		for (int i = 0; i < n; i++)
			printf(" %14.14s", rows[i].pod.name);
		printf("\n");
		for (int s = 0; s < SHUNT_STAT__MAX; s++) {
			printf("%-24s %14llu", counter_name(s), (unsigned long long)total.v[s]);
			for (int i = 0; i < n; i++)
				printf(" %14llu", (unsigned long long)rows[i].c.v[s]);
			printf("\n");
		}
		if (st == 200)
			printf("\n%s", strbuf_str(&proxy));
		else
			printf("\n(proxy counters unavailable: shuntd is not answering on "
			       "%s/admin.sock)\n",
			       c->run_dir);
	}
	strbuf_release(&sb);
	strbuf_release(&proxy);
	free(rows);
	return 0;
}

static int cmd_conns(const struct ctl *c)
{
	struct shunt_sock_key key, next;
	struct shunt_orig_dst od;
	struct strbuf sb = {0};
	struct json_writer w;
	void *prev = NULL;
	int fd, mesh;

	if (maps_or_fail(c, "orig_dst_by_tuple", &fd) || maps_or_fail(c, "mesh_netns", &mesh))
		return EXIT_FAIL;
	if (c->json) {
		jw_init(&w, &sb, true);
		jw_arr_begin(&w);
	} else {
		printf("%-24s %-28s %-28s\n", "POD", "APP SOCKET", "ORIGINAL DESTINATION");
	}
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		char app[ADDR_STRLEN], dst[ADDR_STRLEN];
		struct shunt_pod pod;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &od))
			continue;
		if (pod_entry_read(mesh, key.netns, &pod))
			snprintf(pod.name, sizeof(pod.name), "netns-%llu",
				 (unsigned long long)key.netns);
		addr_port_fmt(&key.local, (__u16)key.local_port, app, sizeof(app));
		addr_port_fmt(&od.addr, od.port, dst, sizeof(dst));
		if (!c->json) {
			printf("%-24s %-28s %-28s\n", pod.name, app, dst);
			continue;
		}
		jw_obj_begin(&w);
		jw_key(&w, "pod");
		jw_str(&w, pod.name);
		jw_key(&w, "netns_cookie");
		jw_u64(&w, key.netns);
		jw_key(&w, "app");
		jw_str(&w, app);
		jw_key(&w, "original_destination");
		jw_str(&w, dst);
		jw_obj_end(&w);
	}
	if (c->json) {
		jw_arr_end(&w);
		printf("%s\n", strbuf_str(&sb));
	}
	strbuf_release(&sb);
	close(fd);
	close(mesh);
	return 0;
}

/* Pinned links, with what each is attached to. */
static void status_links(const struct ctl *c, struct json_writer *w, int *nlinks)
{
	char dir[PATH_MAX], path[PATH_MAX + 256];
	struct dirent *de;
	DIR *d;

	*nlinks = 0;
	snprintf(dir, sizeof(dir), "%s/links", c->bpffs_dir);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		struct bpf_link_info info = {0};
		__u32 len = sizeof(info);
		int fd;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		bpf_obj_get_info_by_fd(fd, &info, &len);
		close(fd);
		(*nlinks)++;
		if (w) {
			jw_obj_begin(w);
			jw_key(w, "link");
			jw_str(w, de->d_name);
			jw_key(w, "id");
			jw_u64(w, info.id);
			jw_key(w, "prog_id");
			jw_u64(w, info.prog_id);
			jw_obj_end(w);
		} else {
			printf("  %-28s link %-6u prog %u\n", de->d_name, info.id, info.prog_id);
		}
	}
	closedir(d);
}

static int cmd_status(const struct ctl *c)
{
	static const char *const maps[] = {
#define CTL_MAP_NAME(name) #name,
		DP_MAPS(CTL_MAP_NAME)
#undef CTL_MAP_NAME
	};
	int pid = shuntd_pid(c), nlinks, npods = 0;
	struct strbuf sb = {0}, st = {0};
	struct json_writer w;

	if (c->json) {
		jw_init(&w, &sb, true);
		jw_obj_begin(&w);
		jw_key(&w, "shuntd");
		jw_obj_begin(&w);
		jw_key(&w, "running");
		jw_bool(&w, pid != 0);
		jw_key(&w, "pid");
		jw_i64(&w, pid > 0 ? pid : 0);
		jw_key(&w, "status");
		if (pid && admin_call(c, "GET", "/status", &st) == 200)
			jw_raw(&w, strbuf_str(&st));
		else
			jw_null(&w);
		jw_obj_end(&w);
		jw_key(&w, "links");
		jw_arr_begin(&w);
		status_links(c, &w, &nlinks);
		jw_arr_end(&w);
		jw_key(&w, "maps");
		jw_obj_begin(&w);
	} else {
		if (pid)
			printf("shuntd: running (pid %d, run dir %s)\n", pid, c->run_dir);
		else
			printf("shuntd: not running (run dir %s)\n", c->run_dir);
		printf("links pinned under %s/links:\n", c->bpffs_dir);
		status_links(c, NULL, &nlinks);
		if (!nlinks)
			printf("  (none)\n");
		printf("maps pinned under %s/maps:\n", c->bpffs_dir);
	}
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		int fd = map_open(c, maps[i]);
		int n = fd >= 0 ? map_count(fd) : -1;

		if (fd >= 0)
			close(fd);
		if (i == 0 && n > 0)
			npods = n;
		if (c->json) {
			jw_key(&w, maps[i]);
			if (n < 0)
				jw_null(&w);
			else
				jw_i64(&w, n);
		} else {
			if (n < 0)
				printf("  %-20s not pinned\n", maps[i]);
			else
				printf("  %-20s %d entries\n", maps[i], n);
		}
	}
	if (c->json) {
		jw_obj_end(&w);
		jw_key(&w, "pods_enrolled");
		jw_i64(&w, npods);
		jw_obj_end(&w);
		printf("%s\n", strbuf_str(&sb));
	} else {
		printf("pods enrolled: %d\n", npods);
	}
	strbuf_release(&sb);
	strbuf_release(&st);
	/* Status is informational: a stopped shunt is a valid answer, not a failure. */
	return 0;
}

/* config dump [--type T]: shuntd's /config_dump, Envoy's ConfigDump as proto3 JSON. */
static int cmd_config(const struct ctl *c, int argc, char **argv)
{
	struct strbuf body = {0};
	char path[128] = "/config_dump";
	int st;

	if (argc < 2 || strcmp(argv[1], "dump") != 0)
		return usage_error("config needs dump [--type T]");
	if (argc == 4 && strcmp(argv[2], "--type") == 0) {
		if (strspn(argv[3], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.") !=
			    strlen(argv[3]) ||
		    strlen(argv[3]) > 64)
			return usage_error("--type: \"%s\" is not one of " CONFIG_DUMP_TYPES,
					   argv[3]);
		snprintf(path, sizeof(path), "/config_dump?type=%s", argv[3]);
	} else if (argc != 2) {
		return usage_error("config dump takes only --type T (" CONFIG_DUMP_TYPES ")");
	}
	st = admin_call(c, "GET", path, &body);
	if (st < 0) {
		strbuf_release(&body);
		return fail("shuntd is not answering on %s/admin.sock: %s", c->run_dir,
			    strerror(-st));
	}
	if (st != 200) {
		fprintf(stderr, "shuntctl: config dump: %s", strbuf_str(&body));
		strbuf_release(&body);
		return st == 400 ? EXIT_USAGE : EXIT_FAIL;
	}
	fputs(strbuf_str(&body), stdout);
	strbuf_release(&body);
	return 0;
}

static int cmd_post(const struct ctl *c, const char *path, const char *what)
{
	struct strbuf body = {0};
	int st = admin_call(c, "POST", path, &body);

	if (st < 0) {
		strbuf_release(&body);
		return fail("shuntd is not answering on %s/admin.sock: %s", c->run_dir,
			    strerror(-st));
	}
	if (st != 200) {
		int r = fail("%s failed (HTTP %d): %s", what, st, strbuf_str(&body));

		strbuf_release(&body);
		return r;
	}
	if (c->json)
		printf("%s", strbuf_str(&body));
	else
		printf("%s: ok\n", what);
	strbuf_release(&body);
	return 0;
}

static int cmd_pid(const struct ctl *c, int argc, char **argv, const char *path)
{
	char req[64], what[64], *end;
	long pid;

	if (argc != 3 || strcmp(argv[1], "--pid") != 0)
		return usage_error("%s needs --pid PID", argv[0]);
	pid = strtol(argv[2], &end, 10);
	if (*end || pid <= 0 || pid > INT_MAX)
		return usage_error("--pid: \"%s\" is not a process id", argv[2]);
	if (kill((pid_t)pid, 0) && errno == ESRCH)
		return fail("--pid %ld: no such process", pid);
	snprintf(req, sizeof(req), "%s?pid=%ld", path, pid);
	snprintf(what, sizeof(what), "%s pid %ld", argv[0], pid);
	return cmd_post(c, req, what);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"run-dir", required_argument, NULL, 'r'},
		{"bpffs-dir", required_argument, NULL, 'b'},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct ctl c = {.run_dir = "/run/shunt", .bpffs_dir = "/sys/fs/bpf/shunt"};
	const char *cmd;
	int opt;

	libbpf_set_print(NULL);
	opterr = 0;
	/* Options stop at the command; commands parse their own arguments. */
	while ((opt = getopt_long(argc, argv, "+o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'r':
			c.run_dir = optarg;
			break;
		case 'b':
			c.bpffs_dir = optarg;
			break;
		case 'o':
			if (strcmp(optarg, "json") == 0)
				c.json = true;
			else if (strcmp(optarg, "table") != 0)
				return usage_error("-o: must be table or json");
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return usage_error("unknown or incomplete option %s", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("missing command");
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	if (strcmp(cmd, "iptables") == 0)
		return ipt_cli_main(argc, argv); /* exits 0, 1 or 2 like the other commands */
	/* "-o json" may also follow the command. */
	if (argc >= 3 && strcmp(argv[argc - 2], "-o") == 0) {
		if (strcmp(argv[argc - 1], "json") == 0)
			c.json = true;
		else if (strcmp(argv[argc - 1], "table") != 0)
			return usage_error("-o: must be table or json");
		argc -= 2;
	}
	if (strcmp(cmd, "status") == 0 && argc == 1)
		return cmd_status(&c);
	if (strcmp(cmd, "workloads") == 0 && argc == 1)
		return cmd_workloads(&c);
	if (strcmp(cmd, "services") == 0 && argc == 1)
		return cmd_services(&c);
	if (strcmp(cmd, "conns") == 0 && argc == 1)
		return cmd_conns(&c);
	if (strcmp(cmd, "stats") == 0 && argc == 1)
		return cmd_stats(&c);
	if (strcmp(cmd, "config") == 0)
		return cmd_config(&c, argc, argv);
	if (strcmp(cmd, "enroll") == 0)
		return cmd_pid(&c, argc, argv, "/enroll");
	if (strcmp(cmd, "unenroll") == 0)
		return cmd_pid(&c, argc, argv, "/unenroll");
	if (strcmp(cmd, "log-level") == 0) {
		char path[64];

		if (argc != 2)
			return usage_error("log-level needs LEVEL");
		if (strcmp(argv[1], "error") && strcmp(argv[1], "warn") &&
		    strcmp(argv[1], "info") && strcmp(argv[1], "debug"))
			return usage_error("log-level: \"%s\" is not error, warn, info or debug",
					   argv[1]);
		snprintf(path, sizeof(path), "/logging?level=%s", argv[1]);
		return cmd_post(&c, path, "log-level");
	}
	return usage_error("unknown command or arguments: %s", cmd);
}
