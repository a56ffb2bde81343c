/* Config snapshots: lifecycle, name index, listener and filter-chain selection. */
#include "proxy/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/addr.h"
#include "proxy/lb.h"
#include "proxy/rbac.h"
#include "proxy/tls.h"

/* ---- name index: open addressing, built once, read-only afterwards ------------------------- */

struct px_index {
	uint32_t mask;
	struct {
		const char *name;
		void *value;
	} slots[];
};

static struct px_index *index_new(struct arena *a, uint32_t n)
{
	uint32_t cap = 16;
	struct px_index *ix;

	while (cap < 2 * n)
		cap *= 2;
	ix = arena_alloc(a, sizeof(*ix) + cap * sizeof(ix->slots[0]));
	if (ix)
		ix->mask = cap - 1;
	return ix;
}

/* -EEXIST if the name is already there. */
static int index_add(struct px_index *ix, const char *name, void *value)
{
	for (uint32_t i = (uint32_t)px_hash_str(name) & ix->mask;; i = (i + 1) & ix->mask) {
		if (!ix->slots[i].name) {
			ix->slots[i].name = name;
			ix->slots[i].value = value;
			return 0;
		}
		if (strcmp(ix->slots[i].name, name) == 0)
			return -EEXIST;
	}
}

static void *index_get(const struct px_index *ix, const char *name)
{
	if (!ix || !name)
		return NULL;
	for (uint32_t i = (uint32_t)px_hash_str(name) & ix->mask;; i = (i + 1) & ix->mask) {
		if (!ix->slots[i].name)
			return NULL;
		if (strcmp(ix->slots[i].name, name) == 0)
			return ix->slots[i].value;
	}
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

struct px_snapshot *px_snapshot_new(void)
{
	struct px_snapshot *s = calloc(1, sizeof(*s));

	if (s)
		atomic_init(&s->refs, 1);
	return s;
}

void px_snapshot_get(struct px_snapshot *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

static void release_routes(struct px_snapshot *s)
{
	for (uint32_t i = 0; i < s->nroute_configs; i++)
		px_route_config_release(&s->route_configs[i]);
	for (uint32_t i = 0; i < s->nlisteners; i++) {
		struct px_listener *l = &s->listeners[i];

		for (uint32_t k = 0; k <= l->nchains; k++) {
			struct px_filter_chain *fc =
				k < l->nchains ? &l->chains[k] : l->default_chain;

			if (fc && fc->kind == PX_NF_HTTP && fc->http.inline_routes)
				px_route_config_release(fc->http.inline_routes);
		}
	}
}

void px_snapshot_put(struct px_snapshot *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	release_routes(s); /* compiled regexes live outside the arena */
	for (struct px_rbac *r = s->rbacs; r; r = r->next)
		px_rbac_release(r);
	for (uint32_t i = 0; i < s->nclusters; i++)
		px_cb_put(s->clusters[i].cbs);
	for (uint32_t i = 0; i < s->ntls; i++)
		px_tls_ctx_put(s->tls[i]);
	free(s->tls);
	arena_free(&s->arena);
	free(s);
}

int px_snapshot_own_tls(struct px_snapshot *s, struct px_tls_ctx *t)
{
	if (s->ntls == s->tls_cap) {
		uint32_t cap = s->tls_cap ? s->tls_cap * 2 : 8;
		struct px_tls_ctx **n = realloc(s->tls, cap * sizeof(*n));

		if (!n) {
			px_tls_ctx_put(t);
			return -ENOMEM;
		}
		s->tls = n;
		s->tls_cap = cap;
	}
	s->tls[s->ntls++] = t;
	return 0;
}

bool px_listener_terminates_tls(const struct px_listener *l)
{
	if (!l)
		return false;
	for (uint32_t i = 0; i < l->nchains; i++)
		if (px_transport_is_tls(&l->chains[i].transport))
			return true;
	return l->default_chain && px_transport_is_tls(&l->default_chain->transport);
}

const struct px_cluster *px_cluster_find(const struct px_snapshot *s, const char *name)
{
	return index_get(s->cluster_index, name);
}

const struct px_route_config *px_route_config_find(const struct px_snapshot *s, const char *name)
{
	return index_get(s->route_index, name);
}

static const char *errf(struct px_snapshot *s, const char *fmt, const char *a, const char *b)
{
	char buf[512];

	snprintf(buf, sizeof(buf), fmt, a, b ? b : "");
	return arena_strdup(&s->arena, buf);
}

static int check_cluster_ref(struct px_snapshot *s, const char *where, const char *cluster,
			     const char **err)
{
	if (px_cluster_find(s, cluster))
		return 0;
	*err = errf(s, "%s: unknown cluster \"%s\"", where, cluster);
	return -EINVAL;
}

/* Compiles a route configuration and checks that its routes name clusters that exist. */
static int check_routes(struct px_snapshot *s, struct px_route_config *rc, const char *what,
			const char **err)
{
	char where[512];
	int rc_err = px_route_config_finalize(&s->arena, rc, err);

	if (rc_err) {
		snprintf(where, sizeof(where), "%s \"%s\": %s", what, rc->name ? rc->name : "",
			 *err ? *err : "invalid");
		*err = arena_strdup(&s->arena, where);
		return rc_err;
	}
	for (uint32_t v = 0; v < rc->nvhosts; v++) {
		const struct px_vhost *vh = &rc->vhosts[v];

		for (uint32_t r = 0; r < vh->nroutes; r++) {
			const struct px_route *rt = &vh->routes[r];

			if (rt->kind != PX_ROUTE_FORWARD)
				continue;
			snprintf(where, sizeof(where), "%s \"%s\" virtual host \"%s\" route \"%s\"",
				 what, rc->name ? rc->name : "", vh->name ? vh->name : "",
				 rt->name ? rt->name : "");
			if (rt->action.cluster &&
			    check_cluster_ref(s, where, rt->action.cluster, err))
				return -EINVAL;
			for (uint32_t w = 0; w < rt->action.nweighted; w++)
				if (check_cluster_ref(s, where, rt->action.weighted[w].cluster,
						      err))
					return -EINVAL;
			if (!rt->action.cluster && !rt->action.nweighted &&
			    !rt->action.cluster_header) {
				*err = errf(s, "%s: no cluster%s", where, NULL);
				return -EINVAL;
			}
		}
	}
	return 0;
}

#define rc_ok_or_return(s, rc, what, err)                                                          \
	do {                                                                                       \
		int e_ = check_routes(s, rc, what, err);                                           \
		if (e_)                                                                            \
			return e_;                                                                 \
	} while (0)

/* An HTTP filter chain: inline routes are compiled; an RDS name is resolved when the snapshot
 * has that route configuration (until it arrives, requests get 404 NR, as Envoy's do). */
static int finalize_hcm(struct px_snapshot *s, const struct px_listener *l,
			struct px_filter_chain *fc, const char **err)
{
	struct px_hcm *h = &fc->http;

	if (h->inline_routes) {
		rc_ok_or_return(s, h->inline_routes, "inline route configuration", err);
		h->routes = h->inline_routes;
	} else if (h->rds_name) {
		h->routes = px_route_config_find(s, h->rds_name);
	} else {
		*err = errf(s,
			    "listener \"%s\" filter chain \"%s\": http_connection_manager "
			    "without route_config or rds",
			    l->name, fc->name ? fc->name : "");
		return -EINVAL;
	}
	if (!h->server_name)
		h->server_name = "envoy";
	if (!h->max_request_headers_kb)
		h->max_request_headers_kb = PX_HCM_MAX_HEADERS_KB_DEF;
	if (!h->max_headers_count)
		h->max_headers_count = PX_HCM_MAX_HEADERS_DEF;
	if (!h->idle_timeout_ms)
		h->idle_timeout_ms = PX_HCM_IDLE_MS_DEF;
	if (!h->stream_idle_timeout_ms)
		h->stream_idle_timeout_ms = PX_HCM_STREAM_IDLE_MS_DEF;
	return 0;
}

struct port_ent {
	__u16 port;
	uint32_t idx;
};

static int port_ent_cmp(const void *a, const void *b)
{
	const struct port_ent *x = a, *y = b;

	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* s->by_port: the listeners a destination can select, by port, then in snapshot order. */
static int index_by_port(struct px_snapshot *s)
{
	struct port_ent *e = malloc((s->nlisteners ? s->nlisteners : 1) * sizeof(*e));
	uint32_t n = 0;

	s->by_port = arena_new(&s->arena, uint32_t, s->nlisteners ? s->nlisteners : 1);
	if (!e || !s->by_port) {
		free(e);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < s->nlisteners; i++)
		if (!s->listeners[i].use_original_dst)
			e[n++] = (struct port_ent){.port = s->listeners[i].port, .idx = i};
	qsort(e, n, sizeof(*e), port_ent_cmp);
	for (uint32_t i = 0; i < n; i++)
		s->by_port[i] = e[i].idx;
	s->nby_port = n;
	free(e);
	return 0;
}

int px_snapshot_finalize(struct px_snapshot *s, const char **err)
{
	char where[256];
	int rc;

	*err = NULL;
	s->cluster_index = index_new(&s->arena, s->nclusters);
	if (!s->cluster_index)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->nclusters; i++) {
		struct px_cluster *c = &s->clusters[i];

		c->index = i;
		if (!c->name || !*c->name) {
			*err = errf(s, "clusters[%s]: a cluster needs a name%s", "?", NULL);
			return -EINVAL;
		}
		if (index_add(s->cluster_index, c->name, c)) {
			*err = errf(s, "cluster \"%s\": duplicate name%s", c->name, NULL);
			return -EINVAL;
		}
		rc = px_lb_prepare(&s->arena, c);
		if (rc) {
			*err = errf(s, "cluster \"%s\": cannot build its balancer tables%s",
				    c->name, NULL);
			return rc;
		}
	}
	s->route_index = index_new(&s->arena, s->nroute_configs);
	if (!s->route_index)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->nroute_configs; i++) {
		struct px_route_config *cfg = &s->route_configs[i];

		if (!cfg->name || index_add(s->route_index, cfg->name, cfg)) {
			*err = errf(s, "route configuration \"%s\": missing or duplicate name%s",
				    cfg->name ? cfg->name : "", NULL);
			return -EINVAL;
		}
		rc_ok_or_return(s, cfg, "route configuration", err);
	}
	/* The name index finds duplicates too: Istio sends a listener per TCP service VIP:port,
	 * and comparing 10,000 pairwise would cost 10^8 comparisons on every snapshot. */
	s->listener_index = index_new(&s->arena, s->nlisteners);
	if (!s->listener_index)
		return -ENOMEM;
	s->listeners_hash = s->nlisteners;
	for (uint32_t i = 0; i < s->nlisteners; i++) {
		const struct px_listener *l = &s->listeners[i];
		uint64_t h = px_hash_str(l->name) ^ l->hash;

		if (index_add(s->listener_index, l->name, &s->listeners[i])) {
			*err = errf(s, "listener \"%s\": duplicate name%s", l->name, NULL);
			return -EINVAL;
		}
		for (uint32_t k = 0; k < l->nchains; k++)
			h = h * 0x100000001b3ULL + l->chains[k].hash;
		if (l->default_chain)
			h = h * 0x100000001b3ULL + l->default_chain->hash;
		s->listeners_hash += h; /* the order of listeners does not matter */
	}
	rc = index_by_port(s);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < s->nlisteners; i++) {
		struct px_listener *l = &s->listeners[i];

		if (strcmp(l->name, PX_LISTENER_VIRTUAL_OUTBOUND) == 0)
			s->virtual_outbound = l;
		else if (strcmp(l->name, PX_LISTENER_VIRTUAL_INBOUND) == 0)
			s->virtual_inbound = l;
		for (uint32_t k = 0; k <= l->nchains; k++) {
			struct px_filter_chain *fc =
				k < l->nchains ? &l->chains[k] : l->default_chain;

			if (fc && fc->kind == PX_NF_HTTP) {
				rc = finalize_hcm(s, l, fc, err);
				if (rc)
					return rc;
				continue;
			}
			if (!fc || fc->kind != PX_NF_TCP_PROXY)
				continue;
			snprintf(where, sizeof(where),
				 "listener \"%s\" filter chain \"%s\" tcp_proxy", l->name,
				 fc->name ? fc->name : "");
			if (fc->tcp.cluster && check_cluster_ref(s, where, fc->tcp.cluster, err))
				return -EINVAL;
			fc->tcp.total_weight = 0;
			for (uint32_t w = 0; w < fc->tcp.nweighted; w++) {
				if (check_cluster_ref(s, where, fc->tcp.weighted[w].cluster, err))
					return -EINVAL;
				fc->tcp.total_weight += fc->tcp.weighted[w].weight;
			}
			if (!fc->tcp.cluster && !fc->tcp.total_weight) {
				*err = errf(s, "%s: no cluster%s", where, NULL);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* ---- the built-in passthrough configuration ------------------------------------------------ */

static struct px_filter_chain *passthrough_chain(struct arena *a, const char *name,
						 const char *cluster)
{
	struct px_filter_chain *fc = arena_new(a, struct px_filter_chain, 1);

	if (!fc)
		return NULL;
	fc->name = name;
	fc->kind = PX_NF_TCP_PROXY;
	fc->tcp.stat_prefix = cluster;
	fc->tcp.cluster = cluster;
	return fc;
}

struct px_snapshot *px_snapshot_passthrough(void)
{
	struct px_snapshot *s = px_snapshot_new();
	const char *err;

	if (!s)
		return NULL;
	s->clusters = arena_new(&s->arena, struct px_cluster, 2);
	s->listeners = arena_new(&s->arena, struct px_listener, 2);
	if (!s->clusters || !s->listeners)
		goto fail;
	s->nclusters = 2;
	s->clusters[0] = (struct px_cluster){.name = PX_CLUSTER_PASSTHROUGH,
					     .type = PX_CLUSTER_ORIGINAL_DST,
					     .connect_timeout_ms = 10000};
	s->clusters[1] = (struct px_cluster){.name = PX_CLUSTER_INBOUND_PASSTHROUGH,
					     .type = PX_CLUSTER_ORIGINAL_DST,
					     .connect_timeout_ms = 10000,
					     .has_bind4 = true,
					     .has_bind6 = true};
	addr_parse(&s->clusters[1].bind4, "127.0.0.6");
	addr_parse(&s->clusters[1].bind6, "::6");
	s->nlisteners = 2;
	s->listeners[0] = (struct px_listener){
		.name = PX_LISTENER_VIRTUAL_OUTBOUND,
		.port = SHUNT_PORT_OUTBOUND,
		.use_original_dst = true,
		.default_chain = passthrough_chain(&s->arena, "virtualOutbound-catchall-tcp",
						   PX_CLUSTER_PASSTHROUGH),
	};
	s->listeners[1] = (struct px_listener){
		.name = PX_LISTENER_VIRTUAL_INBOUND,
		.port = SHUNT_PORT_INBOUND,
		.use_original_dst = true,
		.default_chain = passthrough_chain(&s->arena, "virtualInbound-catchall-tcp",
						   PX_CLUSTER_INBOUND_PASSTHROUGH),
	};
	if (!s->listeners[0].default_chain || !s->listeners[1].default_chain ||
	    px_snapshot_finalize(s, &err))
		goto fail;
	return s;
fail:
	px_snapshot_put(s);
	return NULL;
}

/* ---- matching -------------------------------------------------------------------------------- */

int px_cidr_parse(struct px_cidr *c, const char *addr, uint32_t prefix_len)
{
	bool v4;

	if (addr_parse(&c->addr, addr))
		return -EINVAL;
	v4 = addr_is_v4(&c->addr);
	if (prefix_len > (v4 ? 32u : 128u))
		return -EINVAL;
	c->prefix_len = (uint8_t)(v4 ? prefix_len + 96 : prefix_len);
	return 0;
}

bool px_cidr_contains(const struct px_cidr *c, const struct shunt_addr *a)
{
	const uint8_t *x = (const uint8_t *)c->addr.ip, *y = (const uint8_t *)a->ip;
	unsigned bits = c->prefix_len, full = bits / 8, rest = bits % 8;

	if (memcmp(x, y, full))
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));

	return (x[full] & mask) == (y[full] & mask);
}

static bool addr_is_any(const struct shunt_addr *a)
{
	static const struct shunt_addr any6;

	/* 0.0.0.0 is ::ffff:0.0.0.0 in normalised form. */
	return memcmp(a, &any6, sizeof(*a)) == 0 || (addr_is_v4(a) && a->ip[3] == 0);
}

/* The listener of ci->dst among those bound or not as asked: exact address, else wildcard;
 * the first in the snapshot's order of each. */
static const struct px_listener *listener_of_dst(const struct px_snapshot *s,
						 const struct px_conn_info *ci, bool bound)
{
	const struct px_listener *wildcard = NULL;
	uint32_t lo = 0, hi = s->nby_port;

	/* The first of the run of listeners on this port. */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (s->listeners[s->by_port[mid]].port < ci->dst_port)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (uint32_t i = lo; i < s->nby_port; i++) {
		const struct px_listener *l = &s->listeners[s->by_port[i]];

		if (l->port != ci->dst_port)
			break;
		if (l->bind_to_port != bound)
			continue;
		if (memcmp(&l->addr, &ci->dst, sizeof(ci->dst)) == 0)
			return l;
		if (!wildcard && addr_is_any(&l->addr) &&
		    addr_is_v4(&l->addr) == addr_is_v4(&ci->dst))
			wildcard = l;
	}
	return wildcard;
}

const struct px_listener *px_listener_bound(const struct px_snapshot *s,
					    const struct px_conn_info *ci)
{
	return listener_of_dst(s, ci, true);
}

const struct px_listener *px_listener_find(const struct px_snapshot *s, const char *name)
{
	return index_get(s->listener_index, name);
}

/* The chain of n (l as a newer snapshot has it) with fc's fingerprint, or NULL. */
static const struct px_filter_chain *chain_kept(const struct px_listener *n,
						const struct px_listener *l,
						const struct px_filter_chain *fc)
{
	if (n->default_chain && n->default_chain->hash == fc->hash)
		return n->default_chain;
	/* Usually the chain is where it was (the scan is for Istio's listeners of 1000s). */
	if (fc >= l->chains && fc < l->chains + l->nchains &&
	    (uint32_t)(fc - l->chains) < n->nchains && n->chains[fc - l->chains].hash == fc->hash)
		return &n->chains[fc - l->chains];
	for (uint32_t i = 0; i < n->nchains; i++)
		if (n->chains[i].hash == fc->hash)
			return &n->chains[i];
	return NULL;
}

const struct px_listener *px_listener_kept(const struct px_snapshot *s, const struct px_listener *l,
					   const struct px_filter_chain *fc,
					   const struct px_filter_chain **nfc)
{
	const struct px_listener *n = px_listener_find(s, l->name);

	*nfc = NULL;
	if (!n || n->hash != l->hash)
		return NULL;
	if (!fc)
		return n;
	*nfc = chain_kept(n, l, fc);
	return *nfc ? n : NULL;
}

bool px_listener_keeps(const struct px_snapshot *s, const struct px_listener *l,
		       const struct px_filter_chain *fc)
{
	const struct px_filter_chain *nfc;

	return px_listener_kept(s, l, fc, &nfc) != NULL;
}

const struct px_listener *px_listener_for(const struct px_snapshot *s,
					  const struct px_listener *via,
					  const struct px_conn_info *ci)
{
	const struct px_listener *l;

	if (!via || !via->use_original_dst)
		return via;
	/* Envoy hands over to any listener of the destination, bound or not. */
	l = listener_of_dst(s, ci, false);
	if (!l)
		l = listener_of_dst(s, ci, true);
	return l ? l : via;
}

/* Specificity of one field for one chain: -1 no match, 0 wildcard, higher is more specific. */
typedef int (*field_score_fn)(const struct px_filter_chain_match *m, const struct px_conn_info *ci);

static int score_dst_port(const struct px_filter_chain_match *m, const struct px_conn_info *ci)
{
	if (!m->dst_port)
		return 0;
	return m->dst_port == ci->dst_port ? 1 : -1;
}

static int score_cidrs(const struct px_cidr *c, uint32_t n, const struct shunt_addr *a)
{
	int best = -1;

	if (!n)
		return 0;
	for (uint32_t i = 0; i < n; i++)
		if (px_cidr_contains(&c[i], a) && c[i].prefix_len + 1 > best)
			best = c[i].prefix_len + 1;
	return best;
}

static int score_prefix(const struct px_filter_chain_match *m, const struct px_conn_info *ci)
{
	return score_cidrs(m->prefix_ranges, m->nprefix_ranges, &ci->dst);
}

static int score_server_name(const struct px_filter_chain_match *m, const struct px_conn_info *ci)
{
	int best = -1;

	if (!m->nserver_names)
		return 0;
	if (!ci->server_name)
		return -1;
	for (uint32_t i = 0; i < m->nserver_names; i++) {
		const char *n = m->server_names[i];
		size_t nl = strlen(n), sl = strlen(ci->server_name);

		if (strcasecmp(n, ci->server_name) == 0)
			return 1 << 20; /* exact beats every wildcard */
		/* "*.example.com" matches "a.example.com"; a longer suffix is more specific. */
		if (n[0] == '*' && n[1] == '.' && sl > nl - 1 &&
		    strcasecmp(ci->server_name + sl - (nl - 1), n + 1) == 0 && (int)nl > best)
			best = (int)nl;
	}
	return best;
}

static int score_str_field(const char *want, const char *have)
{
	if (!want)
		return 0;
	return have && strcmp(want, have) == 0 ? 1 : -1;
}

static int score_transport(const struct px_filter_chain_match *m, const struct px_conn_info *ci)
{
	return score_str_field(m->transport_protocol,
			       ci->transport_protocol ? ci->transport_protocol : "raw_buffer");
}

static int score_alpn(const struct px_filter_chain_match *m, const struct px_conn_info *ci)
{
	if (!m->napplication_protocols)
		return 0;
	/* Like Envoy, a chain matches when any protocol the client offered is in its list. */
	for (uint32_t i = 0; i < m->napplication_protocols; i++)
		for (uint32_t k = 0; k < ci->napplication_protocols; k++)
			if (strcmp(m->application_protocols[i], ci->application_protocols[k]) == 0)
				return 1;
	return -1;
}

static int score_source_prefix(const struct px_filter_chain_match *m, const struct px_conn_info *ci)
{
	return score_cidrs(m->source_prefix_ranges, m->nsource_prefix_ranges, &ci->src);
}

static int score_source_port(const struct px_filter_chain_match *m, const struct px_conn_info *ci)
{
	if (!m->nsource_ports)
		return 0;
	for (uint32_t i = 0; i < m->nsource_ports; i++)
		if (m->source_ports[i] == ci->src_port)
			return 1;
	return -1;
}

bool px_filter_disabled_for(const struct px_filter_disabled *d, __u16 dst_port)
{
	if (d->all)
		return true;
	for (uint32_t i = 0; i < d->nranges; i++)
		if (dst_port >= d->ranges[i].start && dst_port < d->ranges[i].end)
			return true;
	return false;
}

#define PX_MATCH_MAX_CANDIDATES 1024

const struct px_filter_chain *px_filter_chain_match(const struct px_listener *l,
						    const struct px_conn_info *ci)
{
	/* Envoy's order: destination port, destination IP, server name, transport protocol,
	 * application protocols, source IP, source port. At each step only the chains with the
	 * most specific match survive. */
	static const field_score_fn fields[] = {score_dst_port,	  score_prefix, score_server_name,
						score_transport,  score_alpn,	score_source_prefix,
						score_source_port};
	const struct px_filter_chain *cand[PX_MATCH_MAX_CANDIDATES];
	uint32_t n = 0;

	for (uint32_t i = 0; i < l->nchains && n < PX_MATCH_MAX_CANDIDATES; i++)
		cand[n++] = &l->chains[i];
	for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]) && n; f++) {
		int best = -1;
		uint32_t kept = 0;

		for (uint32_t i = 0; i < n; i++) {
			int sc = fields[f](&cand[i]->match, ci);

			if (sc > best)
				best = sc;
		}
		for (uint32_t i = 0; i < n; i++)
			if (best >= 0 && fields[f](&cand[i]->match, ci) == best)
				cand[kept++] = cand[i];
		n = kept;
	}
	/* cand[0..n) was filled above; cppcheck cannot see it through the filtering loop. */
	// cppcheck-suppress uninitvar
	return n ? cand[0] : l->default_chain;
}

