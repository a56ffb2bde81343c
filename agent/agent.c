/* shuntd's agent thread: start-up checks, the event loop, the admin handlers, shutdown. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/admin.h"
#include "agent/ads.h"
#include "agent/bootstrap.h"
#include "agent/config_dump.h"
#include "agent/xds_snapshot.h"
#include "agent/cgwatch.h"
#include "agent/counters.h"
#include "agent/datapath.h"
#include "agent/dns.h"
#include "agent/pods.h"
#include "agent/probe.h"
#include "agent/svcmap.h"
#include "iptables/apply.h"
#include "iptables/rules.h"
#include "lib/cgroup.h"
#include "lib/json.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "lib/netns.h"
#include "proxy/config.h"
#include "proxy/proxy.h"

#define AGENT_MAX_EVENTS    64
#define BOUND_LISTENERS_MAX 1024 /* bind_to_port listeners shuntd itself listens on */
#define PID_FILE	    "shuntd.pid"
#define ADMIN_SOCK	    "admin.sock"

/* How traffic reaches the proxy, per path, and why not by eBPF when it is not. */
enum capture_by {
	CAPTURE_EBPF,
	CAPTURE_IPTABLES
};

struct capture_plan {
	enum capture_by out, in;
	bool sockmap;
	char why_out[512], why_in[512], why_no_sockmap[512];
};

struct agent {
	const struct agent_opts *o;
	struct capture_plan plan;
	struct ipt_config *ipt; /* what pods get loaded for the iptables paths, or NULL */
	char ipt_state_dir[PATH_MAX];
	struct xds_config *xds;	  /* the active configuration (--config), or NULL */
	struct px_snapshot *snap; /* built from it, until handed to the proxy */
	uint64_t generation;	  /* of the last snapshot built */
	struct ads *ads;	  /* the control-plane stream, when the bootstrap names one */
	struct dns_cache *dns;	  /* resolves STRICT_DNS/LOGICAL_DNS names (with --config) */
	/* The config's bind_to_port listeners, which shuntd serves in its own netns, registered
	 * with the proxy as one workload each, so that LDS can add and remove them one by one. */
	struct bound_listener *bound;
	/* ADS applies: translation, publication and everything the datapath writes for the new
	 * snapshot (listeners, kernel service maps), the last one and their sum. */
	uint64_t apply_last_us, apply_max_us, apply_sum_us, applies;
	int nbound;
	char cgroup[PATH_MAX];
	char cgmnt[PATH_MAX]; /* where cgroup2 is mounted */
	char run_dir[PATH_MAX];
	int lock_fd;
	int epfd, sigfd;
	struct probe_result probe;
	struct datapath dp;
	bool dp_open;
	struct svcmap svc;     /* the kernel service LB's maps, when dp_open */
	uint64_t svc_retry_at; /* ms: when a stale svc is written again */
	struct proxy *proxy;
	struct pods pods;
	bool pods_ready;
	struct cgwatch cw;
	bool cw_open;
	struct admin_server admin;
	bool admin_open;
	int access_log_fd;
	bool stopping;
	time_t started;
};

