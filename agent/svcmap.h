/* The kernel service LB's maps, kept in step with the active snapshot: which VIP:port services
 * exist, their backends, and whether connect4/6 may balance them without the proxy. */
#ifndef SHUNT_AGENT_SVCMAP_H
#define SHUNT_AGENT_SVCMAP_H

#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/lib/shunt_maps.h"

struct px_snapshot;

#define SVCMAP_RETRY_MS 2000 /* how soon a failed apply is tried again */

/* One service as the agent wants it (and last wrote it). Owns slots. */
struct svcmap_entry {
	struct shunt_svc_key key;
	struct shunt_svc val; /* id and generation as written */
	struct shunt_svc_backend *slots;
	uint32_t nslots;
	bool broken; /* found not as written by a repair (see svcmap_apply) */
};

struct svcmap_stats {
	uint32_t services; /* in the maps after the apply */
	uint32_t added, changed, removed, unchanged;
	uint32_t slots_written, slots_deleted;
	uint32_t errors;      /* map writes that failed (the service keeps its old entry) */
	uint32_t repaired;    /* services a stale map did not hold as written, rewritten */
	uint32_t truncated;   /* services with more backends than SHUNT_SVC_MAX_SLOTS */
	uint64_t duration_us; /* of the map writes */
	bool batched;	      /* BPF_MAP_*_BATCH was used */
};

struct svcmap {
	int svc_fd, slot_fd;
	struct svcmap_entry *cur; /* sorted by key */
	size_t ncur;
	uint32_t next_id;
	int batch; /* 1: batch ops work, 0: unknown, -1: the kernel lacks them */
	/* The last apply had failed writes: cur says what was meant, not what the maps hold. The
	 * next apply first checks every entry against the maps and rewrites what is not there. */
	bool stale;
};

void svcmap_init(struct svcmap *m, int svc_fd, int slot_fd);
void svcmap_free(struct svcmap *m);
/* Which services a snapshot defines: every listener that is not bound (bind_to_port false) and
 * not virtual, whose filter chain is a tcp_proxy to a single cluster, gives one service per VIP:
 * the listener's own address if it is not a wildcard, else each full-length prefix_range of the
 * chain, at the chain's destination_port or the listener's port. Kernel LB (SHUNT_SVC_F_KERNEL_LB)
 * is for those that are L4-only: a STATIC or EDS cluster, and a chain that matches on nothing the
 * kernel cannot see at connect (no server names, ALPN, transport protocol or source match), and
 * whose cluster is marked with metadata filter_metadata "shunt": {"kernel_lb": true} (DESIGN's
 * "services marked L4-only": unmarked ones stay with the proxy, for mTLS and telemetry).
 * Backends: the healthy endpoints of the highest priority that has one, each weight replicated
 * into slots (equal weights: one slot each). Returns a sorted array (free with
 * svcmap_entries_free) or NULL on ENOMEM; *n its length; *truncated counts capped services. */
struct svcmap_entry *svcmap_desired(const struct px_snapshot *s, size_t *n, uint32_t *truncated);
void svcmap_entries_free(struct svcmap_entry *e, size_t n);
/* Writes what changed between the maps and the snapshot, by the generation protocol (see
 * bpf/lib/maps.h). 0, or a negative errno: -ENOMEM before any write (nothing changed), -EIO when
 * some element writes failed (a full map; counted in st->errors, logged by the caller: a service
 * whose slots are missing shows lb_slot_miss and is served by the proxy). After -EIO the map is
 * stale: the next apply (the caller retries, see SVCMAP_RETRY_MS) repairs it from what the maps
 * really hold, deleting entries and slots nothing refers to before writing. */
int svcmap_apply(struct svcmap *m, const struct px_snapshot *s, struct svcmap_stats *st);
/* Same, from a list built by svcmap_desired (taken over: freed by svcmap). For tests/bench. */
int svcmap_apply_entries(struct svcmap *m, struct svcmap_entry *want, size_t nwant,
			 struct svcmap_stats *st);

#endif
