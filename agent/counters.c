/* Per-CPU counter summing and map iteration over shunt's pinned maps. */
#include "agent/counters.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {
#define COUNTER_NAME(id, name, help) name,
	SHUNT_STATS(COUNTER_NAME)
#undef COUNTER_NAME
};
static const char *const helps[] = {
#define COUNTER_HELP(id, name, help) help,
	SHUNT_STATS(COUNTER_HELP)
#undef COUNTER_HELP
};

const char *counter_name(enum shunt_stat s)
{
	return s < SHUNT_STAT__MAX ? names[s] : "?";
}

const char *counter_help(enum shunt_stat s)
{
	return s < SHUNT_STAT__MAX ? helps[s] : "?";
}

int counters_read(int stats_fd, __u64 netns, struct shunt_counters *out)
{
	int ncpu = libbpf_num_possible_cpus();
	struct shunt_counters *percpu;

	memset(out, 0, sizeof(*out));
	if (ncpu <= 0)
		return -EINVAL;
	percpu = calloc((size_t)ncpu, sizeof(*percpu));
	if (!percpu)
		return -ENOMEM;
	if (bpf_map_lookup_elem(stats_fd, &netns, percpu)) {
		int err = -errno;

		free(percpu);
		return err;
	}
	for (int cpu = 0; cpu < ncpu; cpu++)
		for (int i = 0; i < SHUNT_STAT__MAX; i++)
			out->v[i] += percpu[cpu].v[i];
	free(percpu);
	return 0;
}

int counters_for_each(int stats_fd,
		      void (*fn)(void *ctx, __u64 netns, const struct shunt_counters *c), void *ctx)
{
	__u64 key, next;
	void *prev = NULL;

	while (bpf_map_get_next_key(stats_fd, prev, &next) == 0) {
		struct shunt_counters c;

		key = next;
		prev = &key;
		if (counters_read(stats_fd, key, &c) == 0)
			fn(ctx, key, &c);
	}
	return errno == ENOENT ? 0 : -errno;
}

int pod_entry_read(int mesh_fd, __u64 netns, struct shunt_pod *out)
{
	return bpf_map_lookup_elem(mesh_fd, &netns, out) ? -errno : 0;
}