const char *agent_mode_name(enum agent_mode m)
{
	switch (m) {
	case AGENT_MODE_AUTO:
		return "auto";
	case AGENT_MODE_EBPF:
		return "ebpf";
	case AGENT_MODE_IPTABLES:
		return "iptables";
	}
	return "?";
}

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One line on stderr, the way a user reads it: "shuntd: ...". */
static void fatal_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fatal_line(const char *fmt, ...)
{
	va_list ap;

	fputs("shuntd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- start-up checks ------------------------------------------------------------------------ */

static int resolve_cgroup(struct agent *a)
{
	char mnt[PATH_MAX];
	int err = cgroup2_mount_find(mnt, sizeof(mnt));

	if (err) {
		fatal_line("cgroup v2 is not mounted (no cgroup2 entry in /proc/mounts)");
		return -1;
	}
	snprintf(a->cgmnt, sizeof(a->cgmnt), "%s", mnt);
	if (!a->o->cgroup) {
		static const char *const candidates[] = {"kubepods.slice", "kubepods"};

		for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
			snprintf(a->cgroup, sizeof(a->cgroup), "%s/%s", mnt, candidates[i]);
			if (cgroup2_check_dir(a->cgroup) == 0)
				return 0;
		}
		fatal_line("--cgroup is required: no kubepods cgroup under %s", mnt);
		return -1;
	}
	if (!realpath(a->o->cgroup, a->cgroup)) {
		fatal_line("--cgroup %s: %s", a->o->cgroup, strerror(errno));
		return -1;
	}
	err = cgroup2_check_dir(a->cgroup);
	if (err == -EMEDIUMTYPE || err == -ENOTDIR) {
		fatal_line("--cgroup %s: not a cgroup2 directory (cgroup2 is mounted at %s)",
			   a->o->cgroup, mnt);
		return -1;
	}
	if (err) {
		fatal_line("--cgroup %s: %s", a->o->cgroup, strerror(-err));
		return -1;
	}
	if (strcmp(a->cgroup, mnt) == 0)
		pr_warn("--cgroup is the root cgroup %s: every process on the machine is covered",
			mnt);
	return 0;
}

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

/* One shuntd per run dir: an flock on the pid file, held for the life of the process. */
static int lock_run_dir(struct agent *a)
{
	char path[PATH_MAX], buf[32];
	int err = mkdir_p(a->run_dir);

	if (err) {
		fatal_line("cannot create --run-dir %s: %s", a->run_dir, strerror(-err));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/" PID_FILE, a->run_dir);
	a->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (a->lock_fd < 0) {
		fatal_line("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(a->lock_fd, LOCK_EX | LOCK_NB)) {
		ssize_t n = pread(a->lock_fd, buf, sizeof(buf) - 1, 0);

		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		fatal_line("another shuntd (pid %s) is already running with --run-dir %s",
			   buf[0] ? buf : "?", a->run_dir);
		close(a->lock_fd);
		a->lock_fd = -1;
		return -1;
	}
	snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(a->lock_fd, 0) || pwrite(a->lock_fd, buf, strlen(buf), 0) < 0)
		pr_warn("cannot write %s: %m", path);
	return 0;
}

static void unlock_run_dir(struct agent *a)
{
	char path[PATH_MAX];

	if (a->lock_fd < 0)
		return;
	snprintf(path, sizeof(path), "%s/" PID_FILE, a->run_dir);
	unlink(path);
	close(a->lock_fd);
	a->lock_fd = -1;
}

static const char *capture_name(enum capture_by c)
{
	return c == CAPTURE_EBPF ? "ebpf" : "iptables";
}

/* Decides per path how pods are captured: --mode ebpf insists on eBPF (and fails naming what the
 * kernel lacks), --mode iptables uses Istio's rules everywhere, --mode auto takes eBPF where the
 * kernel has what the path needs and iptables for the rest. Returns -1 (after one line) when the
 * mode cannot run. */
static int plan_capture(struct agent *a)
{
	struct capture_plan *pl = &a->plan;
	enum agent_mode mode = a->o->mode;
	char missing[512];

	probe_kernel(&a->probe);
	pl->out = pl->in = mode == AGENT_MODE_IPTABLES ? CAPTURE_IPTABLES : CAPTURE_EBPF;
	if (mode == AGENT_MODE_IPTABLES) {
		snprintf(pl->why_out, sizeof(pl->why_out), "--mode iptables");
		snprintf(pl->why_in, sizeof(pl->why_in), "--mode iptables");
	}
	if (mode != AGENT_MODE_IPTABLES &&
	    probe_missing(&a->probe, "outbound", missing, sizeof(missing))) {
		if (mode == AGENT_MODE_EBPF) {
			fatal_line("--mode ebpf: the kernel lacks what outbound capture needs: %s",
				   missing);
			return -1;
		}
		pl->out = CAPTURE_IPTABLES;
		snprintf(pl->why_out, sizeof(pl->why_out), "the kernel lacks %s", missing);
	}
	if (mode != AGENT_MODE_IPTABLES &&
	    probe_missing(&a->probe, "inbound", missing, sizeof(missing))) {
		if (mode == AGENT_MODE_EBPF) {
			fatal_line("--mode ebpf: the kernel lacks what inbound capture needs: %s",
				   missing);
			return -1;
		}
		pl->in = CAPTURE_IPTABLES;
		snprintf(pl->why_in, sizeof(pl->why_in), "the kernel lacks %s", missing);
	}
	/* The short-circuit needs sockops, which only the eBPF outbound path attaches. */
	pl->sockmap = a->o->sockmap && pl->out == CAPTURE_EBPF;
	if (!a->o->sockmap)
		snprintf(pl->why_no_sockmap, sizeof(pl->why_no_sockmap), "--no-sockmap");
	else if (pl->out != CAPTURE_EBPF)
		snprintf(pl->why_no_sockmap, sizeof(pl->why_no_sockmap),
			 "outbound capture is not eBPF");
	else if (probe_missing(&a->probe, "sockmap", missing, sizeof(missing))) {
		pl->sockmap = false;
		snprintf(pl->why_no_sockmap, sizeof(pl->why_no_sockmap), "the kernel lacks %s",
			 missing);
	}
	if (pl->out == CAPTURE_IPTABLES)
		pr_warn("outbound capture by iptables: %s", pl->why_out);
	if (pl->in == CAPTURE_IPTABLES)
		pr_warn("inbound capture by iptables: %s", pl->why_in);
	if (a->o->sockmap && !pl->sockmap)
		pr_warn("sockmap short-circuit off: %s", pl->why_no_sockmap);
	return 0;
}

static void ports_setting(struct strbuf *sb, const char *base, const __u16 *ports)
{
	strbuf_adds(sb, base);
	for (int i = 0; ports && ports[i]; i++)
		strbuf_addf(sb, "%s%u", sb->len ? "," : "", ports[i]);
}

/* The rule set pods get for the paths iptables captures: the operator's Istio settings, with
 * the other path switched off, shunt's mark exempted and shuntd's excluded ports added. */
static int plan_iptables(struct agent *a)
{
	const struct ipt_config *base = a->o->ipt;
	struct strbuf sb = {0};
	char err[IPT_ERR_MAX];
	int rc = 0;

	if (a->plan.out == CAPTURE_EBPF && a->plan.in == CAPTURE_EBPF)
		return 0;
	a->ipt = malloc(sizeof(*a->ipt));
	if (!a->ipt)
		return -ENOMEM;
	if (base)
		*a->ipt = *base;
	else
		ipt_config_init_sidecar(a->ipt);
	a->ipt->shunt_mark_exempt = true;
	a->ipt->shunt_mark = a->o->mark;
	if (a->plan.out == CAPTURE_EBPF) {
		rc = ipt_config_set(a->ipt, "istio-service-cidr", "", err, sizeof(err));
		if (!rc)
			rc = ipt_config_set(a->ipt, "istio-outbound-ports", "", err, sizeof(err));
	} else if (a->o->exclude_out[0]) {
		for (int i = 0; i < a->ipt->outbound_ports_exclude.n; i++)
			strbuf_addf(&sb, "%s%s", i ? "," : "",
				    a->ipt->outbound_ports_exclude.item[i]);
		ports_setting(&sb, "", a->o->exclude_out);
		rc = ipt_config_set(a->ipt, "istio-local-outbound-ports-exclude", strbuf_str(&sb),
				    err, sizeof(err));
	}
	strbuf_reset(&sb);
	if (!rc && a->plan.in == CAPTURE_EBPF) {
		rc = ipt_config_set(a->ipt, "istio-inbound-ports", "", err, sizeof(err));
	} else if (!rc && a->o->exclude_in[0]) {
		for (int i = 0; i < a->ipt->inbound_ports_exclude.n; i++)
			strbuf_addf(&sb, "%s%s", i ? "," : "",
				    a->ipt->inbound_ports_exclude.item[i]);
		ports_setting(&sb, "", a->o->exclude_in);
		rc = ipt_config_set(a->ipt, "istio-local-exclude-ports", strbuf_str(&sb), err,
				    sizeof(err));
	}
	strbuf_release(&sb);
	if (!rc)
		rc = ipt_config_validate(a->ipt, err, sizeof(err));
	if (rc) {
		fatal_line("iptables capture settings: %s", err);
		return rc;
	}
	snprintf(a->ipt_state_dir, sizeof(a->ipt_state_dir), "%s/iptables", a->run_dir);
	return 0;
}

/* ---- configuration ------------------------------------------------------------------------- */

/* Every snapshot is built with the names of DNS clusters resolved from the resolver's cache. */
static int build_snapshot(struct agent *a, const struct xds_config *cfg, uint64_t generation,
			  struct px_snapshot **out, struct jtree_err *e)
{
	const struct xds_dns dns = {.lookup = dns_cache_lookup, .ctx = a->dns};

	return xds_snapshot_build_dns(cfg, generation, a->dns ? &dns : NULL, out, e);
}

/* Tells the resolver which names the snapshot now in force needs, and how often. */
static void dns_names_of(struct agent *a, const struct px_snapshot *s)
{
	size_t n = 0, k = 0;
	struct dns_want *want;

	if (!a->dns)
		return;
	for (uint32_t i = 0; i < s->nclusters; i++)
		n += s->clusters[i].ndns_targets;
	want = calloc(n ? n : 1, sizeof(*want));
	if (!want)
		return; /* the resolver keeps the names it has */
	for (uint32_t i = 0; i < s->nclusters; i++) {
		const struct px_cluster *c = &s->clusters[i];

		for (uint32_t j = 0; j < c->ndns_targets; j++, k++)
			want[k] = (struct dns_want){.name = c->dns_targets[j].hostname,
						    .refresh_ms = c->dns_refresh_ms,
						    .fail_base_ms = c->dns_failure_base_ms,
						    .fail_max_ms = c->dns_failure_max_ms};
	}
	dns_cache_want(a->dns, want, n);
	free(want);
}

static void services_write(struct agent *a, const struct px_snapshot *s);

/* A DNS answer changed: the active config again, with the new addresses. */
static void dns_changed(struct agent *a)
{
	struct px_snapshot *s;
	struct jtree_err e = {0};

	dns_cache_drain(a->dns);
	if (!a->xds || !a->proxy)
		return;
	if (build_snapshot(a, a->xds, a->generation + 1, &s, &e)) {
		pr_warn("dns: the config no longer translates: %s", e.msg);
		return;
	}
	a->generation++;
	services_write(a, s);
	proxy_config_set(a->proxy, s);
	pr_info("dns: snapshot %llu active with new addresses", (unsigned long long)a->generation);
}

/* --config: the bootstrap's static resources become the proxy's first snapshot. Any problem is
 * one line naming the file, line and field, and shuntd does not start. */
static int load_config(struct agent *a)
{
	struct jtree_err e = {0};
	int rc;

	if (!a->o->config)
		return 0;
	rc = bootstrap_load(a->o->config, &a->xds, &e);
	if (rc) {
		fatal_line("--config %s", e.msg);
		return -1;
	}
	rc = bootstrap_set_node(a->xds, a->o->service_node, a->o->service_cluster,
				a->o->service_zone, e.msg, sizeof(e.msg));
	if (rc) {
		fatal_line("%s", rc == -EINVAL ? e.msg : "out of memory");
		return -1;
	}
	a->dns = dns_cache_start();
	if (!a->dns) {
		fatal_line("cannot start the DNS resolver: %s", strerror(errno));
		return -1;
	}
	rc = build_snapshot(a, a->xds, ++a->generation, &a->snap, &e);
	if (rc) {
		fatal_line("--config %s: %s", a->o->config, e.msg);
		return -1;
	}
	dns_names_of(a, a->snap);
	if (!a->snap->virtual_outbound || !a->snap->virtual_inbound)
		pr_warn("--config %s has no %s listener: captured %s connections are closed (NR)",
			a->o->config,
			!a->snap->virtual_outbound ? PX_LISTENER_VIRTUAL_OUTBOUND
						   : PX_LISTENER_VIRTUAL_INBOUND,
			!a->snap->virtual_outbound ? "outbound" : "inbound");
	pr_info("config %s: %u listeners, %u clusters, %u route configurations", a->o->config,
		a->snap->nlisteners, a->snap->nclusters, a->snap->nroute_configs);
	return 0;
}

static int bound_prepare(struct agent *a, const struct px_snapshot *s, char *err, size_t errlen);
static int bound_commit(struct agent *a);

/* The kernel service LB follows the snapshot that becomes active, in the same apply: only what
 * changed is written, by the generation protocol. A failed write leaves the proxy serving. */
static void services_write(struct agent *a, const struct px_snapshot *s)
{
	struct svcmap_stats st;
	int rc;

	if (!a->dp_open || a->plan.out != CAPTURE_EBPF)
		return;
	rc = svcmap_apply(&a->svc, s, &st);
	if (rc == -ENOMEM) {
		pr_err("services: out of memory: the kernel LB keeps the previous services");
		return;
	}
	if (rc)
		pr_warn("services: %u map writes failed (maps full?): those connects go to the "
			"proxy",
			st.errors);
	if (st.truncated)
		pr_warn("services: %u services have more than %u backend slots; the rest are not "
			"used by the kernel LB",
			st.truncated, SHUNT_SVC_MAX_SLOTS);
	if (st.repaired)
		pr_info("services: %u services were not in the maps as written; rewritten",
			st.repaired);
	pr_info("services: %u in the kernel maps (%u added, %u changed, %u removed), %u slots "
		"written, %u deleted in %llu us%s",
		st.services, st.added, st.changed, st.removed, st.slots_written, st.slots_deleted,
		(unsigned long long)st.duration_us, st.batched ? " (batched)" : "");
}

/* A service map write failed (a full map): the same snapshot is written again every
 * SVCMAP_RETRY_MS until the maps hold it, repairing from what they really contain. Returns the
 * loop's timeout, lowered to the next retry. */
static int services_retry(struct agent *a, uint64_t now, int timeout)
{
	if (!a->svc.stale || !a->snap)
		return timeout;
	if (now >= a->svc_retry_at) {
		a->svc_retry_at = now + SVCMAP_RETRY_MS;
		pr_info("services: retrying the writes that failed");
		services_write(a, a->snap);
		if (!a->svc.stale)
			return timeout;
	}
	return a->svc_retry_at - now < (uint64_t)timeout ? (int)(a->svc_retry_at - now) : timeout;
}

/* ADS: every accepted update becomes a new snapshot, published with one swap; one that does not
 * translate is NACKed with the reason and changes nothing. */
static int ads_apply(void *ctx, struct xds_config *cand, char *err, size_t errlen)
{
	struct agent *a = ctx;
	struct px_snapshot *s;
	struct jtree_err e = {0};
	uint64_t t0 = mono_us(), us;

	if (build_snapshot(a, cand, a->generation + 1, &s, &e)) {
		snprintf(err, errlen, "%s", e.msg);
		return -1;
	}
	/* New bound listeners are listened on first: a port in use refuses the update whole. */
	if (bound_prepare(a, s, err, errlen)) {
		px_snapshot_put(s);
		return -1;
	}
	a->generation++;
	dns_names_of(a, s);
	/* What the datapath writes for a snapshot (the kernel LB's maps) goes before the swap
	 * and the log line below: the apply time and the bench's push-to-active time include it. */
	services_write(a, s);
	proxy_config_set(a->proxy, s);
	bound_commit(a);
	xds_config_free(a->xds);
	a->xds = cand;
	us = mono_us() - t0;
	a->apply_last_us = us;
	a->apply_max_us = us > a->apply_max_us ? us : a->apply_max_us;
	a->apply_sum_us += us;
	a->applies++;
	pr_info("xds: snapshot %llu active: %zu listeners, %zu routes, %zu clusters, %zu endpoint "
		"sets; applied in %llu.%03llu ms",
		(unsigned long long)a->generation, cand->n[XDS_LISTENER], cand->n[XDS_ROUTE],
		cand->n[XDS_CLUSTER], cand->n[XDS_ENDPOINT], (unsigned long long)us / 1000,
		(unsigned long long)us % 1000);
	return 0;
}

/* config_dump shows the last rejected update of each resource as its error_state. */
static void ads_rejected(void *ctx, int type, const char *reason, const struct xds_config *cfg)
{
	struct agent *a = ctx;

	pr_warn("xds: update rejected: %s", reason);
	if (type < 0 || !a->xds)
		return;
	for (size_t i = 0; i < cfg->n_rejected[type]; i++) {
		const struct xds_rejection *r = &cfg->rejected[type][i];

		xds_config_reject(a->xds, (enum xds_type)type, r->name, r->version, r->details,
				  r->failed, &r->when);
	}
}

static void ads_ready(void *ctx)
{
	(void)ctx;
	pr_info("xds: initial fetch complete");
}

static void ads_log(void *ctx, const char *line)
{
	(void)ctx;
	pr_info("%s", line);
}

static int start_ads(struct agent *a)
{
	static const struct ads_callbacks cb = {
		.apply = ads_apply, .ready = ads_ready, .rejected = ads_rejected, .log = ads_log};
	struct ads_opts opts = {.delta = -1};
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &a->ads};
	char err[256];

	if (!a->xds || !bootstrap_ads_cluster(a->xds))
		return 0;
	if (ads_start(&a->ads, a->xds, &opts, &cb, a, err, sizeof(err))) {
		fatal_line("--config %s: %s", a->o->config, err);
		return -1;
	}
	epoll_ctl(a->epfd, EPOLL_CTL_ADD, ads_fd(a->ads), &ev);
	return 0;
}

/* One bind_to_port listener shuntd listens on, as one proxy workload so that ADS can add and
 * remove listeners one by one. */
struct bound_listener {
	char name[256];
	struct shunt_addr addr;
	__u16 port;
	struct proxy_workload *w; /* NULL while only its socket is open (not yet served) */
	int fd;			  /* the socket before it is handed to the proxy, or -1 */
	bool keep;
};

static bool is_bound(const struct px_listener *l)
{
	return l->bind_to_port && !l->use_original_dst && l->port != SHUNT_PORT_OUTBOUND &&
	       l->port != SHUNT_PORT_INBOUND;
}

static struct bound_listener *find_bound(struct agent *a, const struct px_listener *l)
{
	for (int i = 0; i < a->nbound; i++)
		if (!strcmp(a->bound[i].name, l->name) && a->bound[i].port == l->port &&
		    !memcmp(&a->bound[i].addr, &l->addr, sizeof(l->addr)))
			return &a->bound[i];
	return NULL;
}

/* Drops the sockets opened by bound_prepare that were not handed over (a refused update). */
static void bound_abort(struct agent *a)
{
	int n = 0;

	for (int i = 0; i < a->nbound; i++) {
		if (!a->bound[i].w) {
			close(a->bound[i].fd);
			continue;
		}
		a->bound[i].keep = false;
		a->bound[n++] = a->bound[i];
	}
	a->nbound = n;
}

/* Step 1 of a change of bind_to_port listeners, before the snapshot is published: listens on
 * every new one. A port that cannot be listened on refuses the whole update (err says which)
 * and changes nothing. Listeners are identified by name, address and port. */
static int bound_prepare(struct agent *a, const struct px_snapshot *s, char *err, size_t errlen)
{
	for (int i = 0; i < a->nbound; i++)
		a->bound[i].keep = false;
	for (size_t i = 0; i < s->nlisteners; i++) {
		const struct px_listener *l = &s->listeners[i];
		struct bound_listener *b, *grown;
		char addr[ADDR_STRLEN];
		int fd;

		if (!is_bound(l))
			continue;
		b = find_bound(a, l);
		if (b) {
			b->keep = true;
			continue;
		}
		if (a->nbound >= BOUND_LISTENERS_MAX) {
			snprintf(err, errlen, "listener %s: more than %d bound listeners", l->name,
				 BOUND_LISTENERS_MAX);
			bound_abort(a);
			return -ENOSPC;
		}
		fd = sock_listen(&l->addr, l->port, 4096);
		grown = fd >= 0 ? realloc(a->bound, (size_t)(a->nbound + 1) * sizeof(*grown))
				: NULL;
		if (fd < 0 || !grown) {
			snprintf(err, errlen, "listener %s: cannot listen on %s:%u: %s", l->name,
				 addr_fmt(&l->addr, addr, sizeof(addr)), l->port,
				 strerror(fd < 0 ? -fd : ENOMEM));
			if (fd >= 0)
				close(fd);
			bound_abort(a);
			return fd < 0 ? fd : -ENOMEM;
		}
		a->bound = grown;
		b = &a->bound[a->nbound++];
		memset(b, 0, sizeof(*b));
		snprintf(b->name, sizeof(b->name), "%s", l->name);
		b->addr = l->addr;
		b->port = l->port;
		b->fd = fd;
		b->keep = true;
	}
	return 0;
}

/* Step 2, once the snapshot is published: new sockets start being served, and listeners the
 * snapshot no longer has stop accepting; their open connections finish (proxy drain). */
static int bound_commit(struct agent *a)
{
	struct proxy_workload_desc d = {.name = "shuntd", .sockmap = false};
	char addr[ADDR_STRLEN];
	__u64 cookie = 0;
	int n = 0, rc = 0;

	netns_cookie_current(&cookie);
	for (int i = 0; i < a->nbound; i++) {
		struct bound_listener *b = &a->bound[i];

		if (!b->keep) {
			pr_info("listener %s: no longer in the config, draining %s:%u", b->name,
				addr_fmt(&b->addr, addr, sizeof(addr)), b->port);
			proxy_workload_remove(a->proxy, b->w);
			continue;
		}
		if (!b->w) {
			for (int k = 0; k < PROXY_WORKLOAD_MAX_LISTENERS; k++)
				d.listen_fds[k] = -1;
			d.listen_fds[0] = b->fd;
			d.kinds[0] = PROXY_LISTENER_BOUND;
			d.netns_cookie = cookie;
			d.netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
			b->w = d.netns_fd >= 0 ? proxy_workload_add(a->proxy, &d) : NULL;
			if (d.netns_fd >= 0)
				close(d.netns_fd);
			else
				close(b->fd);
			b->fd = -1;
			if (!b->w) {
				pr_warn("listener %s: cannot serve %s:%u: %s", b->name,
					addr_fmt(&b->addr, addr, sizeof(addr)), b->port,
					strerror(errno));
				rc = -EIO;
				continue;
			}
			pr_info("listener %s: listening on %s:%u", b->name,
				addr_fmt(&b->addr, addr, sizeof(addr)), b->port);
		}
		a->bound[n++] = *b;
	}
	a->nbound = n;
	return rc;
}

/* ---- admin API ------------------------------------------------------------------------------ */

/* A pod enrolled by hand is named after its cgroup below --cgroup when it has one. */
static void pod_name_of_pid(struct agent *a, pid_t pid, char *buf, size_t len)
{
	char path[PATH_MAX];
	const char *root = a->cgroup + strlen(a->cgmnt);
	size_t n = strlen(root);

	snprintf(buf, len, "pid-%d", (int)pid);
	if (cgroup_path_of_pid(pid, path, sizeof(path)))
		return;
	if (strncmp(path, root, n) == 0 && path[n] == '/' && path[n + 1])
		snprintf(buf, len, "%s", path + n + 1);
}

struct prom_ctx {
	struct agent *a;
	struct strbuf *sb;
	enum shunt_stat stat;
};

static void pod_label(struct agent *a, __u64 netns, char *buf, size_t len)
{
	struct shunt_pod pod;

	if (netns == 0)
		snprintf(buf, len, "unattributed");
	else if (pod_entry_read(a->dp.fd.mesh_netns, netns, &pod) == 0)
		snprintf(buf, len, "%s", pod.name);
	else
		snprintf(buf, len, "netns-%llu", (unsigned long long)netns);
}

static void prom_one(void *ctx, __u64 netns, const struct shunt_counters *c)
{
	struct prom_ctx *pc = ctx;
	char pod[SHUNT_POD_NAME_LEN + 16];

	pod_label(pc->a, netns, pod, sizeof(pod));
	strbuf_addf(pc->sb, "shunt_%s_total{pod=\"", counter_name(pc->stat));
	json_escape(pc->sb, pod, strlen(pod));
	strbuf_addf(pc->sb, "\"} %llu\n", (unsigned long long)c->v[pc->stat]);
}

/* The control plane's health: connected, updates per type, when, and how many resources. */
static void xds_prometheus(struct agent *a, struct strbuf *sb)
{
	const struct ads_stats *st = ads_stats(a->ads);
	static const char *const fams[][3] = {
		{"xds_updates_accepted_total", "counter", "updates accepted, per type"},
		{"xds_updates_rejected_total", "counter", "updates rejected (NACKed), per type"},
		{"xds_last_update_seconds", "gauge", "time of the last accepted update, per type"},
		{"xds_resources", "gauge", "resources active, per type"},
	};

	strbuf_addf(sb,
		    "# HELP shunt_xds_connected 1 while the ADS stream is open\n"
		    "# TYPE shunt_xds_connected gauge\nshunt_xds_connected %d\n",
		    st->connected ? 1 : 0);
	/* A refused TLS handshake (wrong CA, name, no ALPN h2) never opens a stream: counted here. */
	strbuf_addf(sb,
		    "# HELP shunt_xds_connect_failures_total ADS connection attempts that never "
		    "opened a stream (TCP, TLS or HTTP/2)\n"
		    "# TYPE shunt_xds_connect_failures_total counter\n"
		    "shunt_xds_connect_failures_total %llu\n"
		    "# HELP shunt_xds_connects_total ADS streams opened\n"
		    "# TYPE shunt_xds_connects_total counter\nshunt_xds_connects_total %llu\n",
		    (unsigned long long)st->connect_failures, (unsigned long long)st->connects);
	strbuf_addf(
		sb,
		"# HELP shunt_xds_apply_seconds time to translate and publish the last accepted "
		"update, datapath writes included\n"
		"# TYPE shunt_xds_apply_seconds gauge\nshunt_xds_apply_seconds %.6f\n"
		"# HELP shunt_xds_apply_max_seconds the longest apply so far\n"
		"# TYPE shunt_xds_apply_max_seconds gauge\nshunt_xds_apply_max_seconds %.6f\n"
		"# HELP shunt_xds_apply_seconds_total time spent applying updates\n"
		"# TYPE shunt_xds_apply_seconds_total counter\n"
		"shunt_xds_apply_seconds_total %.6f\n"
		"# HELP shunt_xds_applies_total updates applied\n"
		"# TYPE shunt_xds_applies_total counter\nshunt_xds_applies_total %llu\n",
		(double)a->apply_last_us / 1e6, (double)a->apply_max_us / 1e6,
		(double)a->apply_sum_us / 1e6, (unsigned long long)a->applies);
	for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
		strbuf_addf(sb, "# HELP shunt_%s %s\n# TYPE shunt_%s %s\n", fams[f][0], fams[f][2],
			    fams[f][0], fams[f][1]);
		for (int t = 0; t < XDS_NTYPES; t++) {
			unsigned long long v =
				f == 0	 ? st->accepted[t]
				: f == 1 ? st->rejected[t]
				: f == 2 ? (unsigned long long)st->last_update[t].tv_sec
					 : st->resources[t];

			strbuf_addf(sb, "shunt_%s{type=\"%s\"} %llu\n", fams[f][0],
				    xds_types[t].plural, v);
		}
	}
}

