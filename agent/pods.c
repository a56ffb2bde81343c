/* Pod enrollment: in-pod listeners (setns), addresses (libnl), BPF map entries, sk_lookup, or
 * Istio's iptables rules where eBPF does not capture. */
#include "agent/pods.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/datapath.h"
#include "iptables/apply.h"
#include "lib/addr.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/netns.h"
#include "proxy/proxy.h"

#define LISTEN_BACKLOG 4096

enum {
	L_OUT4,
	L_OUT6,
	L_IN4,
	L_IN6,
	L__MAX
};

void pods_init(struct pods *ps, struct datapath *dp, struct proxy *proxy, __u32 pod_flags,
	       const struct pods_capture *cap)
{
	memset(ps, 0, sizeof(*ps));
	list_init(&ps->list);
	ps->dp = dp;
	ps->proxy = proxy;
	ps->pod_flags = pod_flags;
	ps->cap = *cap;
	if (cap->ipt && cap->state_dir && mkdir(cap->state_dir, 0700) && errno != EEXIST)
		pr_warn("cannot create %s: %m (rules left by a crash will not be adopted)",
			cap->state_dir);
	if (netns_ino_of_pid(getpid(), &ps->own_netns_ino))
		pr_warn("cannot read shuntd's own netns: %m");
}

struct pod *pods_find_ino(struct pods *ps, __u64 netns_ino)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &ps->list) {
		struct pod *p = list_entry(pos, struct pod, node);

		if (p->netns_ino == netns_ino)
			return p;
	}
	return NULL;
}

struct pod *pods_find_id(struct pods *ps, __u64 id)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &ps->list) {
		struct pod *p = list_entry(pos, struct pod, node);

		if (p->id == id)
			return p;
	}
	return NULL;
}

bool pods_is_excluded(const struct pods *ps, __u64 netns_ino)
{
	for (int i = 0; i < ps->nexcluded; i++)
		if (ps->excluded[i] == netns_ino)
			return true;
	return false;
}

static void excluded_set(struct pods *ps, __u64 ino, bool on)
{
	for (int i = 0; i < ps->nexcluded; i++) {
		if (ps->excluded[i] != ino)
			continue;
		if (!on)
			ps->excluded[i] = ps->excluded[--ps->nexcluded];
		return;
	}
	if (on && ps->nexcluded < POD_MAX_EXCLUDED)
		ps->excluded[ps->nexcluded++] = ino;
}

/* ---- work done inside the pod's netns ----------------------------------------------------- */

static int listen_on(const char *ip, __u16 port)
{
	struct shunt_addr a;

	addr_parse(&a, ip);
	return sock_listen(&a, port, LISTEN_BACKLOG);
}

/* Global addresses of the pod's interfaces (not lo), in the order the kernel lists them. */
static int read_addrs(struct nl_sock *nl, struct pod *p)
{
	struct nl_cache *cache;
	struct nl_object *obj;

	if (rtnl_addr_alloc_cache(nl, &cache))
		return -EIO;
	for (obj = nl_cache_get_first(cache); obj; obj = nl_cache_get_next(obj)) {
		struct rtnl_addr *ra = (struct rtnl_addr *)obj;
		struct nl_addr *local = rtnl_addr_get_local(ra);
		int family = rtnl_addr_get_family(ra);

		if (!local || rtnl_addr_get_scope(ra) != RT_SCOPE_UNIVERSE)
			continue;
		if (p->naddrs >= POD_MAX_ADDRS)
			break;
		if (family == AF_INET)
			addr_from_v4(&p->addrs[p->naddrs++], nl_addr_get_binary_addr(local));
		else if (family == AF_INET6) {
			addr_from_v6(&p->addrs[p->naddrs++], nl_addr_get_binary_addr(local));
			p->has_v6 = true;
		}
	}
	nl_cache_free(cache);
	return 0;
}

/* Adds or removes ::6/128 on lo: the source of the proxy's IPv6 connections to the app. */
static int inbound_src6(struct nl_sock *nl, bool add)
{
	struct rtnl_addr *ra = rtnl_addr_alloc();
	struct nl_addr *a = NULL;
	int err;

	if (!ra)
		return -ENOMEM;
	err = nl_addr_parse("::6/128", AF_INET6, &a);
	if (!err) {
		rtnl_addr_set_ifindex(ra, 1); /* lo is ifindex 1 in every netns */
		rtnl_addr_set_family(ra, AF_INET6);
		rtnl_addr_set_local(ra, a);
		rtnl_addr_set_flags(ra, IFA_F_NODAD);
		err = add ? rtnl_addr_add(nl, ra, 0) : rtnl_addr_delete(nl, ra, 0);
	}
	if (a)
		nl_addr_put(a);
	rtnl_addr_put(ra);
	if (err == -NLE_EXIST)
		return -EEXIST;
	return err ? -EIO : 0;
}

