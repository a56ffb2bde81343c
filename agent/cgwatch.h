/* Watches the pod cgroup tree below --cgroup with inotify and keeps pods enrolled to match. */
#ifndef SHUNT_AGENT_CGWATCH_H
#define SHUNT_AGENT_CGWATCH_H

#include <limits.h>
#include <stdint.h>

#include "lib/list.h"

#define CGWATCH_MAX_DEPTH 8   /* kubepods/burstable/pod<uid>/<container> is 3 */
#define CGWATCH_RETRY_MS  100 /* re-check a populated cgroup whose processes have not */
#define CGWATCH_RETRIES	  20  /* joined their netns yet (cgroup joined before setns) */
#define CGWATCH_RESYNC_MS 5000

struct pods;

struct cgwatch {
	char root[PATH_MAX];
	int ifd;
	struct list_head cgroups; /* struct cg_entry */
	struct pods *pods;
	uint64_t next_resync;
};

int cgwatch_init(struct cgwatch *cw, const char *root, struct pods *pods);
/* The inotify fd, for the caller's epoll. */
static inline int cgwatch_fd(const struct cgwatch *cw)
{
	return cw->ifd;
}
/* Handles pending inotify events. */
void cgwatch_process(struct cgwatch *cw, uint64_t now_ms);
/* Retries and periodic resync; returns the ms until it wants to run again. */
int cgwatch_tick(struct cgwatch *cw, uint64_t now_ms);
void cgwatch_destroy(struct cgwatch *cw);

#endif