static void stats_prometheus(struct agent *a, struct strbuf *sb)
{
	struct proxy_stats ps;

	for (int s = 0; s < SHUNT_STAT__MAX; s++) {
		struct prom_ctx pc = {.a = a, .sb = sb, .stat = s};

		strbuf_addf(sb, "# HELP shunt_%s_total %s\n# TYPE shunt_%s_total counter\n",
			    counter_name(s), counter_help(s), counter_name(s));
		if (a->dp_open) /* no kernel counters without the eBPF data path */
			counters_for_each(a->dp.fd.stats, prom_one, &pc);
	}
	proxy_stats_get(a->proxy, &ps);
#define PROM_PROXY(name, help)                                                                     \
	strbuf_addf(sb,                                                                            \
		    "# HELP shunt_proxy_%s %s\n# TYPE shunt_proxy_%s %s\nshunt_proxy_%s %llu\n",   \
		    #name, help, #name, strstr(#name, "active") ? "gauge" : "counter", #name,      \
		    (unsigned long long)ps.name);
	PROXY_STATS(PROM_PROXY)
#undef PROM_PROXY
	if (a->ads)
		xds_prometheus(a, sb);
	if (a->dns) {
		struct dns_stats ds;

		dns_cache_stats(a->dns, &ds);
		strbuf_addf(sb,
			    "# HELP shunt_dns_lookups_total DNS lookups of cluster names\n"
			    "# TYPE shunt_dns_lookups_total counter\nshunt_dns_lookups_total %llu\n"
			    "# HELP shunt_dns_lookup_failures_total lookups without an answer (the "
			    "last one is kept)\n# TYPE shunt_dns_lookup_failures_total counter\n"
			    "shunt_dns_lookup_failures_total %llu\n"
			    "# HELP shunt_dns_answer_changes_total answers that changed a cluster\n"
			    "# TYPE shunt_dns_answer_changes_total counter\n"
			    "shunt_dns_answer_changes_total %llu\n"
			    "# HELP shunt_dns_names names resolved\n# TYPE shunt_dns_names gauge\n"
			    "shunt_dns_names %llu\n",
			    (unsigned long long)ds.lookups, (unsigned long long)ds.failures,
			    (unsigned long long)ds.changes, (unsigned long long)ds.names);
	}
	strbuf_addf(sb,
		    "# HELP shunt_pods_enrolled pods enrolled now\n# TYPE shunt_pods_enrolled "
		    "gauge\nshunt_pods_enrolled %d\n",
		    a->pods.count);
}