/* One trip into the netns: cookie, addresses, ::6, listeners. */
static int pod_setup_in_netns(struct pods *ps, struct pod *p, int fds[L__MAX])
{
	struct netns_saved saved;
	struct nl_sock *nl = NULL;
	int err;

	err = netns_enter(p->netns_fd, &saved);
	if (err)
		return err;
	err = netns_cookie_current(&p->netns_cookie);
	if (err && !ps->dp) {
		/* Before Linux 5.14 there are no netns cookies; without eBPF nothing needs them
		 * but the proxy's bookkeeping, for which the inode number is as unique. */
		p->netns_cookie = p->netns_ino;
		err = 0;
	}
	if (err)
		goto out;
	nl = nl_socket_alloc();
	if (!nl || nl_connect(nl, NETLINK_ROUTE)) {
		err = -EIO;
		goto out;
	}
	err = read_addrs(nl, p);
	if (err)
		goto out;
	if (p->has_v6) {
		int e = inbound_src6(nl, true);

		if (e == 0)
			p->added_inbound_src6 = true;
		else if (e != -EEXIST)
			pr_warn("pod %s: cannot add ::6 to lo (IPv6 inbound will fail): %s",
				p->name, strerror(-e));
	}
	fds[L_OUT4] = listen_on("127.0.0.1", SHUNT_PORT_OUTBOUND);
	fds[L_OUT6] = listen_on("::1", SHUNT_PORT_OUTBOUND);
	fds[L_IN4] = listen_on("0.0.0.0", SHUNT_PORT_INBOUND);
	fds[L_IN6] = p->has_v6 ? listen_on("::", SHUNT_PORT_INBOUND) : -1;
	if (fds[L_OUT4] < 0) {
		err = fds[L_OUT4];
		pr_warn("pod %s: cannot listen on 127.0.0.1:%d: %s", p->name, SHUNT_PORT_OUTBOUND,
			strerror(-err));
		goto out;
	}
	if (fds[L_IN4] < 0) {
		err = fds[L_IN4];
		pr_warn("pod %s: cannot listen on 0.0.0.0:%d: %s", p->name, SHUNT_PORT_INBOUND,
			strerror(-err));
		goto out;
	}
	err = 0;
out:
	if (nl)
		nl_socket_free(nl);
	netns_leave(&saved);
	return err;
}

static void remove_src6(int netns_fd)
{
	struct netns_saved saved;
	struct nl_sock *nl;

	if (netns_enter(netns_fd, &saved))
		return;
	nl = nl_socket_alloc();
	if (nl && nl_connect(nl, NETLINK_ROUTE) == 0)
		inbound_src6(nl, false);
	if (nl)
		nl_socket_free(nl);
	netns_leave(&saved);
}

/* ---- maps ----------------------------------------------------------------------------------- */

static int pod_maps_write(struct pods *ps, struct pod *p, const int fds[L__MAX])
{
	struct datapath *dp = ps->dp;
	struct shunt_pod v = {0};
	int ncpu = libbpf_num_possible_cpus();
	struct shunt_counters *zero;

	if (!dp)
		return 0;
	for (int i = 0; i < p->naddrs; i++) {
		int lfd = addr_is_v4(&p->addrs[i]) ? fds[L_IN4] : fds[L_IN6];
		__u64 lfd64 = (__u64)lfd;

		if (bpf_map_update_elem(dp->fd.pod_by_addr, &p->addrs[i], &p->netns_cookie,
					BPF_ANY))
			return -errno;
		if (lfd >= 0 &&
		    bpf_map_update_elem(dp->fd.inbound_listeners, &p->addrs[i], &lfd64, BPF_ANY))
			return -errno;
	}
	zero = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof(*zero));
	if (!zero)
		return -ENOMEM;
	if (bpf_map_update_elem(dp->fd.stats, &p->netns_cookie, zero, BPF_ANY)) {
		free(zero);
		return -errno;
	}
	free(zero);
	v.cgroup_id = p->cgroup_id;
	v.flags = ps->pod_flags;
	v.pid = (__u32)p->pid;
	for (int i = 0; i < p->naddrs; i++) {
		if (addr_is_v4(&p->addrs[i]) && !v.addr4.ip[2])
			v.addr4 = p->addrs[i];
		else if (!addr_is_v4(&p->addrs[i]) && !v.addr6.ip[0] && !v.addr6.ip[3])
			v.addr6 = p->addrs[i];
	}
	snprintf(v.name, sizeof(v.name), "%s", p->name);
	/* Last: from here on, connect4/6 and sockops treat the netns as enrolled. */
	if (bpf_map_update_elem(dp->fd.mesh_netns, &p->netns_cookie, &v, BPF_ANY))
		return -errno;
	return 0;
}