/* ---- circuit breakers ------------------------------------------------------------------------ */

uint32_t px_cb_limit(const struct px_cluster *c, enum px_cb_res r)
{
	if (!c->cb.set)
		return r == PX_CB_RETRIES ? PX_CB_RETRIES_DEFAULT : PX_CB_DEFAULT;
	switch (r) {
	case PX_CB_CX:
		return c->cb.max_connections;
	case PX_CB_PENDING:
		return c->cb.max_pending_requests;
	case PX_CB_RQ:
		return c->cb.max_requests;
	default:
		return c->cb.max_retries;
	}
}

bool px_cb_try(const struct px_cluster *c, enum px_cb_res r)
{
	uint32_t max = px_cb_limit(c, r);
	unsigned v;

	if (!c->cbs)
		return true;
	v = atomic_load_explicit(&c->cbs->n[r], memory_order_relaxed);
	do {
		if (v >= max)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(
		&c->cbs->n[r], &v, v + 1, memory_order_relaxed, memory_order_relaxed));
	return true;
}

void px_cb_force(const struct px_cluster *c, enum px_cb_res r)
{
	if (c->cbs)
		atomic_fetch_add_explicit(&c->cbs->n[r], 1, memory_order_relaxed);
}

void px_cb_done(struct px_cb_state *st, enum px_cb_res r)
{
	if (st)
		atomic_fetch_sub_explicit(&st->n[r], 1, memory_order_relaxed);
}