static void status_json(struct agent *a, struct strbuf *sb)
{
	struct json_writer w;

	jw_init(&w, sb, false);
	jw_obj_begin(&w);
	jw_key(&w, "pid");
	jw_i64(&w, getpid());
	jw_key(&w, "mode");
	jw_str(&w, agent_mode_name(a->o->mode));
	jw_key(&w, "capture");
	jw_obj_begin(&w);
	jw_key(&w, "outbound");
	jw_str(&w, capture_name(a->plan.out));
	if (a->plan.out != CAPTURE_EBPF) {
		jw_key(&w, "outbound_why");
		jw_str(&w, a->plan.why_out);
	}
	jw_key(&w, "inbound");
	jw_str(&w, capture_name(a->plan.in));
	if (a->plan.in != CAPTURE_EBPF) {
		jw_key(&w, "inbound_why");
		jw_str(&w, a->plan.why_in);
	}
	if (a->ipt) {
		jw_key(&w, "iptables_backend");
		jw_str(&w, ipt_backend_name((enum ipt_backend)a->o->ipt_backend));
	}
	jw_obj_end(&w);
	jw_key(&w, "cgroup");
	jw_str(&w, a->cgroup);
	jw_key(&w, "bpffs_dir");
	if (a->dp_open)
		jw_str(&w, a->dp.bpffs_dir);
	else
		jw_null(&w);
	jw_key(&w, "run_dir");
	jw_str(&w, a->run_dir);
	jw_key(&w, "workers");
	jw_i64(&w, a->o->workers);
	jw_key(&w, "sockmap");
	jw_bool(&w, a->dp_open && (a->dp.sk_msg_attached || a->dp.sk_msg_link_fd >= 0));
	if (!a->plan.sockmap) {
		jw_key(&w, "sockmap_why");
		jw_str(&w, a->plan.why_no_sockmap);
	}
	jw_key(&w, "uptime_seconds");
	jw_i64(&w, time(NULL) - a->started);
	jw_key(&w, "pods");
	jw_i64(&w, a->pods.count);
	jw_key(&w, "kernel");
	jw_obj_begin(&w);
	for (int f = 0; f < PROBE__MAX; f++) {
		jw_key(&w, probe_what(f));
		jw_bool(&w, a->probe.have[f]);
	}
	jw_obj_end(&w);
	jw_obj_end(&w);
}