static void pod_maps_clear(struct pods *ps, struct pod *p)
{
	struct datapath *dp = ps->dp;

	if (!dp)
		return;
	/* First: no new connect is captured for this netns. */
	bpf_map_delete_elem(dp->fd.mesh_netns, &p->netns_cookie);
	for (int i = 0; i < p->naddrs; i++) {
		bpf_map_delete_elem(dp->fd.pod_by_addr, &p->addrs[i]);
		bpf_map_delete_elem(dp->fd.inbound_listeners, &p->addrs[i]);
	}
	bpf_map_delete_elem(dp->fd.stats, &p->netns_cookie);
}

/* ---- iptables ------------------------------------------------------------------------------ */

/* <state_dir>/<netns inode> marks a netns whose ISTIO_* chains are ours, so that a shuntd
 * restarted after a crash takes its own rules over rather than refusing the pod. */
static void ipt_state_path(const struct pods *ps, const struct pod *p, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%llu", ps->cap.state_dir, (unsigned long long)p->netns_ino);
}

static int pod_ipt_apply(struct pods *ps, struct pod *p)
{
	char err[IPT_ERR_MAX * 2], path[PATH_MAX] = "";
	int rc, fd;

	if (ps->cap.state_dir)
		ipt_state_path(ps, p, path, sizeof(path));
	rc = ipt_apply_netns(p->netns_fd, ps->cap.ipt, (enum ipt_backend)ps->cap.ipt_backend, err,
			     sizeof(err));
	if (rc == -EEXIST && path[0] && access(path, F_OK) == 0) {
		pr_info("pod %s: taking over the iptables rules a previous shuntd loaded", p->name);
		rc = ipt_clean_netns(p->netns_fd, ps->cap.ipt,
				     (enum ipt_backend)ps->cap.ipt_backend, err, sizeof(err));
		if (rc == 0)
			rc = ipt_apply_netns(p->netns_fd, ps->cap.ipt,
					     (enum ipt_backend)ps->cap.ipt_backend, err,
					     sizeof(err));
	}
	if (rc) {
		pr_warn("pod %s: cannot load the iptables capture rules: %s%s", p->name, err,
			rc == -EEXIST ? " (an Istio sidecar's? `shuntctl iptables clean --pid` "
					"removes them)"
				      : "");
		return rc;
	}
	p->ipt_applied = true;
	if (path[0]) {
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
	}
	return 0;
}

static void pod_ipt_clean(struct pods *ps, struct pod *p)
{
	char err[IPT_ERR_MAX * 2], path[PATH_MAX];

	if (p->netns_fd < 0)
		return;
	if (ipt_clean_netns(p->netns_fd, ps->cap.ipt, (enum ipt_backend)ps->cap.ipt_backend, err,
			    sizeof(err)))
		pr_warn("pod %s: cannot remove the iptables capture rules: %s", p->name, err);
	else if (ps->cap.state_dir) {
		ipt_state_path(ps, p, path, sizeof(path));
		unlink(path);
	}
	p->ipt_applied = false;
}

/* ---- enroll / unenroll ---------------------------------------------------------------------- */

/* When ::6 leaves the pod: at once when the pod is gone; at shutdown only after the proxy has
 * drained (it may still carry IPv6 connections to the app from ::6); never after an unenroll
 * by hand, where such connections may go on (Istio leaves ::6 in place for good, too). */
enum src6_fate {
	SRC6_REMOVE,
	SRC6_DEFER,
	SRC6_KEEP
};

