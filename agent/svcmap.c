/* Keeps the kernel service LB's maps (services, service_slots) in step with the snapshot. */
#include "agent/svcmap.h"

#include <bpf/bpf.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "lib/addr.h"
#include "lib/log.h"
#include "proxy/config.h"

#ifndef IPPROTO_TCP
#define IPPROTO_TCP 6
#endif

static int key_cmp(const void *a, const void *b)
{
	return memcmp(&((const struct svcmap_entry *)a)->key,
		      &((const struct svcmap_entry *)b)->key, sizeof(struct shunt_svc_key));
}

void svcmap_entries_free(struct svcmap_entry *e, size_t n)
{
	for (size_t i = 0; e && i < n; i++)
		free(e[i].slots);
	free(e);
}

void svcmap_init(struct svcmap *m, int svc_fd, int slot_fd)
{
	memset(m, 0, sizeof(*m));
	m->svc_fd = svc_fd;
	m->slot_fd = slot_fd;
	m->next_id = 1;
}

void svcmap_free(struct svcmap *m)
{
	svcmap_entries_free(m->cur, m->ncur);
	m->cur = NULL;
	m->ncur = 0;
}

static uint32_t gcd(uint32_t a, uint32_t b)
{
	while (b) {
		uint32_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* Fills e->slots from the cluster's healthy endpoints of its best priority; weights become
 * repeated slots, scaled down to SHUNT_SVC_MAX_SLOTS. -ENOMEM, or 1 if capped. The slots are
 * built on the stack and kept at their size: the agent holds them for every service (10,000
 * services at the full SHUNT_SVC_MAX_SLOTS would be 50 MB). */
static int backends_of(struct svcmap_entry *e, const struct px_cluster *c)
{
	struct shunt_svc_backend slots[SHUNT_SVC_MAX_SLOTS];
	uint32_t best = UINT32_MAX, n = 0, g = 0, nslots = 0, capped = 0;
	uint64_t total = 0;

	for (uint32_t i = 0; i < c->nendpoints; i++)
		if (c->endpoints[i].healthy && c->endpoints[i].priority < best)
			best = c->endpoints[i].priority;
	for (uint32_t i = 0; i < c->nendpoints; i++) {
		const struct px_endpoint *ep = &c->endpoints[i];

		if (!ep->healthy || ep->priority != best)
			continue;
		n++;
		g = gcd(g, ep->weight ? ep->weight : 1);
		total += ep->weight ? ep->weight : 1;
	}
	if (n == 0)
		return 0;
	if (n > SHUNT_SVC_MAX_SLOTS)
		capped = 1;
	for (uint32_t i = 0; i < c->nendpoints && nslots < SHUNT_SVC_MAX_SLOTS; i++) {
		const struct px_endpoint *ep = &c->endpoints[i];
		uint64_t w = ep->weight ? ep->weight : 1, k;

		if (!ep->healthy || ep->priority != best)
			continue;
		k = w / g;
		if (total / g > SHUNT_SVC_MAX_SLOTS) {
			k = w * SHUNT_SVC_MAX_SLOTS / total;
			capped = 1;
		}
		if (k == 0)
			k = 1;
		/* A compound literal zeroes the pad: the maps and same_service() compare bytes. */
		for (; k > 0 && nslots < SHUNT_SVC_MAX_SLOTS; k--)
			slots[nslots++] =
				(struct shunt_svc_backend){.addr = ep->addr, .port = ep->port};
		e->val.nbackends++;
	}
	e->slots = malloc(nslots * sizeof(*e->slots));
	if (!e->slots)
		return -ENOMEM;
	memcpy(e->slots, slots, nslots * sizeof(*e->slots));
	e->nslots = nslots;
	return (int)capped;
}

/* Nothing the kernel cannot see at connect time may decide which chain a connection takes. */
static bool chain_is_l4(const struct px_filter_chain *fc)
{
	const struct px_filter_chain_match *m = &fc->match;

	return !m->transport_protocol && m->nserver_names == 0 && m->napplication_protocols == 0 &&
	       m->nsource_prefix_ranges == 0 && m->nsource_ports == 0;
}

struct desired {
	struct svcmap_entry *e;
	size_t n, cap;
	uint32_t truncated;
	int err;
};

static void add_service(struct desired *d, const struct px_snapshot *s,
			const struct px_filter_chain *fc, const struct shunt_addr *vip, __u16 port)
{
	const struct px_cluster *c = px_cluster_find(s, fc->tcp.cluster);
	struct svcmap_entry *e;
	int rc;

	if (d->err || port == 0)
		return;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct svcmap_entry *ne = realloc(d->e, cap * sizeof(*ne));

		if (!ne) {
			d->err = -ENOMEM;
			return;
		}
		d->e = ne;
		d->cap = cap;
	}
	e = &d->e[d->n];
	memset(e, 0, sizeof(*e));
	e->key.vip = *vip;
	e->key.port = port;
	e->key.proto = IPPROTO_TCP;
	e->key.family = addr_is_v4(vip) ? AF_INET : AF_INET6;
	snprintf(e->val.cluster, sizeof(e->val.cluster), "%s", fc->tcp.cluster);
	if (c && (c->type == PX_CLUSTER_STATIC || c->type == PX_CLUSTER_EDS) && chain_is_l4(fc) &&
	    c->kernel_lb)
		e->val.flags |= SHUNT_SVC_F_KERNEL_LB;
	if (c) {
		rc = backends_of(e, c);
		if (rc < 0) {
			d->err = rc;
			return;
		}
		d->truncated += (uint32_t)rc;
	}
	e->val.count = e->nslots;
	d->n++;
}

static bool addr_is_any(const struct shunt_addr *a)
{
	return a->ip[0] == 0 && a->ip[1] == 0 && (a->ip[2] == 0 || a->ip[2] == htonl(0xffff)) &&
	       a->ip[3] == 0;
}

static void services_of_chain(struct desired *d, const struct px_snapshot *s,
			      const struct px_listener *l, const struct px_filter_chain *fc)
{
	__u16 port;

	if (fc->kind != PX_NF_TCP_PROXY || !fc->tcp.cluster || fc->tcp.nweighted)
		return;
	port = fc->match.dst_port ? (__u16)fc->match.dst_port : l->port;
	if (!addr_is_any(&l->addr)) {
		add_service(d, s, fc, &l->addr, port);
		return;
	}
	for (uint32_t i = 0; i < fc->match.nprefix_ranges; i++)
		if (fc->match.prefix_ranges[i].prefix_len == 128)
			add_service(d, s, fc, &fc->match.prefix_ranges[i].addr, port);
}

struct svcmap_entry *svcmap_desired(const struct px_snapshot *s, size_t *n, uint32_t *truncated)
{
	struct desired d = {0};
	size_t w = 0;

	for (uint32_t i = 0; s && i < s->nlisteners; i++) {
		const struct px_listener *l = &s->listeners[i];

		if (l->use_original_dst || l->bind_to_port)
			continue;
		for (uint32_t k = 0; k < l->nchains; k++)
			services_of_chain(&d, s, l, &l->chains[k]);
		if (l->default_chain)
			services_of_chain(&d, s, l, l->default_chain);
	}
	if (d.err) {
		svcmap_entries_free(d.e, d.n);
		return NULL;
	}
	if (!d.e) /* no services: a valid empty list (and qsort may not see a NULL) */
		d.e = malloc(1);
	if (!d.e)
		return NULL;
	qsort(d.e, d.n, sizeof(*d.e), key_cmp);
	/* The first chain that names a VIP:port wins, as it would for the proxy's matcher. */
	for (size_t i = 0; i < d.n; i++) {
		if (w > 0 && key_cmp(&d.e[w - 1], &d.e[i]) == 0) {
			free(d.e[i].slots);
			continue;
		}
		d.e[w++] = d.e[i];
	}
	*n = w;
	if (truncated)
		*truncated = d.truncated;
	return d.e;
}

/* ---- writing ----------------------------------------------------------------------------- */

/* Keys and values of one phase, written with one batch call where the kernel has them. */
struct batch {
	void *keys, *vals;
	size_t n, cap, ksz, vsz;
};

static int batch_add(struct batch *b, const void *k, const void *v)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		void *nk = realloc(b->keys, cap * b->ksz), *nv = b->vsz ? NULL : nk;

		if (!nk)
			return -ENOMEM;
		b->keys = nk;
		if (b->vsz) {
			nv = realloc(b->vals, cap * b->vsz);
			if (!nv)
				return -ENOMEM;
			b->vals = nv;
		}
		b->cap = cap;
	}
	memcpy((char *)b->keys + b->n * b->ksz, k, b->ksz);
	if (b->vsz)
		memcpy((char *)b->vals + b->n * b->vsz, v, b->vsz);
	b->n++;
	return 0;
}