static const char *dns_family_name(enum px_dns_family f)
{
	static const char *const names[] = {[PX_DNS_AUTO] = "AUTO",
					    [PX_DNS_V4_ONLY] = "V4_ONLY",
					    [PX_DNS_V6_ONLY] = "V6_ONLY",
					    [PX_DNS_V4_PREFERRED] = "V4_PREFERRED",
					    [PX_DNS_ALL] = "ALL"};

	return (unsigned)f < sizeof(names) / sizeof(names[0]) && names[f] ? names[f] : "?";
}

/* Envoy's /clusters text: cluster::host:port::field::value for every endpoint of the snapshot
 * in force, so a DNS cluster shows what its names resolve to now, plus one
 * cluster::dns::name:port line per name it resolves. */
static void clusters_text(struct agent *a, struct strbuf *sb)
{
	struct px_snapshot *s = proxy_config_get(a->proxy);
	char buf[ADDR_STRLEN];

	for (uint32_t i = 0; s && i < s->nclusters; i++) {
		const struct px_cluster *c = &s->clusters[i];

		for (uint32_t j = 0; j < c->ndns_targets; j++)
			strbuf_addf(sb, "%s::dns::%s:%u::dns_lookup_family::%s\n", c->name,
				    c->dns_targets[j].hostname, c->dns_targets[j].port,
				    dns_family_name(c->dns_family));
		for (uint32_t j = 0; j < c->nendpoints; j++) {
			const struct px_endpoint *e = &c->endpoints[j];

			addr_port_fmt(&e->addr, e->port, buf, sizeof(buf));
			strbuf_addf(sb, "%s::%s::weight::%u\n", c->name, buf, e->weight);
			strbuf_addf(sb, "%s::%s::priority::%u\n", c->name, buf, e->priority);
			strbuf_addf(sb, "%s::%s::health_flags::%s\n", c->name, buf,
				    e->healthy ? "healthy" : "/failed_eds_health");
		}
	}
	if (s)
		px_snapshot_put(s);
}