static void pod_free(struct pods *ps, struct pod *p, enum src6_fate fate)
{
	if (p->ipt_applied)
		pod_ipt_clean(ps, p);
	if (p->sk_lookup)
		dp_detach_sk_lookup(ps->dp, p->sk_lookup, p->netns_cookie);
	p->sk_lookup = NULL;
	if (p->netns_cookie)
		pod_maps_clear(ps, p);
	if (p->pw)
		proxy_workload_remove(ps->proxy, p->pw);
	p->pw = NULL;
	if (p->netns_fd >= 0 && p->added_inbound_src6) {
		if (fate == SRC6_REMOVE) {
			remove_src6(p->netns_fd);
		} else if (fate == SRC6_DEFER) {
			int *grown = realloc(ps->deferred_src6,
					     (size_t)(ps->ndeferred_src6 + 1) * sizeof(int));

			if (grown) {
				ps->deferred_src6 = grown;
				ps->deferred_src6[ps->ndeferred_src6++] = p->netns_fd;
				p->netns_fd = -1; /* the deferred list owns it now */
			}
		}
	}
	if (p->netns_fd >= 0)
		close(p->netns_fd);
	free(p);
}

void pods_release_deferred(struct pods *ps)
{
	for (int i = 0; i < ps->ndeferred_src6; i++) {
		remove_src6(ps->deferred_src6[i]);
		close(ps->deferred_src6[i]);
	}
	free(ps->deferred_src6);
	ps->deferred_src6 = NULL;
	ps->ndeferred_src6 = 0;
}

