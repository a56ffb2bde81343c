/* inotify over the cgroup tree: a cgroup whose processes live in another netns is a pod. */
#include "agent/cgwatch.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/pods.h"
#include "lib/cgroup.h"
#include "lib/log.h"
#include "lib/netns.h"

#define DIR_EVENTS (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR)
#define MAX_PROCS  256

struct cg_entry {
	struct list_head node;
	char rel[PATH_MAX]; /* relative to the root; "" for the root itself */
	int wd_dir;
	int wd_events;
	int depth;
	__u64 pod_id; /* the pod this cgroup holds a reference on, 0 if none */
	int retries_left;
	uint64_t retry_at;
};

static struct cg_entry *find_wd(struct cgwatch *cw, int wd, bool *is_events)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &cw->cgroups) {
		struct cg_entry *e = list_entry(pos, struct cg_entry, node);

		if (e->wd_dir == wd || e->wd_events == wd) {
			*is_events = e->wd_events == wd;
			return e;
		}
	}
	return NULL;
}

static struct cg_entry *find_rel(struct cgwatch *cw, const char *rel)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &cw->cgroups) {
		struct cg_entry *e = list_entry(pos, struct cg_entry, node);

		if (strcmp(e->rel, rel) == 0)
			return e;
	}
	return NULL;
}

static void full_path(struct cgwatch *cw, const char *rel, char *buf, size_t len)
{
	if (rel[0])
		snprintf(buf, len, "%s/%s", cw->root, rel);
	else
		snprintf(buf, len, "%s", cw->root);
}

static void entry_release_pod(struct cgwatch *cw, struct cg_entry *e)
{
	if (!e->pod_id)
		return;
	pods_put_id(cw->pods, e->pod_id);
	e->pod_id = 0;
}

/* Is this cgroup a pod, and is it the pod we think it is? */
static void evaluate(struct cgwatch *cw, struct cg_entry *e, uint64_t now_ms)
{
	pid_t pids[MAX_PROCS];
	char path[PATH_MAX];
	unsigned long long cgid = 0;
	int n;

	if (!e->rel[0]) {
		e->retries_left = 0; /* nothing to retry: without this the loop never sleeps */
		return;		     /* the attach cgroup itself is not a pod */
	}
	full_path(cw, e->rel, path, sizeof(path));
	n = cgroup_read_procs(path, pids, MAX_PROCS);
	if (n < 0)
		n = 0;
	for (int i = 0; i < n; i++) {
		struct pod *p = e->pod_id ? pods_find_id(cw->pods, e->pod_id) : NULL;
		__u64 ino;
		int err;

		if (netns_ino_of_pid(pids[i], &ino) || ino == cw->pods->own_netns_ino)
			continue;
		if (p && p->netns_ino == ino)
			return; /* unchanged */
		if (!p)
			e->pod_id = 0; /* removed by hand meanwhile: we hold nothing */
		if (pods_is_excluded(cw->pods, ino))
			return;
		entry_release_pod(cw, e);
		cgroup_id_of(path, &cgid);
		err = pods_enroll(cw->pods, pids[i], cgid, e->rel, false, &p);
		if (err) {
			pr_warn("cannot enroll pod %s (pid %d): %s", e->rel, (int)pids[i],
				strerror(-err));
			e->retries_left = 0;
			return;
		}
		e->pod_id = p->id;
		e->retries_left = 0;
		return;
	}
	entry_release_pod(cw, e);
	/* Processes that have joined the cgroup but not yet their netns: look again soon. */
	if (n > 0 && e->retries_left > 0) {
		e->retries_left--;
		e->retry_at = now_ms + CGWATCH_RETRY_MS;
	} else {
		e->retries_left = 0;
	}
}

static void remove_entry(struct cgwatch *cw, struct cg_entry *e)
{
	entry_release_pod(cw, e);
	if (e->wd_dir >= 0)
		inotify_rm_watch(cw->ifd, e->wd_dir);
	if (e->wd_events >= 0)
		inotify_rm_watch(cw->ifd, e->wd_events);
	list_del_init(&e->node);
	free(e);
}

/* Removes rel and everything below it. */
static void remove_tree(struct cgwatch *cw, const char *rel)
{
	struct list_head *pos, *tmp;
	size_t n = strlen(rel);

	list_for_each_safe (pos, tmp, &cw->cgroups) {
		struct cg_entry *e = list_entry(pos, struct cg_entry, node);

		if (strncmp(e->rel, rel, n) == 0 && (e->rel[n] == '\0' || e->rel[n] == '/'))
			remove_entry(cw, e);
	}
}

/* Watches rel and evaluates it if it is new, then descends into its children (which may have
 * been created before the watch, or missed when events were lost). */