static void admin_handle(void *ctx, const struct admin_req *req, struct admin_resp *resp)
{
	struct agent *a = ctx;
	bool get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;
	char arg[64];

	if (get && (strcmp(req->path, "/ready") == 0 || strcmp(req->path, "/healthz/ready") == 0)) {
		resp->content_type = "text/plain";
		strbuf_adds(&resp->body, a->stopping ? "DRAINING\n" : "LIVE\n");
		resp->status = a->stopping ? 503 : 200;
		return;
	}
	if (get && strcmp(req->path, "/stats/prometheus") == 0) {
		resp->content_type = "text/plain; version=0.0.4";
		stats_prometheus(a, &resp->body);
		return;
	}
	if (get && strcmp(req->path, "/stats") == 0) {
		struct proxy_stats ps;

		proxy_stats_get(a->proxy, &ps);
		if (admin_query_get(req->query, "format", arg, sizeof(arg)) &&
		    strcmp(arg, "json") == 0) {
			proxy_stats_format(&ps, &resp->body, true);
		} else {
			resp->content_type = "text/plain";
			proxy_stats_format(&ps, &resp->body, false);
		}
		return;
	}
	if (get && strcmp(req->path, "/config_dump") == 0) {
		struct jtree_err e = {0};
		char type[64];
		bool typed = admin_query_get(req->query, "type", type, sizeof(type));

		resp->content_type = "application/json";
		if (!a->xds) {
			resp->status = 404;
			resp->content_type = "text/plain";
			strbuf_adds(&resp->body,
				    "no configuration loaded: shuntd serves its built-in "
				    "passthrough (start it with --config)\n");
		} else if (config_dump_render(a->xds, typed ? type : NULL, &resp->body, &e)) {
			resp->status = 400;
			resp->content_type = "text/plain";
			strbuf_reset(&resp->body);
			strbuf_addf(&resp->body, "%s\n", e.msg);
		}
		return;
	}
	if (get && strcmp(req->path, "/clusters") == 0) {
		resp->content_type = "text/plain";
		clusters_text(a, &resp->body);
		return;
	}
	if (get && strcmp(req->path, "/workloads") == 0) {
		pods_to_json(&a->pods, &resp->body);
		return;
	}
	if (get && strcmp(req->path, "/status") == 0) {
		status_json(a, &resp->body);
		return;
	}
	if (post && (strcmp(req->path, "/enroll") == 0 || strcmp(req->path, "/unenroll") == 0 ||
		     strcmp(req->path, "/logging") == 0)) {
		if (!req->local) {
			resp->status = 403;
			strbuf_adds(&resp->body,
				    "{\"error\":\"only over the admin unix socket\"}\n");
			return;
		}
		if (strcmp(req->path, "/logging") == 0) {
			int lvl = admin_query_get(req->query, "level", arg, sizeof(arg))
					  ? log_level_parse(arg)
					  : -1;

			if (lvl < 0) {
				resp->status = 400;
				strbuf_adds(&resp->body,
					    "{\"error\":\"level must be one of error, warn, "
					    "info, debug\"}\n");
				return;
			}
			log_threshold = lvl;
			strbuf_addf(&resp->body, "{\"level\":\"%s\"}\n", log_level_name(lvl));
			return;
		}
		char *end;
		long pid = admin_query_get(req->query, "pid", arg, sizeof(arg))
				   ? strtol(arg, &end, 10)
				   : -1;

		if (pid <= 0 || *end) {
			resp->status = 400;
			strbuf_adds(&resp->body,
				    "{\"error\":\"pid must be a positive integer\"}\n");
			return;
		}
		char name[SHUNT_POD_NAME_LEN];
		int err;

		if (strcmp(req->path, "/enroll") == 0) {
			pod_name_of_pid(a, (pid_t)pid, name, sizeof(name));
			err = pods_enroll(&a->pods, (pid_t)pid, 0, name, true, NULL);
		} else {
			err = pods_unenroll_pid(&a->pods, (pid_t)pid);
		}

		if (err) {
			resp->status = err == -ENOENT || err == -ESRCH ? 404 : 409;
			strbuf_addf(&resp->body, "{\"error\":\"pid %ld: %s\"}\n", pid,
				    err == -ENOTUNIQ ? "lives in shuntd's own network namespace"
				    : err == -ENOENT ? "not enrolled"
						     : strerror(-err));
			return;
		}
		strbuf_addf(&resp->body, "{\"pid\":%ld,\"ok\":true}\n", pid);
		return;
	}
	resp->status = get || post ? 404 : 405;
	strbuf_addf(&resp->body, "{\"error\":\"no such endpoint: %s %s\"}\n", req->method,
		    req->path);
}