int pods_enroll(struct pods *ps, pid_t pid, unsigned long long cgroup_id, const char *name,
		bool manual, struct pod **out)
{
	int fds[L__MAX] = {-1, -1, -1, -1};
	struct proxy_workload_desc d = {0};
	__u64 ino;
	struct pod *p;
	char addrs[256] = "";
	int err;

	err = netns_ino_of_pid(pid, &ino);
	if (err)
		return err;
	if (ino == ps->own_netns_ino)
		return -ENOTUNIQ; /* shuntd's own netns (the host's): never a pod */
	if (manual)
		excluded_set(ps, ino, false);
	else if (pods_is_excluded(ps, ino))
		return -EPERM;
	p = pods_find_ino(ps, ino);
	if (p) {
		/* Each cgroup holds a reference; a manual enrollment holds at most one. */
		if (!manual || !p->manual)
			p->refs++;
		p->manual |= manual;
		p->orphan_since = 0;
		if (out)
			*out = p;
		return 0;
	}
	if (ps->count >= SHUNT_MAX_PODS)
		return -ENOSPC;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	list_init(&p->node);
	p->id = ++ps->next_id;
	p->netns_ino = ino;
	p->pid = pid;
	p->cgroup_id = cgroup_id;
	p->manual = manual;
	p->refs = 1;
	p->enrolled_at = (__u64)time(NULL);
	if (name)
		snprintf(p->name, sizeof(p->name), "%s", name);
	else
		snprintf(p->name, sizeof(p->name), "pid-%d", (int)pid);
	p->netns_fd = netns_open_pid(pid);
	if (p->netns_fd < 0) {
		err = p->netns_fd;
		goto fail;
	}
	err = pod_setup_in_netns(ps, p, fds);
	if (err)
		goto fail;
	/* inbound_listeners holds its own reference to the sockets. */
	err = pod_maps_write(ps, p, fds);
	if (err)
		goto fail;
	d.name = p->name;
	d.netns_fd = p->netns_fd;
	d.netns_cookie = p->netns_cookie;
	d.sockmap = !(ps->pod_flags & SHUNT_POD_F_NO_SOCKMAP);
	d.listen_fds[0] = fds[L_OUT4];
	d.kinds[0] = PROXY_LISTENER_OUTBOUND;
	d.listen_fds[1] = fds[L_OUT6];
	d.kinds[1] = PROXY_LISTENER_OUTBOUND;
	d.listen_fds[2] = fds[L_IN4];
	d.kinds[2] = PROXY_LISTENER_INBOUND;
	d.listen_fds[3] = fds[L_IN6];
	d.kinds[3] = PROXY_LISTENER_INBOUND;
	for (int i = 0; i < L__MAX; i++)
		fds[i] = -1; /* the proxy owns them now, even on failure */
	p->pw = proxy_workload_add(ps->proxy, &d);
	if (!p->pw) {
		err = -errno;
		goto fail;
	}
	if (ps->cap.bpf_inbound) {
		p->sk_lookup = dp_attach_sk_lookup(ps->dp, p->netns_fd, p->netns_cookie);
		if (!p->sk_lookup) {
			err = -errno;
			pr_warn("pod %s: cannot attach sk_lookup: %s", p->name, strerror(-err));
			goto fail;
		}
	}
	/* Last, as with mesh_netns: capture starts once the proxy listens. */
	if (ps->cap.ipt) {
		err = pod_ipt_apply(ps, p);
		if (err)
			goto fail;
	}
	list_add_tail(&p->node, &ps->list);
	ps->count++;
	for (int i = 0, off = 0; i < p->naddrs; i++) {
		char a[ADDR_STRLEN];

		off += snprintf(addrs + off, sizeof(addrs) - (size_t)off, "%s%s", i ? " " : "",
				addr_fmt(&p->addrs[i], a, sizeof(a)));
	}
	pr_info("enrolled pod %s (pid %d, netns cookie %llu, addresses: %s)", p->name, (int)pid,
		(unsigned long long)p->netns_cookie, addrs[0] ? addrs : "none");
	if (out)
		*out = p;
	return 0;
fail:
	for (int i = 0; i < L__MAX; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	pod_free(ps, p, SRC6_REMOVE);
	return err;
}

static void pod_unenroll(struct pods *ps, struct pod *p, enum src6_fate fate)
{
	pr_info("unenrolled pod %s (netns cookie %llu)", p->name,
		(unsigned long long)p->netns_cookie);
	list_del_init(&p->node);
	ps->count--;
	pod_free(ps, p, fate);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void pods_put_id(struct pods *ps, __u64 id)
{
	struct pod *p = pods_find_id(ps, id);

	if (!p || p->refs == 0 || --p->refs > 0)
		return;
	p->orphan_since = mono_ms();
	if (!p->orphan_since)
		p->orphan_since = 1;
}

int pods_tick(struct pods *ps, uint64_t now_ms)
{
	struct list_head *pos, *tmp;
	int next = -1;

	list_for_each_safe (pos, tmp, &ps->list) {
		struct pod *p = list_entry(pos, struct pod, node);
		uint64_t due;

		if (!p->orphan_since || p->refs)
			continue;
		due = p->orphan_since + POD_LINGER_MS;
		if (now_ms >= due) {
			/* No cgroup claimed it back: its processes are gone. */
			pod_unenroll(ps, p, SRC6_REMOVE);
			continue;
		}
		if (next < 0 || (int)(due - now_ms) < next)
			next = (int)(due - now_ms);
	}
	return next;
}

int pods_unenroll_pid(struct pods *ps, pid_t pid)
{
	struct pod *p;
	__u64 ino;
	int err = netns_ino_of_pid(pid, &ino);

	if (err)
		return err;
	p = pods_find_ino(ps, ino);
	if (!p)
		return -ENOENT;
	excluded_set(ps, ino, true);
	pod_unenroll(ps, p, SRC6_KEEP);
	return 0;
}

void pods_destroy(struct pods *ps)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &ps->list)
		pod_unenroll(ps, list_entry(pos, struct pod, node), SRC6_DEFER);
}

void pods_to_json(struct pods *ps, struct strbuf *sb)
{
	struct list_head *pos, *tmp;
	struct json_writer w;

	jw_init(&w, sb, false);
	jw_arr_begin(&w);
	list_for_each_safe (pos, tmp, &ps->list) {
		struct pod *p = list_entry(pos, struct pod, node);
		char a[ADDR_STRLEN];

		jw_obj_begin(&w);
		jw_key(&w, "name");
		jw_str(&w, p->name);
		jw_key(&w, "pid");
		jw_i64(&w, p->pid);
		jw_key(&w, "netns_cookie");
		jw_u64(&w, p->netns_cookie);
		jw_key(&w, "cgroup_id");
		jw_u64(&w, p->cgroup_id);
		jw_key(&w, "manual");
		jw_bool(&w, p->manual);
		jw_key(&w, "enrolled_at");
		jw_u64(&w, p->enrolled_at);
		jw_key(&w, "addresses");
		jw_arr_begin(&w);
		for (int i = 0; i < p->naddrs; i++)
			jw_str(&w, addr_fmt(&p->addrs[i], a, sizeof(a)));
		jw_arr_end(&w);
		jw_key(&w, "sk_lookup");
		jw_bool(&w, p->sk_lookup != NULL);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
}
