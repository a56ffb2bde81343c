/* Reading shunt's pinned maps: per-pod kernel counters and enrolled pods. Used by shuntd (for
 * /stats and Prometheus) and by shuntctl (directly from the pins, even while shuntd is down). */
#ifndef SHUNT_AGENT_COUNTERS_H
#define SHUNT_AGENT_COUNTERS_H

#include <linux/types.h>

#include "bpf/lib/shunt_maps.h"
#include "lib/strbuf.h"

const char *counter_name(enum shunt_stat s);
const char *counter_help(enum shunt_stat s);
/* Sums one key's per-CPU counters. -ENOENT if the key is absent. */
int counters_read(int stats_fd, __u64 netns, struct shunt_counters *out);
/* Calls fn for every key of the stats map with its summed counters. */
int counters_for_each(int stats_fd,
		      void (*fn)(void *ctx, __u64 netns, const struct shunt_counters *c),
		      void *ctx);
/* Looks up the enrolled pod of a netns cookie in mesh_netns; -ENOENT if absent. */
int pod_entry_read(int mesh_fd, __u64 netns, struct shunt_pod *out);

#endif