/* ---- the loop ------------------------------------------------------------------------------- */

static int setup_signals(struct agent *a)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Blocked before any thread starts, so every thread inherits the mask. */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		return -1;
	signal(SIGPIPE, SIG_IGN);
	a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return a->sigfd < 0 ? -1 : 0;
}

static void loop(struct agent *a)
{
	struct epoll_event evs[AGENT_MAX_EVENTS];
	int timeout = 0;

	while (!a->stopping) {
		int n = epoll_wait(a->epfd, evs, AGENT_MAX_EVENTS, timeout);
		uint64_t now = mono_ms();

		for (int i = 0; i < n; i++) {
			void *ptr = evs[i].data.ptr;

			if (ptr == &a->sigfd) {
				struct signalfd_siginfo si;

				while (read(a->sigfd, &si, sizeof(si)) == sizeof(si)) {
					pr_info("received %s: stopping",
						strsignal((int)si.ssi_signo));
					a->stopping = true;
				}
			} else if (ptr == &a->ads) {
				ads_io(a->ads);
			} else if (ptr == &a->dns) {
				dns_changed(a);
			} else if (ptr == &a->cw) {
				cgwatch_process(&a->cw, now);
			} else if (a->admin_open && admin_owns(&a->admin, ptr)) {
				admin_on_event(&a->admin, ptr, evs[i].events);
			}
		}
		timeout = cgwatch_tick(&a->cw, now);
		if (a->ads) {
			int t = ads_tick(a->ads, now);

			if (t < timeout)
				timeout = t;
		}
		if (a->admin_open) {
			admin_tick(&a->admin, now);
			if (timeout > ADMIN_TIMEOUT_MS)
				timeout = ADMIN_TIMEOUT_MS;
		}
		timeout = services_retry(a, now, timeout);
	}
}

static void teardown(struct agent *a)
{
	if (a->admin_open)
		admin_close(&a->admin);
	a->admin_open = false;
	/* Unenrolling stops capture first, then stops accepting (the proxy still serves what
	 * was queued); open connections get the drain period before the maps go away. Pods go
	 * before the cgroup watcher, whose teardown would otherwise take them for dead. */
	if (a->ads)
		ads_free(a->ads);
	a->ads = NULL;
	for (int i = 0; i < a->nbound; i++)
		proxy_workload_remove(a->proxy, a->bound[i].w);
	free(a->bound);
	a->bound = NULL;
	a->nbound = 0;
	if (a->pods_ready)
		pods_destroy(&a->pods);
	a->pods_ready = false;
	if (a->cw_open)
		cgwatch_destroy(&a->cw);
	a->cw_open = false;
	if (a->proxy)
		proxy_stop(a->proxy, a->o->drain_ms);
	a->proxy = NULL;
	pods_release_deferred(&a->pods);
	if (a->dp_open) {
		svcmap_free(&a->svc);
		dp_close(&a->dp);
	}
	a->dp_open = false;
	if (a->access_log_fd > STDERR_FILENO)
		close(a->access_log_fd);
	if (a->sigfd >= 0)
		close(a->sigfd);
	if (a->epfd >= 0)
		close(a->epfd);
	free(a->ipt);
	a->ipt = NULL;
	if (a->snap)
		px_snapshot_put(a->snap);
	a->snap = NULL;
	dns_cache_stop(a->dns);
	a->dns = NULL;
	xds_config_free(a->xds);
	a->xds = NULL;
	unlock_run_dir(a);
}

