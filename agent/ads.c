/* The ADS client: subscriptions, ACK/NACK, candidate configs and reconnects over agent/grpc.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "agent/ads.h"
#include "agent/bootstrap.h"
#include "agent/grpc.h"

#include "agent/pbjson.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/rpc/status.pb-c.h"

typedef Envoy__Service__Discovery__V3__DiscoveryRequest DiscoveryRequest;
typedef Envoy__Service__Discovery__V3__DiscoveryResponse DiscoveryResponse;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest DeltaRequest;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse DeltaResponse;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry
	InitialVersion;
typedef Envoy__Config__Core__V3__Node Node;

#define SOTW_PATH	      "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define DELTA_PATH	      "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
#define GRPC_INVALID_ARGUMENT 3
#define ADS_MAX_REJECTIONS    64 /* resources of one NACKed response recorded for config_dump */

/* The order of the initial fetch, as Envoy does it: clusters and their endpoints before the
 * listeners that route to them, then the route tables the listeners name. */
static const enum xds_type fetch_order[XDS_NTYPES] = {XDS_CLUSTER, XDS_ENDPOINT, XDS_LISTENER,
						      XDS_ROUTE, XDS_SECRET};

/* One type's subscription on the current stream. */
struct ads_sub {
	char *version; /* SotW: version_info of the last accepted response */
	char *nonce;   /* of the last response */
	char **names;  /* named types: what was asked for, sorted */
	size_t n_names;
	int sent;	  /* a request of this type went out on this stream */
	int initial_done; /* the initial fetch completed (stays set across reconnects) */
};

struct ads {
	struct ads_callbacks cb;
	void *ctx;
	char host[256];
	uint16_t port;
	int delta;
	uint32_t max_message, backoff_initial, backoff_max, initial_fetch_ms;
	Node node; /* shallow copy of the bootstrap's, with user_agent_name set */
	struct xds_config *cur;
	struct ads_sub sub[XDS_NTYPES];
	struct grpc_client *gc;
	struct ssl_ctx_st *tls; /* NULL: h2c */
	char sni[256];
	int epfd, gc_fd;
	uint32_t gc_events;
	int closed, node_sent;
	uint64_t now, next_connect, stream_open_ms, started_ms;
	uint32_t backoff;
	unsigned rng;
	struct ads_stats st;
};

static int is_wildcard(enum xds_type t)
{
	return t == XDS_LISTENER || t == XDS_CLUSTER;
}

static void logf_(struct ads *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct ads *a, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (a->cb.log)
		a->cb.log(a->ctx, line);
	else
		fprintf(stderr, "%s\n", line);
}

/* ---- pure helpers --------------------------------------------------------------------------- */

static int str_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

void ads_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int ads_wanted_names(const struct xds_config *cfg, enum xds_type t, char ***names, size_t *n)
{
	char **v = NULL;
	size_t cnt = 0, cap = 0, out = 0;

	*names = NULL;
	*n = 0;
	for (int u = 0; u < XDS_NTYPES; u++) {
		for (size_t i = 0; i < cfg->n[u]; i++) {
			const struct xds_resource *r = &cfg->res[u][i];

			for (size_t k = 0; k < r->n_refs; k++) {
				if (r->refs[k].type != t || r->refs[k].static_only)
					continue;
				if (cnt == cap) {
					char **g;

					cap = cap ? cap * 2 : 16;
					g = realloc(v, cap * sizeof(*v));
					if (!g)
						goto nomem;
					v = g;
				}
				v[cnt] = strdup(r->refs[k].name);
				if (!v[cnt])
					goto nomem;
				cnt++;
			}
		}
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), str_cmp);
	for (size_t i = 0; i < cnt; i++) {
		if (out && !strcmp(v[out - 1], v[i]))
			free(v[i]);
		else
			v[out++] = v[i];
	}
	*names = v;
	*n = out;
	return 0;
nomem:
	ads_names_free(v, cnt);
	return -ENOMEM;
}

static int names_has(char *const *names, size_t n, const char *name)
{
	return n && bsearch(&name, names, n, sizeof(*names), str_cmp);
}

static int names_equal(char *const *x, size_t nx, char *const *y, size_t ny)
{
	if (nx != ny)
		return 0;
	for (size_t i = 0; i < nx; i++)
		if (strcmp(x[i], y[i]))
			return 0;
	return 1;
}

static int get_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (*i >= len)
			return -1;
		*v |= (uint64_t)(p[*i] & 0x7f) << shift;
		if (!(p[(*i)++] & 0x80))
			return 0;
	}
	return -1;
}

/* Steps over the field at p[*i]: its wire type in *wt and, for a length-delimited one, where its
 * bytes start (*off) and how many (*flen). -1 when the field is malformed or runs past len. */
static int next_field(const uint8_t *p, size_t len, size_t *i, unsigned *wt, size_t *off,
		      size_t *flen)
{
	uint64_t key, l;

	if (get_varint(p, len, i, &key) || !(key >> 3))
		return -1;
	*wt = (unsigned)(key & 7);
	switch (*wt) {
	case 0:
		return get_varint(p, len, i, &l);
	case 1:
	case 5:
		l = *wt == 1 ? 8 : 4;
		if (len - *i < l)
			return -1;
		*i += (size_t)l;
		return 0;
	case 2:
		if (get_varint(p, len, i, &l) || l > len - *i)
			return -1;
		*off = *i;
		*flen = (size_t)l;
		*i += (size_t)l;
		return 0;
	default:
		return -1;
	}
}