static void add_tree(struct cgwatch *cw, const char *rel, int depth, uint64_t now_ms)
{
	char path[PATH_MAX], file[PATH_MAX + 16];
	struct cg_entry *e;
	struct dirent *de;
	DIR *d;

	if (depth > CGWATCH_MAX_DEPTH)
		return;
	full_path(cw, rel, path, sizeof(path));
	if (!find_rel(cw, rel)) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return;
		snprintf(e->rel, sizeof(e->rel), "%s", rel);
		e->depth = depth;
		e->wd_dir = inotify_add_watch(cw->ifd, path, DIR_EVENTS);
		snprintf(file, sizeof(file), "%s/cgroup.events", path);
		e->wd_events = rel[0] ? inotify_add_watch(cw->ifd, file, IN_MODIFY) : -1;
		if (e->wd_dir < 0) {
			pr_debug("cannot watch cgroup %s: %m", path);
			free(e);
			return;
		}
		list_add_tail(&e->node, &cw->cgroups);
		e->retries_left = CGWATCH_RETRIES;
		evaluate(cw, e, now_ms);
	}
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char child[PATH_MAX];

		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if (rel[0])
			snprintf(child, sizeof(child), "%s/%s", rel, de->d_name);
		else
			snprintf(child, sizeof(child), "%s", de->d_name);
		add_tree(cw, child, depth + 1, now_ms);
	}
	closedir(d);
}

/* Prunes cgroups that vanished and discovers ones we missed: the periodic safety net, and the
 * recovery when inotify's queue overflowed and events were lost. */
static void rescan(struct cgwatch *cw, uint64_t now_ms)
{
	struct list_head *pos, *tmp;
	char path[PATH_MAX];
	struct stat st;

	list_for_each_safe (pos, tmp, &cw->cgroups) {
		struct cg_entry *e = list_entry(pos, struct cg_entry, node);

		full_path(cw, e->rel, path, sizeof(path));
		if (e->rel[0] && stat(path, &st) != 0)
			remove_tree(cw, e->rel);
	}
	add_tree(cw, "", 0, now_ms);
}

int cgwatch_init(struct cgwatch *cw, const char *root, struct pods *pods)
{
	memset(cw, 0, sizeof(*cw));
	snprintf(cw->root, sizeof(cw->root), "%s", root);
	list_init(&cw->cgroups);
	cw->pods = pods;
	cw->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (cw->ifd < 0)
		return -errno;
	add_tree(cw, "", 0, 0);
	if (list_empty(&cw->cgroups)) {
		close(cw->ifd);
		cw->ifd = -1;
		return -EIO;
	}
	return 0;
}

void cgwatch_process(struct cgwatch *cw, uint64_t now_ms)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t len;

	while ((len = read(cw->ifd, buf, sizeof(buf))) > 0) {
		for (char *ptr = buf; ptr < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *)ptr;
			bool is_events = false;
			struct cg_entry *e;

			ptr += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				pr_warn("cgroup events were lost (inotify queue overflow): "
					"rescanning %s",
					cw->root);
				rescan(cw, now_ms);
				continue;
			}
			e = find_wd(cw, ev->wd, &is_events);
			if (!e)
				continue;
			if (is_events) {
				if (ev->mask & IN_MODIFY) {
					e->retries_left = CGWATCH_RETRIES;
					evaluate(cw, e, now_ms);
				}
				continue;
			}
			if (!(ev->mask & IN_ISDIR) || !ev->len) {
				if (ev->mask & IN_IGNORED)
					remove_tree(cw, e->rel);
				continue;
			}
			char child[PATH_MAX];

			if (e->rel[0])
				snprintf(child, sizeof(child), "%s/%s", e->rel, ev->name);
			else
				snprintf(child, sizeof(child), "%s", ev->name);
			if (ev->mask & (IN_CREATE | IN_MOVED_TO))
				add_tree(cw, child, e->depth + 1, now_ms);
			else if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
				remove_tree(cw, child);
		}
	}
}

int cgwatch_tick(struct cgwatch *cw, uint64_t now_ms)
{
	struct list_head *pos, *tmp;
	uint64_t next = now_ms + CGWATCH_RESYNC_MS;
	bool resync = now_ms >= cw->next_resync;

	if (resync) {
		cw->next_resync = now_ms + CGWATCH_RESYNC_MS;
		rescan(cw, now_ms);
	} else if (cw->next_resync < next) {
		next = cw->next_resync;
	}
	list_for_each_safe (pos, tmp, &cw->cgroups) {
		struct cg_entry *e = list_entry(pos, struct cg_entry, node);

		if (resync || (e->retries_left > 0 && now_ms >= e->retry_at))
			evaluate(cw, e, now_ms);
		if (e->retries_left > 0 && e->retry_at < next)
			next = e->retry_at;
	}
	int linger = pods_tick(cw->pods, now_ms);

	if (linger >= 0 && now_ms + (uint64_t)linger < next)
		next = now_ms + (uint64_t)linger;
	return next > now_ms ? (int)(next - now_ms) : 0;
}

void cgwatch_destroy(struct cgwatch *cw)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &cw->cgroups)
		remove_entry(cw, list_entry(pos, struct cg_entry, node));
	if (cw->ifd >= 0)
		close(cw->ifd);
	cw->ifd = -1;
}