int agent_run(const struct agent_opts *o)
{
	struct agent a = {.o = o, .lock_fd = -1, .epfd = -1, .sigfd = -1, .access_log_fd = -1};
	char missing[256], path[PATH_MAX];
	struct epoll_event ev = {.events = EPOLLIN};
	__u32 pod_flags = 0;
	int err;

	a.started = time(NULL);
	if (probe_privileges(missing, sizeof(missing))) {
		fatal_line("missing privileges: %s", missing);
		return 1;
	}
	if (resolve_cgroup(&a))
		return 1;
	/* Every proxied connection holds two to four fds; take all the kernel allows. */
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (!realpath(o->run_dir, a.run_dir))
		snprintf(a.run_dir, sizeof(a.run_dir), "%s", o->run_dir);
	if (lock_run_dir(&a))
		return 1;
	if (load_config(&a) || plan_capture(&a) || plan_iptables(&a) || setup_signals(&a))
		goto fail;

	struct dp_opts dpo = {
		.bpffs_dir = o->bpffs_dir,
		.cgroup_path = a.cgroup,
		.mark = o->mark,
		.sockmap = a.plan.sockmap,
		.outbound = a.plan.out == CAPTURE_EBPF,
		.inbound = a.plan.in == CAPTURE_EBPF,
		.exclude_in = o->exclude_in,
		.exclude_out = o->exclude_out,
	};
	if (dpo.outbound || dpo.inbound) {
		err = dp_open(&a.dp, &dpo);
		if (err) {
			fatal_line("cannot set up the eBPF data path (%s); the log above says "
				   "which step",
				   strerror(-err));
			goto fail;
		}
		a.dp_open = true;
		svcmap_init(&a.svc, a.dp.fd.services, a.dp.fd.service_slots);
	}

	if (o->access_log && strcmp(o->access_log, "-") == 0) {
		a.access_log_fd = STDOUT_FILENO;
	} else if (o->access_log) {
		a.access_log_fd =
			open(o->access_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (a.access_log_fd < 0) {
			fatal_line("--access-log %s: %s", o->access_log, strerror(errno));
			goto fail;
		}
	}
	struct proxy_config pc = {
		.workers = o->workers,
		.mark = o->mark,
		.orig_dst_map_fd = a.dp_open ? a.dp.fd.orig_dst_by_tuple : -1,
		.sock_pairs_fd = a.dp_open && dpo.sockmap ? a.dp.fd.sock_pairs : -1,
		.msg_fallback_fd = a.dp_open ? a.dp.fd.msg_fallback : -1,
		.connect_timeout_ms = o->connect_timeout_ms,
		.idle_timeout_ms = o->idle_timeout_ms,
		.drain_time_ms = o->drain_time_ms,
		.access_log_fd = a.access_log_fd,
		.access_log_json = o->access_log_json,
	};
	a.proxy = proxy_start(&pc);
	if (!a.proxy) {
		fatal_line("cannot start %d proxy workers: %s", o->workers, strerror(errno));
		goto fail;
	}
	if (a.snap) {
		char why[512];

		if (bound_prepare(&a, a.snap, why, sizeof(why))) {
			fatal_line("%s", why);
			goto fail;
		}
		services_write(&a, a.snap);
		proxy_config_set(a.proxy, a.snap);
		if (bound_commit(&a)) {
			fatal_line("cannot serve the config's listeners");
			goto fail;
		}
		a.snap = NULL;
	}

	if (o->fail_closed)
		pod_flags |= SHUNT_POD_F_FAIL_CLOSED;
	if (!dpo.sockmap)
		pod_flags |= SHUNT_POD_F_NO_SOCKMAP;
	struct pods_capture cap = {
		.bpf_inbound = dpo.inbound,
		.ipt = a.ipt,
		.ipt_backend = o->ipt_backend,
		.state_dir = a.ipt ? a.ipt_state_dir : NULL,
	};
	pods_init(&a.pods, a.dp_open ? &a.dp : NULL, a.proxy, pod_flags, &cap);
	a.pods_ready = true;

	a.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (a.epfd < 0)
		goto fail;
	ev.data.ptr = &a.sigfd;
	epoll_ctl(a.epfd, EPOLL_CTL_ADD, a.sigfd, &ev);

	snprintf(path, sizeof(path), "%s/" ADMIN_SOCK, a.run_dir);
	if (admin_open(&a.admin, a.epfd, path, o->admin_addr, o->admin_port, admin_handle, &a)) {
		fatal_line("cannot open the admin API (%s, port %d)", path, o->admin_port);
		goto fail;
	}
	a.admin_open = true;

	err = cgwatch_init(&a.cw, a.cgroup, &a.pods);
	if (err) {
		fatal_line("cannot watch --cgroup %s: %s", a.cgroup, strerror(-err));
		goto fail;
	}
	a.cw_open = true;
	ev.data.ptr = &a.cw;
	epoll_ctl(a.epfd, EPOLL_CTL_ADD, cgwatch_fd(&a.cw), &ev);
	if (a.dns) {
		ev.data.ptr = &a.dns;
		epoll_ctl(a.epfd, EPOLL_CTL_ADD, dns_cache_fd(a.dns), &ev);
	}
	if (start_ads(&a))
		goto fail;

	pr_info("shuntd ready: mode %s (outbound %s, inbound %s), cgroup %s, bpffs %s, %d workers, "
		"sockmap %s, %d pods",
		agent_mode_name(o->mode), capture_name(a.plan.out), capture_name(a.plan.in),
		a.cgroup, a.dp_open ? a.dp.bpffs_dir : "unused", o->workers,
		dpo.sockmap ? "on" : "off", a.pods.count);
	/* Loading BPF objects peaks at several times the steady heap; give that back. */
	malloc_trim(0);
	loop(&a);
	a.stopping = true;
	teardown(&a);
	pr_info("shuntd stopped: programs detached, pins removed");
	return 0;
fail:
	teardown(&a);
	return 1;
}