static void batch_free(struct batch *b)
{
	free(b->keys);
	free(b->vals);
	memset(b, 0, sizeof(*b));
}

/* Updates (vals) or deletes (no vals) every element of b: in batches if the kernel can, else one
 * by one. Deleting what is already gone is not an error. Returns how many failed. */
static uint32_t batch_run(struct svcmap *m, int fd, struct batch *b)
{
	uint32_t failed = 0;
	size_t done = 0;

	while (m->batch >= 0 && done < b->n) {
		__u32 count = (__u32)(b->n - done);
		int rc =
			b->vsz ? bpf_map_update_batch(fd, (char *)b->keys + done * b->ksz,
						      (char *)b->vals + done * b->vsz, &count, NULL)
			       : bpf_map_delete_batch(fd, (char *)b->keys + done * b->ksz, &count,
						      NULL);

		if (rc == 0) {
			m->batch = 1;
			done = b->n;
			break;
		}
		if ((errno == EINVAL || errno == 524 /* ENOTSUPP */ || errno == EOPNOTSUPP) &&
		    m->batch == 0 && count == 0) {
			m->batch = -1;
			break;
		}
		/* The element at done + count failed (full map, or already deleted): step over
		 * it one by one, then resume batching. */
		done += count;
		if (done < b->n) {
			const void *k = (char *)b->keys + done * b->ksz;

			if (b->vsz ? bpf_map_update_elem(fd, k, (char *)b->vals + done * b->vsz,
							 BPF_ANY)
				   : (bpf_map_delete_elem(fd, k) && errno != ENOENT))
				failed++;
			done++;
		}
	}
	for (; done < b->n; done++) {
		const void *k = (char *)b->keys + done * b->ksz;

		if (b->vsz ? bpf_map_update_elem(fd, k, (char *)b->vals + done * b->vsz, BPF_ANY)
			   : (bpf_map_delete_elem(fd, k) && errno != ENOENT))
			failed++;
	}
	return failed;
}

