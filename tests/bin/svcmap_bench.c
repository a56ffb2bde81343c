/* svcmap_bench: how long the kernel service LB's map writes take for many services.
 *
 *   svcmap_bench [SERVICES [BACKENDS [single]]]   (defaults 10000 and 10; single: one
 *                                                 syscall per element, for comparison)
 *
 * Creates private (unpinned) maps shaped like bpf/lib/maps.h's services and service_slots and
 * times agent/svcmap.c: the first write of every service, a change of one backend in 10% of
 * them (generation protocol: new slots, entry swap, old slots deleted), an apply with no change,
 * and the removal of all. One line per step: "step=NAME us=N services=N slots=N batched=0|1".
 * Exit 1 if a step reports an error or the maps do not hold what was written.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/svcmap.h"

static struct svcmap_entry *make(size_t n, uint32_t nb, uint32_t bump_every)
{
	struct svcmap_entry *e = calloc(n, sizeof(*e));

	for (size_t i = 0; e && i < n; i++) {
		e[i].key.vip.ip[2] = htonl(0xffff);
		e[i].key.vip.ip[3] = htonl(0x0a600000u + (uint32_t)i); /* 10.96.x.y */
		e[i].key.port = 8080;
		e[i].key.proto = 6;
		e[i].key.family = AF_INET;
		e[i].val.flags = SHUNT_SVC_F_KERNEL_LB;
		snprintf(e[i].val.cluster, sizeof(e[i].val.cluster), "outbound|8080||svc-%zu", i);
		e[i].slots = calloc(nb, sizeof(*e[i].slots));
		if (!e[i].slots)
			exit(1);
		for (uint32_t b = 0; b < nb; b++) {
			e[i].slots[b].addr.ip[2] = htonl(0xffff);
			e[i].slots[b].addr.ip[3] = htonl(0x0a010000u + (uint32_t)(i * nb + b));
			e[i].slots[b].port = 8080;
		}
		if (bump_every && i % bump_every == 0)
			e[i].slots[0].port = 9090;
		e[i].nslots = e[i].val.count = e[i].val.nbackends = nb;
	}
	return e;
}

static int step(struct svcmap *m, const char *name, struct svcmap_entry *e, size_t n)
{
	struct svcmap_stats st;
	int rc = svcmap_apply_entries(m, e, n, &st);

	printf("step=%s us=%llu services=%u added=%u changed=%u removed=%u slots_written=%u "
	       "slots_deleted=%u batched=%d errors=%u\n",
	       name, (unsigned long long)st.duration_us, st.services, st.added, st.changed,
	       st.removed, st.slots_written, st.slots_deleted, st.batched, st.errors);
	return rc;
}

static long count(int fd, size_t ksz)
{
	char k[64], nk[64];
	void *prev = NULL;
	long n = 0;

	while (bpf_map_get_next_key(fd, prev, nk) == 0) {
		memcpy(k, nk, ksz);
		prev = k;
		n++;
	}
	return n;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
	uint32_t nb = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 10;
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_NO_PREALLOC);
	struct svcmap m;
	int svc, slots, rc = 0;

	if (n == 0 || n > SHUNT_MAX_SERVICES || nb == 0 || nb > SHUNT_SVC_MAX_SLOTS ||
	    2 * n * nb > SHUNT_MAX_SVC_SLOTS) {
		fprintf(stderr, "svcmap_bench: SERVICES 1..%d, BACKENDS 1..%d, 2xSxB <= %d\n",
			SHUNT_MAX_SERVICES, SHUNT_SVC_MAX_SLOTS, SHUNT_MAX_SVC_SLOTS);
		return 2;
	}
	svc = bpf_map_create(BPF_MAP_TYPE_HASH, "services", sizeof(struct shunt_svc_key),
			     sizeof(struct shunt_svc), SHUNT_MAX_SERVICES, &o);
	slots = bpf_map_create(BPF_MAP_TYPE_HASH, "service_slots",
			       sizeof(struct shunt_svc_slot_key), sizeof(struct shunt_svc_backend),
			       SHUNT_MAX_SVC_SLOTS, &o);
	if (svc < 0 || slots < 0) {
		perror("svcmap_bench: bpf_map_create (needs CAP_BPF)");
		return 1;
	}
	svcmap_init(&m, svc, slots);
	if (argc > 3 && strcmp(argv[3], "single") == 0)
		m.batch = -1;
	rc |= step(&m, "add_all", make(n, nb, 0), n);
	if (count(svc, sizeof(struct shunt_svc_key)) != (long)n ||
	    count(slots, sizeof(struct shunt_svc_slot_key)) != (long)(n * nb))
		rc = 1;
	rc |= step(&m, "change_10pct", make(n, nb, 10), n);
	if (count(slots, sizeof(struct shunt_svc_slot_key)) != (long)(n * nb))
		rc = 1;
	rc |= step(&m, "unchanged", make(n, nb, 10), n);
	rc |= step(&m, "remove_all", calloc(1, 1), 0);
	if (count(svc, sizeof(struct shunt_svc_key)) != 0 ||
	    count(slots, sizeof(struct shunt_svc_slot_key)) != 0)
		rc = 1;
	svcmap_free(&m);
	close(svc);
	close(slots);
	if (rc)
		fprintf(stderr, "svcmap_bench: a step failed or the maps disagree\n");
	return rc ? 1 : 0;
}