/* 0 if buf is a well-formed message at its own level, -1 if not. */
static int scan_flat(const uint8_t *p, size_t len)
{
	size_t i = 0, off, flen;
	unsigned wt;

	while (i < len)
		if (next_field(p, len, &i, &wt, &off, &flen))
			return -1;
	return 0;
}

/* 1: too deep; 0: a message within the limit; -1: not a well-formed message. Past the limit,
 * bytes that are a well-formed message on their own (not looking inside) make it too deep. */
static int scan_depth(const uint8_t *p, size_t len, int depth, int max)
{
	size_t i = 0, off, flen;
	unsigned wt;

	while (i < len) {
		int r;

		if (next_field(p, len, &i, &wt, &off, &flen))
			return -1;
		if (wt != 2)
			continue;
		r = depth < max ? scan_depth(p + off, flen, depth + 1, max) : 0;
		if (r == 1 || (depth >= max && scan_flat(p + off, flen) == 0))
			return 1;
	}
	return 0;
}

int ads_pb_too_deep(const uint8_t *buf, size_t len, int max_depth)
{
	return scan_depth(buf, len, 0, max_depth) == 1;
}

/* ---- requests ------------------------------------------------------------------------------- */

static void sync_events(struct ads *a)
{
	struct epoll_event ev = {0};
	int fd = a->gc && !a->closed ? grpc_client_fd(a->gc) : -1;
	uint32_t want = fd >= 0 ? grpc_client_want(a->gc) : 0;

	if (a->gc_fd >= 0 && a->gc_fd != fd) {
		epoll_ctl(a->epfd, EPOLL_CTL_DEL, a->gc_fd, NULL);
		a->gc_fd = -1;
	}
	if (fd < 0)
		return;
	ev.events = want;
	ev.data.fd = fd;
	if (a->gc_fd < 0) {
		if (!epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev)) {
			a->gc_fd = fd;
			a->gc_events = want;
		}
	} else if (want != a->gc_events) {
		if (!epoll_ctl(a->epfd, EPOLL_CTL_MOD, fd, &ev))
			a->gc_events = want;
	}
}

static int send_msg(struct ads *a, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	int rc;

	if (!buf)
		return -ENOMEM;
	protobuf_c_message_pack(m, buf);
	rc = a->gc && !a->closed ? grpc_client_send(a->gc, buf, len) : -EPIPE;
	free(buf);
	return rc;
}

/* A SotW request: the subscription of type_url with version and nonce; error for a NACK. */
static int send_sotw(struct ads *a, const char *type_url, int t, const char *version,
		     const char *nonce, const char *error)
{
	DiscoveryRequest rq = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
	Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;

	rq.type_url = (char *)type_url;
	rq.version_info = (char *)(version ? version : "");
	rq.response_nonce = (char *)(nonce ? nonce : "");
	if (!a->node_sent) {
		rq.node = &a->node;
		a->node_sent = 1;
	}
	if (t >= 0 && !is_wildcard((enum xds_type)t)) {
		rq.n_resource_names = a->sub[t].n_names;
		rq.resource_names = a->sub[t].names;
	}
	if (error) {
		st.code = GRPC_INVALID_ARGUMENT;
		st.message = (char *)error;
		rq.error_detail = &st;
	}
	return send_msg(a, &rq.base);
}

static int send_delta(struct ads *a, const char *type_url, char **sub, size_t n_sub, char **unsub,
		      size_t n_unsub, InitialVersion **init, size_t n_init, const char *nonce,
		      const char *error)
{
	DeltaRequest rq = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
	Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;

	rq.type_url = (char *)type_url;
	rq.response_nonce = (char *)(nonce ? nonce : "");
	if (!a->node_sent) {
		rq.node = &a->node;
		a->node_sent = 1;
	}
	rq.resource_names_subscribe = sub;
	rq.n_resource_names_subscribe = n_sub;
	rq.resource_names_unsubscribe = unsub;
	rq.n_resource_names_unsubscribe = n_unsub;
	rq.initial_resource_versions = init;
	rq.n_initial_resource_versions = n_init;
	if (error) {
		st.code = GRPC_INVALID_ARGUMENT;
		st.message = (char *)error;
		rq.error_detail = &st;
	}
	return send_msg(a, &rq.base);
}