static int add_slots(struct batch *b, const struct svcmap_entry *e)
{
	for (uint32_t i = 0; i < e->nslots; i++) {
		struct shunt_svc_slot_key k = {
			.id = e->val.id, .generation = e->val.generation, .slot = i};
		int rc = batch_add(b, &k, &e->slots[i]);

		if (rc)
			return rc;
	}
	return 0;
}

static bool same_service(const struct svcmap_entry *a, const struct svcmap_entry *b)
{
	return a->val.flags == b->val.flags && a->nslots == b->nslots &&
	       strcmp(a->val.cluster, b->val.cluster) == 0 &&
	       a->val.nbackends == b->val.nbackends &&
	       (a->nslots == 0 || memcmp(a->slots, b->slots, a->nslots * sizeof(*a->slots)) == 0);
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Whether the maps hold e exactly as it was meant to be written: its entry and every slot. */
static bool intact(const struct svcmap *m, const struct svcmap_entry *e)
{
	struct shunt_svc v;

	if (bpf_map_lookup_elem(m->svc_fd, &e->key, &v) || memcmp(&v, &e->val, sizeof(v)))
		return false;
	for (uint32_t i = 0; i < e->nslots; i++) {
		struct shunt_svc_slot_key k = {
			.id = e->val.id, .generation = e->val.generation, .slot = i};
		struct shunt_svc_backend b;

		if (bpf_map_lookup_elem(m->slot_fd, &k, &b) || memcmp(&b, &e->slots[i], sizeof(b)))
			return false;
	}
	return true;
}

static int id_gen_cmp(const void *a, const void *b)
{
	const __u32 *x = a, *y = b;

	return x[0] != y[0] ? (x[0] < y[0] ? -1 : 1) : x[1] != y[1] ? (x[1] < y[1] ? -1 : 1) : 0;
}

/* Every key of a map, read with get_next_key (deleting while iterating would restart it). */
static int all_keys(int fd, size_t ksz, struct batch *out)
{
	char k[64], nk[64];
	void *prev = NULL;

	while (bpf_map_get_next_key(fd, prev, nk) == 0) {
		int rc = batch_add(out, nk, NULL);

		if (rc)
			return rc;
		memcpy(k, nk, ksz);
		prev = k;
	}
	return 0;
}

/* Before a stale map is written again: entries of cur that the maps do not hold exactly are
 * marked broken (the merge then rewrites them under the next generation), and
 * what nothing refers to is deleted to make room: service entries that are neither wanted nor
 * intact in cur, and slots not of an intact entry's generation. Deleting the slots of a broken
 * entry only sends its connects to the proxy sooner; they were not all there anyway. */
static int repair(struct svcmap *m, const struct svcmap_entry *want, size_t nwant,
		  struct svcmap_stats *st)
{
	struct batch keys = {.ksz = sizeof(struct shunt_svc_key)};
	struct batch slots = {.ksz = sizeof(struct shunt_svc_slot_key)};
	struct batch junk = {.ksz = sizeof(struct shunt_svc_key)};
	struct batch junk_slots = {.ksz = sizeof(struct shunt_svc_slot_key)};
	__u32(*live)[2] = calloc(m->ncur + 1, sizeof(*live));
	size_t nlive = 0;
	int rc;

	if (!live)
		return -ENOMEM;
	for (size_t i = 0; i < m->ncur; i++) {
		if (intact(m, &m->cur[i])) {
			live[nlive][0] = m->cur[i].val.id;
			live[nlive++][1] = m->cur[i].val.generation;
		} else {
			m->cur[i].broken = true;
			st->repaired++;
		}
	}
	qsort(live, nlive, sizeof(*live), id_gen_cmp);
	rc = all_keys(m->svc_fd, keys.ksz, &keys);
	if (!rc)
		rc = all_keys(m->slot_fd, slots.ksz, &slots);
	for (size_t i = 0; !rc && i < keys.n; i++) {
		struct svcmap_entry probe = {0};
		const void *k = (char *)keys.keys + i * keys.ksz;

		memcpy(&probe.key, k, sizeof(probe.key));
		if (!bsearch(&probe, want, nwant, sizeof(*want), key_cmp) &&
		    !bsearch(&probe, m->cur, m->ncur, sizeof(*m->cur), key_cmp))
			rc = batch_add(&junk, k, NULL);
	}
	for (size_t i = 0; !rc && i < slots.n; i++) {
		const struct shunt_svc_slot_key *k =
			(const void *)((char *)slots.keys + i * slots.ksz);
		__u32 ig[2] = {k->id, k->generation};

		if (!bsearch(ig, live, nlive, sizeof(*live), id_gen_cmp))
			rc = batch_add(&junk_slots, k, NULL);
	}
	if (!rc) {
		st->errors += batch_run(m, m->svc_fd, &junk);
		st->errors += batch_run(m, m->slot_fd, &junk_slots);
		st->slots_deleted += (uint32_t)junk_slots.n;
	}
	batch_free(&keys);
	batch_free(&slots);
	batch_free(&junk);
	batch_free(&junk_slots);
	free(live);
	return rc;
}

int svcmap_apply_entries(struct svcmap *m, struct svcmap_entry *want, size_t nwant,
			 struct svcmap_stats *st)
{
	struct batch gone = {.ksz = sizeof(struct shunt_svc_key)};
	struct batch newslots = {.ksz = sizeof(struct shunt_svc_slot_key),
				 .vsz = sizeof(struct shunt_svc_backend)};
	struct batch svcs = {.ksz = sizeof(struct shunt_svc_key), .vsz = sizeof(struct shunt_svc)};
	struct batch oldslots = {.ksz = sizeof(struct shunt_svc_slot_key)};
	uint64_t t0 = now_us();
	size_t i = 0, j = 0;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	if (m->stale) {
		rc = repair(m, want, nwant, st);
		if (rc) {
			svcmap_entries_free(want, nwant);
			return rc;
		}
	}
	/* Merge the two sorted lists: ids and generations carry over, changes get g+1. */
	while (!rc && (i < m->ncur || j < nwant)) {
		int c = i == m->ncur ? 1 : j == nwant ? -1 : key_cmp(&m->cur[i], &want[j]);

		if (c < 0) { /* removed: entry first, then its slots */
			rc = batch_add(&gone, &m->cur[i].key, NULL);
			if (!rc)
				rc = add_slots(&oldslots, &m->cur[i]);
			st->removed++;
			i++;
		} else if (c > 0) { /* added */
			want[j].val.id = m->next_id++;
			want[j].val.generation = 1;
			rc = add_slots(&newslots, &want[j]);
			if (!rc)
				rc = batch_add(&svcs, &want[j].key, &want[j].val);
			st->added++;
			j++;
		} else {
			want[j].val.id = m->cur[i].val.id;
			if (!m->cur[i].broken && same_service(&m->cur[i], &want[j])) {
				want[j].val.generation = m->cur[i].val.generation;
				st->unchanged++;
			} else {
				want[j].val.generation = m->cur[i].val.generation + 1;
				rc = add_slots(&newslots, &want[j]);
				if (!rc)
					rc = batch_add(&svcs, &want[j].key, &want[j].val);
				if (!rc)
					rc = add_slots(&oldslots, &m->cur[i]);
				st->changed++;
			}
			i++;
			j++;
		}
	}
	if (!rc) {
		st->errors += batch_run(m, m->svc_fd, &gone);
		st->errors += batch_run(m, m->slot_fd, &newslots);
		st->errors += batch_run(m, m->svc_fd, &svcs);
		st->errors += batch_run(m, m->slot_fd, &oldslots);
		st->slots_written = (uint32_t)newslots.n;
		st->slots_deleted = (uint32_t)oldslots.n;
	}
	st->duration_us = now_us() - t0;
	st->batched = m->batch > 0;
	batch_free(&gone);
	batch_free(&newslots);
	batch_free(&svcs);
	batch_free(&oldslots);
	if (rc) {
		svcmap_entries_free(want, nwant);
		return rc;
	}
	svcmap_entries_free(m->cur, m->ncur);
	m->cur = want;
	m->ncur = nwant;
	m->stale = st->errors > 0;
	st->services = (uint32_t)nwant;
	return st->errors ? -EIO : 0;
}

int svcmap_apply(struct svcmap *m, const struct px_snapshot *s, struct svcmap_stats *st)
{
	uint32_t truncated = 0;
	size_t n = 0;
	struct svcmap_entry *want = svcmap_desired(s, &n, &truncated);
	int rc;

	if (!want) {
		memset(st, 0, sizeof(*st));
		return -ENOMEM;
	}
	rc = svcmap_apply_entries(m, want, n, st);
	st->truncated = truncated;
	return rc;
}