struct px_cb_state *px_cb_get(struct px_cb_state *st)
{
	if (st)
		atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
	return st;
}

void px_cb_put(struct px_cb_state *st)
{
	if (st && atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) == 1)
		free(st);
}

bool px_cb_acquire(const struct px_cluster *c, enum px_cb_res r, bool force,
		   struct px_cb_state **held)
{
	if (force)
		px_cb_force(c, r);
	else if (!px_cb_try(c, r))
		return false;
	*held = px_cb_get(c->cbs);
	return true;
}

void px_cb_release(struct px_cb_state **held, enum px_cb_res r)
{
	px_cb_done(*held, r);
	px_cb_put(*held);
	*held = NULL;
}

int px_cb_adopt(struct px_snapshot *s, const struct px_snapshot *old)
{
	for (uint32_t i = 0; i < s->nclusters; i++) {
		struct px_cluster *c = &s->clusters[i];
		const struct px_cluster *o = old ? px_cluster_find(old, c->name) : NULL;

		if (c->cbs)
			continue; /* published before */
		if (o && o->cbs) {
			c->cbs = px_cb_get(o->cbs);
			continue;
		}
		c->cbs = calloc(1, sizeof(*c->cbs));
		if (!c->cbs)
			return -ENOMEM;
		atomic_init(&c->cbs->refs, 1);
	}
	return 0;
}