/* The first request of type t on this stream, with what we already know. */
static int send_initial(struct ads *a, enum xds_type t)
{
	const struct xds_config *c = a->cur;
	InitialVersion *iv = NULL, **ivp = NULL;
	size_t n = 0;
	int rc;

	a->sub[t].sent = 1;
	if (!a->delta)
		return send_sotw(a, xds_types[t].type_url, t, a->sub[t].version, "", NULL);
	if (c->n[t]) {
		iv = calloc(c->n[t], sizeof(*iv));
		ivp = calloc(c->n[t], sizeof(*ivp));
		if (!iv || !ivp) {
			free(iv);
			free(ivp);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < c->n[t]; i++) {
		const struct xds_resource *r = &c->res[t][i];
		InitialVersion e =
			ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INITIAL_RESOURCE_VERSIONS_ENTRY__INIT;

		if (r->is_static)
			continue;
		iv[n] = e;
		iv[n].key = r->name;
		iv[n].value = r->version;
		ivp[n] = &iv[n];
		n++;
	}
	rc = send_delta(a, xds_types[t].type_url, is_wildcard(t) ? NULL : a->sub[t].names,
			is_wildcard(t) ? 0 : a->sub[t].n_names, NULL, 0, ivp, n, "", NULL);
	free(iv);
	free(ivp);
	return rc;
}

/* Whether type t may be requested yet: the initial fetch goes CDS, EDS, LDS, RDS. */
static int may_request(const struct ads *a, enum xds_type t)
{
	const int *dyn = a->cur->dynamic;

	switch (t) {
	case XDS_CLUSTER:
		return 1;
	case XDS_ENDPOINT:
		return !dyn[XDS_CLUSTER] || a->sub[XDS_CLUSTER].initial_done;
	case XDS_LISTENER:
		return (!dyn[XDS_CLUSTER] || a->sub[XDS_CLUSTER].initial_done) &&
		       (!dyn[XDS_ENDPOINT] || a->sub[XDS_ENDPOINT].initial_done);
	case XDS_ROUTE:
	case XDS_SECRET:
		return (!dyn[XDS_LISTENER] || a->sub[XDS_LISTENER].initial_done) &&
		       may_request(a, XDS_LISTENER);
	default:
		return 0;
	}
}

/* Brings the named subscriptions in line with what the current config refers to, and sends
 * the requests that are due. Loops because finishing one type's fetch may open the next. */
static void update_subs(struct ads *a)
{
	int progress = 1;

	while (progress) {
		progress = 0;
		for (int i = 0; i < XDS_NTYPES; i++) {
			enum xds_type t = fetch_order[i];
			struct ads_sub *s = &a->sub[t];
			char **names = NULL;
			size_t n = 0;

			if (!a->cur->dynamic[t] || !may_request(a, t))
				continue;
			if (is_wildcard(t)) {
				if (!s->sent && a->gc && !a->closed)
					send_initial(a, t);
				continue;
			}
			if (ads_wanted_names(a->cur, t, &names, &n))
				continue;
			if (names_equal(names, n, s->names, s->n_names)) {
				ads_names_free(names, n);
			} else if (a->delta && s->sent) {
				char **add = calloc(n + 1, sizeof(*add));
				char **del = calloc(s->n_names + 1, sizeof(*del));
				size_t na = 0, nd = 0;

				for (size_t k = 0; add && k < n; k++)
					if (!names_has(s->names, s->n_names, names[k]))
						add[na++] = names[k];
				for (size_t k = 0; del && k < s->n_names; k++)
					if (!names_has(names, n, s->names[k]))
						del[nd++] = s->names[k];
				if (add && del)
					send_delta(a, xds_types[t].type_url, add, na, del, nd, NULL,
						   0, NULL, NULL);
				free(add);
				free(del);
				ads_names_free(s->names, s->n_names);
				s->names = names;
				s->n_names = n;
			} else {
				ads_names_free(s->names, s->n_names);
				s->names = names;
				s->n_names = n;
				if (s->sent)
					send_sotw(a, xds_types[t].type_url, t, s->version, s->nonce,
						  NULL);
			}
			if (!s->sent && s->n_names && a->gc && !a->closed)
				send_initial(a, t);
			if (!s->initial_done && !s->n_names) {
				/* Nothing to fetch: done as soon as its predecessors are. */
				s->initial_done = 1;
				progress = 1;
			}
		}
	}
}

/* ---- responses ------------------------------------------------------------------------------ */

/* One resource offered by a response. */
struct offer {
	const ProtobufCMessage *any;
	const char *version; /* delta: per resource; SotW: the response's */
	ProtobufCMessage *msg;
	char *name; /* a copy: msg passes to the candidate, which may be freed before we are done */
};

static int offer_cmp(const void *x, const void *y)
{
	return strcmp(((const struct offer *)x)->name, ((const struct offer *)y)->name);
}

static int offered(const struct offer *o, size_t n, const char *name)
{
	struct offer key = {.name = (char *)name};

	return n && bsearch(&key, o, n, sizeof(*o), offer_cmp);
}

static struct xds_config *config_like(struct xds_config *src)
{
	struct xds_config *c = xds_config_new();

	if (c && xds_config_share_bootstrap(c, src)) {
		xds_config_free(c);
		return NULL;
	}
	return c;
}

/* Copies src's rejections into dst, except those of type t named in the update. */
static int copy_rejections(struct xds_config *dst, const struct xds_config *src, int t,
			   const struct offer *o, size_t n)
{
	for (int u = 0; u < XDS_NTYPES; u++) {
		for (size_t i = 0; i < src->n_rejected[u]; i++) {
			const struct xds_rejection *r = &src->rejected[u][i];

			if (u == t && offered(o, n, r->name))
				continue;
			if (xds_config_reject(dst, (enum xds_type)u, r->name, r->version,
					      r->details, r->failed, &r->when))
				return -ENOMEM;
		}
	}
	return 0;
}

/* A full share of a sealed config, for the client to keep while the callee owns the other. */
static struct xds_config *config_share(struct xds_config *src)
{
	struct xds_config *c = config_like(src);

	if (!c)
		return NULL;
	for (int u = 0; u < XDS_NTYPES; u++) {
		free(c->version[u]);
		c->version[u] = strdup(src->version[u]);
		if (!c->version[u])
			goto fail;
		for (size_t i = 0; i < src->n[u]; i++)
			if (xds_config_add_shared(c, (enum xds_type)u, &src->res[u][i]))
				goto fail;
	}
	if (copy_rejections(c, src, -1, NULL, 0))
		goto fail;
	c->warnings = src->warnings;
	c->sealed = src->sealed;
	return c;
fail:
	xds_config_free(c);
	return NULL;
}

/* Builds the candidate: cur with the offers of type t applied (replacing the whole dynamic set
 * for a SotW wildcard type), removed names dropped, and endpoints, routes and secrets nobody
 * refers to any more pruned. Offers' messages pass to the candidate (or are freed). */
static int build_candidate(struct ads *a, enum xds_type t, int sotw, const char *type_version,
			   struct offer *o, size_t n, char **removed, size_t n_removed,
			   struct xds_config **out, char *err, size_t errlen)
{
	static const enum xds_type build_order[XDS_NTYPES] = {XDS_LISTENER, XDS_CLUSTER, XDS_ROUTE,
							      XDS_ENDPOINT, XDS_SECRET};
	struct xds_config *c = config_like(a->cur);
	struct timespec now;
	struct jtree_err je;
	size_t added = 0;
	int rc = -ENOMEM;

	clock_gettime(CLOCK_REALTIME, &now);
	if (!c)
		goto fail;
	c->warnings = a->cur->warnings;
	for (int u = 0; u < XDS_NTYPES; u++) {
		free(c->version[u]);
		c->version[u] = strdup(u == (int)t ? type_version : a->cur->version[u]);
		if (!c->version[u])
			goto fail;
	}
	for (int i = 0; i < XDS_NTYPES; i++) {
		enum xds_type u = build_order[i];
		char **wanted = NULL;
		size_t n_wanted = 0;
		int prune = !is_wildcard(u) && c->dynamic[u];

		if (prune && ads_wanted_names(c, u, &wanted, &n_wanted))
			goto fail;
		for (size_t k = 0; k < a->cur->n[u]; k++) {
			struct xds_resource *r = &a->cur->res[u][k];

			if (u == t && !r->is_static &&
			    ((sotw && is_wildcard(t)) || offered(o, n, r->name) ||
			     names_has(removed, n_removed, r->name)))
				continue;
			if (prune && !r->is_static && !names_has(wanted, n_wanted, r->name))
				continue;
			if (xds_config_add_shared(c, u, r)) {
				ads_names_free(wanted, n_wanted);
				goto fail;
			}
		}
		for (size_t k = 0; u == t && k < n; k++) {
			if (prune && !names_has(wanted, n_wanted, o[k].name)) {
				protobuf_c_message_free_unpacked(o[k].msg, NULL);
				o[k].msg = NULL;
				continue;
			}
			rc = xds_config_add(c, t, o[k].msg, o[k].version, 0, &now, NULL, &je);
			if (rc) {
				snprintf(err, errlen, "%s", je.msg);
				ads_names_free(wanted, n_wanted);
				goto fail;
			}
			o[k].msg = NULL;
			added++;
		}
		ads_names_free(wanted, n_wanted);
	}
	rc = -ENOMEM;
	if (copy_rejections(c, a->cur, t, o, n))
		goto fail;
	rc = xds_config_seal(c, &je);
	if (rc) {
		snprintf(err, errlen, "%s", je.msg);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	if (rc == -ENOMEM && !*err)
		snprintf(err, errlen, "out of memory");
	xds_config_free(c);
	return rc;
}

static void free_offers(struct offer *o, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (o[i].msg)
			protobuf_c_message_free_unpacked(o[i].msg, NULL);
		free(o[i].name);
	}
	free(o);
}

static void record_rejection(struct ads *a, enum xds_type t, const char *version,
			     const struct offer *o, size_t n, const char *reason)
{
	struct timespec now;
	size_t recorded = 0;

	clock_gettime(CLOCK_REALTIME, &now);
	for (size_t i = 0; i < n && recorded < ADS_MAX_REJECTIONS; i++) {
		if (!o[i].name || !o[i].name[0])
			continue;
		xds_config_reject(a->cur, t, o[i].name, version, reason, o[i].any, &now);
		recorded++;
	}
	if (!recorded)
		xds_config_reject(a->cur, t, "", version, reason, NULL, &now);
}

static int all_done(const struct ads *a)
{
	for (int t = 0; t < XDS_NTYPES; t++)
		if (a->cur->dynamic[t] && !a->sub[t].initial_done)
			return 0;
	return 1;
}

/* Hands a share of the current config to apply once the initial fetch is complete. */
static void check_ready(struct ads *a)
{
	struct xds_config *c;
	char err[512] = "";

	if (a->st.ready || !all_done(a))
		return;
	c = config_share(a->cur);
	if (!c)
		return;
	if (a->cb.apply(a->ctx, c, err, sizeof(err))) {
		xds_config_free(c);
		logf_(a, "ads: the initial config was refused: %s", err);
		return;
	}
	a->st.ready = 1;
	logf_(a, "ads: initial fetch complete");
	if (a->cb.ready)
		a->cb.ready(a->ctx);
}

/* A SotW response that repeats what we hold (the same version of the same resources, as after
 * a reconnect): acknowledged without building or applying anything. */
static int unchanged(const struct ads *a, enum xds_type t, const char *version,
		     const struct offer *o, size_t n)
{
	size_t dyn = 0;

	if (!a->st.ready || !version[0] || strcmp(version, a->sub[t].version))
		return 0;
	for (size_t i = 0; i < n; i++) {
		const struct xds_resource *r = xds_config_find(a->cur, t, o[i].name);

		if (!r || r->is_static || strcmp(r->version, version))
			return 0;
	}
	for (size_t i = 0; i < a->cur->n[t]; i++)
		dyn += !a->cur->res[t][i].is_static;
	return !is_wildcard(t) || dyn == n;
}

/* Decodes, checks and applies one response's resources; 0, 1 when it changes nothing, or -1
 * with err set. */
static int accept_update(struct ads *a, enum xds_type t, int sotw, const char *type_version,
			 struct offer *o, size_t n, char **removed, size_t n_removed, char *err,
			 size_t errlen)
{
	struct xds_config *cand = NULL, *mine;
	struct jtree_err je;

	for (size_t i = 0; i < n; i++) {
		enum xds_type got;

		if (!o[i].any) {
			snprintf(err, errlen, "%s #%zu: no resource", xds_types[t].noun, i);
			return -1;
		}
		if (xds_resource_from_any(o[i].any, &got, &o[i].msg, &je)) {
			snprintf(err, errlen, "%s #%zu: %s", xds_types[t].noun, i, je.msg);
			return -1;
		}
		if (got != t) {
			snprintf(err, errlen, "%s #%zu is a %s in a response of %s",
				 xds_types[t].noun, i, xds_types[got].noun, xds_types[t].type_url);
			return -1;
		}
		o[i].name = strdup(xds_resource_name(t, o[i].msg));
		if (!o[i].name) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	if (n > 1)
		qsort(o, n, sizeof(*o), offer_cmp);
	if (sotw && unchanged(a, t, type_version, o, n))
		return 1;
	if (build_candidate(a, t, sotw, type_version, o, n, removed, n_removed, &cand, err, errlen))
		return -1;
	if (!a->st.ready) {
		mine = cand;
	} else {
		mine = config_share(cand);
		if (!mine) {
			xds_config_free(cand);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (a->cb.apply(a->ctx, cand, err, errlen)) {
			xds_config_free(cand);
			xds_config_free(mine);
			if (!*err)
				snprintf(err, errlen, "refused by the proxy");
			return -1;
		}
	}
	xds_config_free(a->cur);
	a->cur = mine;
	return 0;
}

static void after_accept(struct ads *a, enum xds_type t)
{
	a->st.accepted[t]++;
	clock_gettime(CLOCK_REALTIME, &a->st.last_update[t]);
	for (int u = 0; u < XDS_NTYPES; u++)
		a->st.resources[u] = a->cur->n[u];
	a->sub[t].initial_done = 1;
}

static void after_reject(struct ads *a, int t, const char *version, const struct offer *o, size_t n,
			 const char *reason)
{
	if (t < 0) {
		a->st.rejected_unknown_type++;
	} else {
		a->st.rejected[t]++;
		record_rejection(a, (enum xds_type)t, version, o, n, reason);
	}
	logf_(a, "ads: NACK %s: %s", t >= 0 ? xds_types[t].type_url : "(unknown type)", reason);
	if (a->cb.rejected)
		a->cb.rejected(a->ctx, t, reason, a->cur);
}

static int set_str(char **dst, const char *src)
{
	char *s = strdup(src ? src : "");

	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

static int on_sotw(struct ads *a, const DiscoveryResponse *rs)
{
	const char *url = rs->type_url ? rs->type_url : "";
	int t = xds_type_from_url(url);
	char err[1024] = "";
	struct offer *o = NULL;
	size_t n = rs->n_resources;
	int rc;

	if (t < 0 || strcmp(url, xds_types[t].type_url)) {
		snprintf(err, sizeof(err), "\"%s\" is not a resource type shuntd consumes", url);
		after_reject(a, -1, "", NULL, 0, err);
		return send_sotw(a, url, -1, "", rs->nonce, err);
	}
	set_str(&a->sub[t].nonce, rs->nonce);
	if (!a->sub[t].sent) {
		snprintf(err, sizeof(err), "%s was not subscribed to", url);
		after_reject(a, t, rs->version_info, NULL, 0, err);
		return send_sotw(a, url, t, a->sub[t].version, rs->nonce, err);
	}
	o = calloc(n + 1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		o[i].any = &rs->resources[i]->base;
		o[i].version = rs->version_info ? rs->version_info : "";
	}
	rc = accept_update(a, (enum xds_type)t, 1, rs->version_info ? rs->version_info : "", o, n,
			   NULL, 0, err, sizeof(err));
	if (rc < 0) {
		after_reject(a, t, rs->version_info, o, n, err);
		free_offers(o, n);
		return send_sotw(a, url, t, a->sub[t].version, rs->nonce, err);
	}
	free_offers(o, n);
	set_str(&a->sub[t].version, rs->version_info);
	if (rc == 0)
		after_accept(a, (enum xds_type)t);
	send_sotw(a, url, t, a->sub[t].version, rs->nonce, NULL);
	update_subs(a);
	check_ready(a);
	return 0;
}

static int on_delta(struct ads *a, const DeltaResponse *rs)
{
	const char *url = rs->type_url ? rs->type_url : "";
	int t = xds_type_from_url(url);
	char err[1024] = "";
	struct offer *o;
	size_t n = rs->n_resources;

	if (t < 0 || strcmp(url, xds_types[t].type_url)) {
		snprintf(err, sizeof(err), "\"%s\" is not a resource type shuntd consumes", url);
		after_reject(a, -1, "", NULL, 0, err);
		return send_delta(a, url, NULL, 0, NULL, 0, NULL, 0, rs->nonce, err);
	}
	set_str(&a->sub[t].nonce, rs->nonce);
	if (!a->sub[t].sent) {
		snprintf(err, sizeof(err), "%s was not subscribed to", url);
		after_reject(a, t, rs->system_version_info, NULL, 0, err);
		return send_delta(a, url, NULL, 0, NULL, 0, NULL, 0, rs->nonce, err);
	}
	if (!n && !rs->n_removed_resources && a->sub[t].initial_done) {
		/* Nothing changed (a reconnect found us up to date): ACK, nothing to apply. */
		set_str(&a->sub[t].version, rs->system_version_info);
		return send_delta(a, url, NULL, 0, NULL, 0, NULL, 0, rs->nonce, NULL);
	}
	o = calloc(n + 1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		o[i].any = rs->resources[i]->resource ? &rs->resources[i]->resource->base : NULL;
		o[i].version = rs->resources[i]->version ? rs->resources[i]->version : "";
	}
	if (accept_update(a, (enum xds_type)t, 0,
			  rs->system_version_info ? rs->system_version_info : "", o, n,
			  rs->removed_resources, rs->n_removed_resources, err, sizeof(err))) {
		after_reject(a, t, rs->system_version_info, o, n, err);
		free_offers(o, n);
		return send_delta(a, url, NULL, 0, NULL, 0, NULL, 0, rs->nonce, err);
	}
	free_offers(o, n);
	set_str(&a->sub[t].version, rs->system_version_info);
	after_accept(a, (enum xds_type)t);
	send_delta(a, url, NULL, 0, NULL, 0, NULL, 0, rs->nonce, NULL);
	update_subs(a);
	check_ready(a);
	return 0;
}

/* ---- the stream ----------------------------------------------------------------------------- */

static void on_open(void *ctx)
{
	struct ads *a = ctx;

	a->st.connected = 1;
	a->st.connects++;
	a->stream_open_ms = a->now;
	a->node_sent = 0;
	for (int t = 0; t < XDS_NTYPES; t++) {
		a->sub[t].sent = 0;
		free(a->sub[t].nonce);
		a->sub[t].nonce = NULL;
	}
	logf_(a, "ads: connected to %s:%u (%s)", a->host, a->port, a->delta ? "delta" : "sotw");
	update_subs(a);
	/* Named types known from before a reconnect are asked for again straight away. */
	for (int i = 0; i < XDS_NTYPES; i++) {
		enum xds_type t = fetch_order[i];

		if (a->cur->dynamic[t] && !a->sub[t].sent && a->sub[t].n_names && may_request(a, t))
			send_initial(a, t);
	}
	check_ready(a);
}

static int on_message(void *ctx, const uint8_t *msg, size_t len)
{
	struct ads *a = ctx;
	ProtobufCMessage *m;
	int rc;

	if (ads_pb_too_deep(msg, len, ADS_MAX_NESTING)) {
		logf_(a,
		      "ads: a response of %zu bytes nests deeper than %d messages; resetting "
		      "the stream",
		      len, ADS_MAX_NESTING);
		return -1;
	}
	m = protobuf_c_message_unpack(
		a->delta ? &envoy__service__discovery__v3__delta_discovery_response__descriptor
			 : &envoy__service__discovery__v3__discovery_response__descriptor,
		NULL, len, msg);
	if (!m) {
		logf_(a,
		      "ads: a response of %zu bytes does not decode as a %sDiscoveryResponse; "
		      "resetting the stream",
		      len, a->delta ? "Delta" : "");
		return -1;
	}
	/* The server speaks xDS: the next disconnect starts from a fresh backoff (as Envoy). */
	a->backoff = a->backoff_initial;
	rc = a->delta ? on_delta(a, (const DeltaResponse *)m)
		      : on_sotw(a, (const DiscoveryResponse *)m);
	protobuf_c_message_free_unpacked(m, NULL);
	if (rc == -ENOMEM)
		logf_(a, "ads: out of memory handling a response");
	return 0;
}

static void on_close(void *ctx, int status, const char *message)
{
	struct ads *a = ctx;
	uint32_t delay;

	if (a->st.connected && a->now - a->stream_open_ms >= ADS_HEALTHY_STREAM_MS)
		a->backoff = a->backoff_initial;
	if (a->st.connected)
		a->st.disconnects++;
	else
		a->st.connect_failures++;
	a->st.connected = 0;
	a->closed = 1;
	/* Jitter: somewhere in the upper half of the current backoff. */
	a->rng = a->rng * 1103515245u + 12345u;
	delay = a->backoff / 2 + (a->rng >> 8) % (a->backoff / 2 + 1);
	a->next_connect = a->now + delay;
	a->st.backoff_ms = delay;
	logf_(a, "ads: stream closed (status %d: %s); reconnecting in %u ms", status,
	      message ? message : "", delay);
	a->backoff = a->backoff * 2 > a->backoff_max ? a->backoff_max : a->backoff * 2;
}

static const struct grpc_callbacks grpc_cb = {
	.on_open = on_open, .on_message = on_message, .on_close = on_close};

static void reap(struct ads *a)
{
	if (a->gc && a->closed) {
		sync_events(a);
		grpc_client_free(a->gc);
		a->gc = NULL;
		a->closed = 0;
	}
	sync_events(a);
}

static void connect_now(struct ads *a)
{
	struct grpc_client_opts go = {
		.host = a->host,
		.port = a->port,
		.path = a->delta ? DELTA_PATH : SOTW_PATH,
		.max_message = a->max_message,
		.tls = a->tls,
		.sni = a->sni[0] ? a->sni : NULL,
	};
	int rc = grpc_client_start(&a->gc, &go, &grpc_cb, a);

	if (rc) {
		a->gc = NULL;
		a->closed = 0;
		logf_(a, "ads: cannot connect to %s:%u: %s", a->host, a->port, strerror(-rc));
		on_close(a, GRPC_STATUS_UNAVAILABLE, strerror(-rc));
		a->closed = 0;
	}
	sync_events(a);
}

/* ---- public --------------------------------------------------------------------------------- */

static int ads_endpoint(const struct xds_config *boot, char *host, size_t hostlen, uint16_t *port,
			char *err, size_t errlen)
{
	const char *name = bootstrap_ads_cluster(boot);
	const struct xds_resource *r = name ? xds_config_find(boot, XDS_CLUSTER, name) : NULL;
	const Envoy__Config__Cluster__V3__Cluster *c =
		r ? (const Envoy__Config__Cluster__V3__Cluster *)r->msg : NULL;
	const Envoy__Config__Core__V3__SocketAddress *sa = NULL;

	if (!name) {
		snprintf(err, errlen, "the bootstrap has no dynamic_resources.ads_config");
		return -EINVAL;
	}
	if (c && c->load_assignment && c->load_assignment->n_endpoints &&
	    c->load_assignment->endpoints[0]->n_lb_endpoints) {
		const Envoy__Config__Endpoint__V3__LbEndpoint *lb =
			c->load_assignment->endpoints[0]->lb_endpoints[0];

		if (lb->endpoint && lb->endpoint->address &&
		    lb->endpoint->address->address_case ==
			    ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS)
			sa = lb->endpoint->address->socket_address;
	}
	if (!sa || !sa->address ||
	    sa->port_specifier_case !=
		    ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE) {
		snprintf(err, errlen,
			 "ADS cluster \"%s\" needs load_assignment with a socket address and "
			 "port_value",
			 name);
		return -EINVAL;
	}
	snprintf(host, hostlen, "%s", sa->address);
	*port = (uint16_t)sa->port_value;
	return 0;
}

static const Envoy__Config__Cluster__V3__Cluster *ads_cluster(const struct xds_config *boot)
{
	const char *name = bootstrap_ads_cluster(boot);
	const struct xds_resource *r = name ? xds_config_find(boot, XDS_CLUSTER, name) : NULL;

	return r ? (const Envoy__Config__Cluster__V3__Cluster *)r->msg : NULL;
}

typedef Envoy__Config__Core__V3__DataSource DataSource;
typedef Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext UpstreamTlsContext;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext CommonTlsContext;

/* A DataSource as a file name or a NUL-terminated copy of its inline bytes (*pem, freed by the
 * caller). Environment variables are not read: -EINVAL. */
static int data_source(const DataSource *d, const char **file, char **pem)
{
	*file = NULL;
	*pem = NULL;
	switch (d ? d->specifier_case : ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER__NOT_SET) {
	case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME:
		*file = d->filename;
		return 0;
	case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING:
		*pem = strdup(d->inline_string);
		return *pem ? 0 : -ENOMEM;
	case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES:
		*pem = strndup((const char *)d->inline_bytes.data, d->inline_bytes.len);
		return *pem ? 0 : -ENOMEM;
	default:
		return -EINVAL;
	}
}

/* The ADS cluster's transport_socket (envoy.transport_sockets.tls with an UpstreamTlsContext):
 * trusted CA, SNI and an optional client certificate for the control-plane connection. The
 * files are read now, so that an unreadable CA is a configuration error at start. */
static int ads_tls(struct ads *a, const Envoy__Config__Cluster__V3__Cluster *c, char *err,
		   size_t errlen)
{
	const char *f = "transport_socket.typed_config";
	struct grpc_tls_opts t = {0};
	char *ca = NULL, *cert = NULL, *key = NULL, why[256];
	ProtobufCMessage *msg = NULL;
	const UpstreamTlsContext *u;
	const CommonTlsContext *ctc;
	struct jtree_err jerr = {0};
	int rc = -EINVAL;

	if (!c->transport_socket || !c->transport_socket->typed_config)
		return 0;
	if (strcmp(c->transport_socket->typed_config->type_url,
		   "type.googleapis.com/"
		   "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext")) {
		if (strstr(c->transport_socket->typed_config->type_url, "RawBuffer"))
			return 0;
		snprintf(err, errlen,
			 "ADS cluster \"%s\": %s: only UpstreamTlsContext or RawBuffer", c->name,
			 f);
		return -EINVAL;
	}
	if (pbjson_any_unpack((const ProtobufCMessage *)c->transport_socket->typed_config, &msg,
			      &jerr)) {
		snprintf(err, errlen, "ADS cluster \"%s\": %s: %s", c->name, f, jerr.msg);
		return -EINVAL;
	}
	u = (const UpstreamTlsContext *)msg;
	ctc = u->common_tls_context;
	if (!ctc ||
	    ctc->validation_context_type_case !=
		    ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT ||
	    data_source(ctc->validation_context->trusted_ca, &t.ca_file, &ca)) {
		snprintf(err, errlen,
			 "ADS cluster \"%s\": %s.common_tls_context.validation_context.trusted_ca: "
			 "a filename or inline PEM is required",
			 c->name, f);
		goto out;
	}
	t.ca_pem = ca;
	if (ctc->n_tls_certificates &&
	    (data_source(ctc->tls_certificates[0]->certificate_chain, &t.cert_file, &cert) ||
	     data_source(ctc->tls_certificates[0]->private_key, &t.key_file, &key))) {
		snprintf(err, errlen,
			 "ADS cluster \"%s\": %s.common_tls_context.tls_certificates[0]: needs "
			 "certificate_chain and private_key as a filename or inline",
			 c->name, f);
		goto out;
	}
	t.cert_pem = cert;
	t.key_pem = key;
	a->tls = grpc_tls_ctx_new(&t, why, sizeof(why));
	if (!a->tls) {
		snprintf(err, errlen,
			 "ADS cluster \"%s\": %s.common_tls_context.validation_context.trusted_ca "
			 "or tls_certificates: %s",
			 c->name, f, why);
		goto out;
	}
	if (u->sni)
		snprintf(a->sni, sizeof(a->sni), "%s", u->sni);
	rc = 0;
out:
	free(ca);
	free(cert);
	free(key);
	protobuf_c_message_free_unpacked(msg, NULL);
	return rc;
}

static int api_is_delta(const struct xds_config *boot)
{
	const Envoy__Config__Bootstrap__V3__Bootstrap *b = bootstrap_of(boot);

	return b && b->dynamic_resources && b->dynamic_resources->ads_config &&
	       (b->dynamic_resources->ads_config->api_type ==
			ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__DELTA_GRPC ||
		b->dynamic_resources->ads_config->api_type ==
			ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__AGGREGATED_DELTA_GRPC);
}

int ads_start(struct ads **out, struct xds_config *boot, const struct ads_opts *o,
	      const struct ads_callbacks *cb, void *ctx, char *err, size_t errlen)
{
	static const struct ads_opts defaults = {.delta = -1};
	const Envoy__Config__Bootstrap__V3__Bootstrap *b = bootstrap_of(boot);
	struct ads *a;
	struct timespec ts;
	int rc;

	*out = NULL;
	if (!o)
		o = &defaults;
	if (!cb || !cb->apply) {
		snprintf(err, errlen, "ads: no apply callback");
		return -EINVAL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->cb = *cb;
	a->ctx = ctx;
	a->epfd = -1;
	a->gc_fd = -1;
	if (o->host) {
		snprintf(a->host, sizeof(a->host), "%s", o->host);
		a->port = o->port;
	} else {
		rc = ads_endpoint(boot, a->host, sizeof(a->host), &a->port, err, errlen);
		if (rc)
			goto fail;
	}
	if (ads_cluster(boot)) {
		rc = ads_tls(a, ads_cluster(boot), err, errlen);
		if (rc)
			goto fail;
	}
	a->delta = o->delta >= 0 ? !!o->delta : api_is_delta(boot);
	a->max_message = o->max_message;
	a->backoff_initial = o->backoff_initial_ms ? o->backoff_initial_ms : ADS_BACKOFF_INITIAL_MS;
	a->backoff_max = o->backoff_max_ms ? o->backoff_max_ms : ADS_BACKOFF_MAX_MS;
	a->initial_fetch_ms = o->initial_fetch_ms ? o->initial_fetch_ms : ADS_INITIAL_FETCH_MS;
	a->backoff = a->backoff_initial;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	a->rng = (unsigned)ts.tv_nsec ^ (unsigned)getpid();
	envoy__config__core__v3__node__init(&a->node);
	if (b && b->node)
		a->node = *b->node;
	a->node.user_agent_name = (char *)ADS_USER_AGENT;
	a->node.user_agent_version_type_case =
		ENVOY__CONFIG__CORE__V3__NODE__USER_AGENT_VERSION_TYPE_USER_AGENT_VERSION;
	a->node.user_agent_version = (char *)"0";
	rc = -ENOMEM;
	a->cur = config_share(boot);
	if (!a->cur)
		goto fail;
	/* The node points into the bootstrap message, which cur holds a share of. */
	a->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (a->epfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "ads: epoll_create1: %s", strerror(errno));
		goto fail;
	}
	for (int t = 0; t < XDS_NTYPES; t++)
		if (set_str(&a->sub[t].version, ""))
			goto fail;
	*out = a;
	return 0;
fail:
	ads_free(a);
	return rc;
}

int ads_fd(const struct ads *a)
{
	return a->epfd;
}

void ads_io(struct ads *a)
{
	struct epoll_event ev[4];
	int n = epoll_wait(a->epfd, ev, 4, 0);

	for (int i = 0; i < n && a->gc && !a->closed; i++)
		grpc_client_io(a->gc, ev[i].events);
	reap(a);
}

int ads_tick(struct ads *a, uint64_t now_ms)
{
	int wait = 1000;

	a->now = now_ms;
	if (!a->started_ms)
		a->started_ms = now_ms;
	if (!a->gc) {
		if (now_ms >= a->next_connect)
			connect_now(a);
		if (!a->gc)
			return a->next_connect > now_ms ? (int)(a->next_connect - now_ms) : 1;
	}
	/* A type the server never answers stops holding back the first config. */
	if (!a->st.ready && a->st.connected && now_ms - a->started_ms >= a->initial_fetch_ms) {
		for (int t = 0; t < XDS_NTYPES; t++) {
			if (a->cur->dynamic[t] && !a->sub[t].initial_done) {
				logf_(a, "ads: no %s arrived within %u ms; going on without",
				      xds_types[t].plural, a->initial_fetch_ms);
				a->sub[t].initial_done = 1;
			}
		}
		update_subs(a);
		check_ready(a);
	}
	if (a->gc && !a->closed)
		wait = grpc_client_tick(a->gc, now_ms);
	reap(a);
	if (!a->gc)
		return a->next_connect > now_ms ? (int)(a->next_connect - now_ms) : 1;
	return wait < 1000 ? wait : 1000;
}

const struct xds_config *ads_config(const struct ads *a)
{
	return a->cur;
}

const struct ads_stats *ads_stats(const struct ads *a)
{
	return &a->st;
}

void ads_free(struct ads *a)
{
	if (!a)
		return;
	if (a->gc)
		grpc_client_free(a->gc);
	if (a->epfd >= 0)
		close(a->epfd);
	for (int t = 0; t < XDS_NTYPES; t++) {
		free(a->sub[t].version);
		free(a->sub[t].nonce);
		ads_names_free(a->sub[t].names, a->sub[t].n_names);
	}
	xds_config_free(a->cur);
	grpc_tls_ctx_free(a->tls);
	free(a);
}
