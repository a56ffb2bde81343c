/* The HTTP stream logic: route, pick, forward, retry, time out, answer locally, log. */
#include "proxy/hcm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/addr.h"
#include "lib/log.h"
#include "proxy/accesslog.h"
#include "proxy/lb.h"
#include "proxy/rbac.h"
#include "proxy/tlsio.h"
#include "proxy/tunnel.h"
#include "proxy/upool.h"
#include "proxy/worker.h"

#define RETRY_MAX_INTERVAL_FACTOR 10 /* Envoy: max_interval defaults to 10x base_interval */

static bool span_eq(const char *p, size_t len, const char *lit)
{
	return strlen(lit) == len && strncasecmp(p, lit, len) == 0;
}

static const char *req_header(const struct hstream *s, const char *name, size_t *len)
{
	return px_req_header(&s->req, name, len);
}

/* ---- finishing -------------------------------------------------------------------------------- */

/* Addresses formatted for an access-log entry; it points into them. */
struct log_addrs {
	char up_host[ADDR_STRLEN], dl[ADDR_STRLEN], dr[ADDR_STRLEN];
};

static void log_entry(struct hstream *s, struct accesslog_http *out, struct log_addrs *a)
{
	struct worker *wk = s->hc->wk;
	char *up_host = a->up_host, *dl = a->dl, *dr = a->dr;
	struct accesslog_http e = {0};
	size_t n;
	const char *v;

	snprintf(up_host, ADDR_STRLEN, "-");
	if (s->up_ep.port)
		addr_port_fmt(&s->up_ep.addr, s->up_ep.port, up_host, ADDR_STRLEN);
	addr_port_fmt(&s->hc->local, s->hc->local_port, dl, ADDR_STRLEN);
	addr_port_fmt(&s->hc->remote, s->hc->remote_port, dr, ADDR_STRLEN);
	e.start = s->start_real;
	e.method = (struct accesslog_span){s->req.method, s->req.method_len};
	/* CONNECT has no path (the codecs route it as "/"). */
	if (!span_eq(s->req.method, s->req.method_len, "CONNECT"))
		e.path = (struct accesslog_span){s->req.path, s->req.path_len};
	e.authority = (struct accesslog_span){s->req.authority, s->req.authority_len};
	e.protocol = s->codec_id ? "HTTP/2" : "HTTP/1.1";
	e.status = s->status;
	e.flags = s->flags;
	e.details = s->details;
	e.failure_reason = s->failure[0] ? s->failure : NULL;
	e.bytes_received = s->bytes_rx;
	e.bytes_sent = s->bytes_tx;
	e.duration_ms = wk->now_ms - s->t_start;
	e.upstream_service_time_ms = s->t_first_byte && s->t_upstream_start
					     ? (int64_t)(s->t_first_byte - s->t_upstream_start)
					     : -1;
	v = req_header(s, "x-forwarded-for", &n);
	e.xff = (struct accesslog_span){v, v ? n : 0};
	v = req_header(s, "user-agent", &n);
	e.user_agent = (struct accesslog_span){v, v ? n : 0};
	e.request_id = (struct accesslog_span){s->request_id, strlen(s->request_id)};
	e.upstream_host = up_host;
	e.upstream_cluster = s->cluster ? s->cluster->name : NULL;
	e.downstream_local = dl;
	e.downstream_remote = dr;
	e.route_name = s->route && s->route->name ? s->route->name : NULL;
	*out = e;
}

static void log_stream(struct hstream *s)
{
	struct worker *wk = s->hc->wk;
	struct accesslog_http e;
	struct log_addrs a = {0};

	if (wk->p->cfg.access_log_fd < 0)
		return;
	log_entry(s, &e, &a);
	accesslog_http_format(&wk->log, &e, wk->p->cfg.access_log_json);
}

/* The stream no longer counts against its cluster's breakers (pending is the pool's). */
static void cb_release(struct hstream *s)
{
	px_cb_release(&s->cb_rq, PX_CB_RQ);
	px_cb_release(&s->cb_retry, PX_CB_RETRIES);
}

/* The stream is over from our side: log it, hand the upstream back, let the codec go on. */
static void finish(struct hstream *s)
{
	struct worker *wk = s->hc->wk;

	if (s->done)
		return;
	s->done = true;
	cb_release(s);
	if (s->up) {
		s->up_ops->release(s->up, s);
		s->up = NULL;
	} else {
		upool_cancel(wk, s);
	}
	if (s->cluster && s->endpoint >= 0)
		px_lb_release(worker_lb(wk, s->snap, s->cluster), (uint32_t)s->endpoint);
	if (s->status >= 500)
		STAT_INC(wk, http_rq_5xx);
	else if (s->status >= 400)
		STAT_INC(wk, http_rq_4xx);
	else if (s->status >= 200)
		STAT_INC(wk, http_rq_2xx_3xx);
	log_stream(s);
	s->down->stream_done(s);
}

/* How long the tunnel may sit without a byte either way: the route's idle_timeout, else the
 * HCM's stream_idle_timeout (Envoy applies the stream timeouts to upgraded streams). */
static uint32_t tunnel_idle_ms(const struct hstream *s)
{
	if (s->route && s->route->action.idle_timeout_ms)
		return s->route->action.idle_timeout_ms;
	return s->hc->cfg->stream_idle_timeout_ms;
}

/* The response opened the tunnel (its head is queued downstream): both codecs give up their
 * sockets and the TCP proxy's pump carries the bytes. The stream is logged when the tunnel
 * ends, with its status and the bytes that went through. */
static void tunnel_handoff(struct hstream *s)
{
	struct worker *wk = s->hc->wk;
	struct tunnel_end down = {.fd = -1}, up = {.fd = -1};
	struct tunnel_desc d = {.w = s->hc->w,
				.snap = s->snap,
				.listener = s->hc->listener,
				.chain = s->hc->chain,
				.idle_timeout_ms = tunnel_idle_ms(s),
				.start_ms = s->t_start};

	if (wk->p->cfg.access_log_fd >= 0) {
		struct accesslog_http e;
		struct log_addrs a = {0};

		log_entry(s, &e, &a);
		d.log = accesslog_http_dup(&e);
	}
	s->done = true;
	cb_release(s);
	if (s->cluster && s->endpoint >= 0)
		px_lb_release(worker_lb(wk, s->snap, s->cluster), (uint32_t)s->endpoint);
	if (s->status >= 200)
		STAT_INC(wk, http_rq_2xx_3xx);
	s->up_ops->detach(s->up, s, &up);
	s->up = NULL;
	s->down->detach(s, &down);
	if (tcp_tunnel_start(wk, &down, &up, &d))
		pr_debug("cannot start a tunnel: out of memory or epoll failure");
}

static void abandon_upstream(struct hstream *s)
{
	struct worker *wk = s->hc->wk;

	if (s->up) {
		s->up_ops->abandon(s->up, s);
		s->up = NULL;
	} else {
		upool_cancel(wk, s);
	}
	if (s->cluster && s->endpoint >= 0)
		px_lb_release(worker_lb(wk, s->snap, s->cluster), (uint32_t)s->endpoint);
}

/* The date and server headers of every response shunt makes itself. */
static void add_date_server(const struct hstream *s, struct http_hdrs *h)
{
	http_hdrs_addf(h, "date", "%s", s->hc->wk->http_date);
	http_hdrs_add(h, "server", 6, s->hc->cfg->server_name, strlen(s->hc->cfg->server_name));
}

/* A local reply to a gRPC request, as Envoy sends it: trailers-only (HTTP 200, grpc-status
 * from the HTTP status, grpc-message from the body text), so that gRPC clients see a status
 * instead of a protocol error. The access log keeps the response flag. */
static void grpc_local_reply(struct hstream *s, const struct strbuf *text)
{
	struct worker *wk = s->hc->wk;
	struct http_hdrs *h = wk->scratch_hdrs;
	struct strbuf *msg = &wk->scratch_path;

	strbuf_reset(msg);
	http_grpc_message(text->len ? strbuf_str(text) : http_reason_phrase(s->status), msg);
	http_hdrs_add(h, "content-type", 12, "application/grpc", 16);
	http_hdrs_addf(h, "grpc-status", "%d", http_grpc_status_of(s->status));
	http_hdrs_add(h, "grpc-message", 12, strbuf_str(msg), msg->len);
	http_hdrs_add(h, "content-length", 14, "0", 1);
	add_date_server(s, h);
	s->status = 200;
	s->resp_started = true;
	s->down->send_headers(s, s->status, h, true);
	finish(s);
}

/* Answers the request ourselves (Envoy's local reply), unless the response already started,
 * in which case all we can do is reset the downstream. reason: the body's words after a
 * failed upstream (see http_local_reply_body). */
static void local_reply(struct hstream *s, enum http_local_reply r, const char *details,
			const char *reason)
{
	struct worker *wk = s->hc->wk;
	struct http_hdrs *h = wk->scratch_hdrs;
	struct strbuf *body = &wk->scratch_body;

	abandon_upstream(s);
	if (!s->flags || !strcmp(s->flags, "-"))
		s->flags = http_local_reply_flag(r);
	s->details = details;
	if (s->resp_started) {
		s->down->reset(s);
		return;
	}
	s->status = http_local_reply_status(r);
	strbuf_reset(body);
	http_local_reply_body(r, reason, body);
	http_hdrs_reset(h);
	/* Envoy marks a circuit breaker's refusal so that clients and other proxies can tell a
	 * shed request from a failing upstream (and its retry logic does). */
	if (r == HTTP_LR_OVERFLOW && !s->hc->cfg->suppress_envoy_headers)
		http_hdrs_add(h, "x-envoy-overloaded", 18, "true", 4);
	if (s->is_grpc) {
		grpc_local_reply(s, body);
		return;
	}
	if (body->len) {
		http_hdrs_add(h, "content-type", 12, "text/plain", 10);
		http_hdrs_addf(h, "content-length", "%zu", body->len);
	} else {
		http_hdrs_add(h, "content-length", 14, "0", 1);
	}
	add_date_server(s, h);
	s->resp_started = true;
	s->down->send_headers(s, s->status, h, body->len == 0 || s->is_head);
	if (body->len && !s->is_head)
		s->down->send_data(s, strbuf_str(body), body->len, true);
	s->bytes_tx += body->len;
	finish(s);
}

/* ---- direct responses and redirects ---------------------------------------------------------- */

static void direct_response(struct hstream *s, const struct px_route *rt)
{
	struct worker *wk = s->hc->wk;
	struct http_hdrs *h = wk->scratch_hdrs;
	const char *body = rt->direct.body ? rt->direct.body : "";
	size_t blen = strlen(body);

	s->status = (int)rt->direct.status;
	s->details = "direct_response";
	http_hdrs_reset(h);
	if (blen)
		http_hdrs_add(h, "content-type", 12, "text/plain", 10);
	http_hdrs_addf(h, "content-length", "%zu", blen);
	add_date_server(s, h);
	http_apply_mutation(h, &s->rc->response);
	http_apply_mutation(h, &s->vh->response);
	http_apply_mutation(h, &rt->response);
	s->resp_started = true;
	s->down->send_headers(s, s->status, h, blen == 0 || s->is_head);
	if (blen && !s->is_head)
		s->down->send_data(s, body, blen, true);
	s->bytes_tx += blen;
	finish(s);
}

static void redirect(struct hstream *s, const struct px_route *rt)
{
	struct worker *wk = s->hc->wk;
	struct http_hdrs *h = wk->scratch_hdrs;
	const struct px_redirect *r = &rt->redirect;
	const char *q = memchr(s->req.path, '?', s->req.path_len);
	size_t plen = q ? (size_t)(q - s->req.path) : s->req.path_len;
	char port[16] = "";
	struct strbuf *loc = &wk->scratch_body;
	const char *host = r->host;
	size_t hlen = host ? strlen(host) : 0;

	if (!host) {
		/* Keep the request's host, without its port when the redirect sets one. */
		const char *colon = memchr(s->req.authority, ':', s->req.authority_len);

		host = s->req.authority;
		hlen = r->port && colon ? (size_t)(colon - s->req.authority) : s->req.authority_len;
	}
	if (r->port)
		snprintf(port, sizeof(port), ":%u", r->port);
	strbuf_reset(loc);
	strbuf_addf(loc, "%s://%.*s%s", r->scheme ? r->scheme : "http", (int)hlen, host, port);
	if (r->path) {
		strbuf_adds(loc, r->path);
	} else if (r->prefix_rewrite && rt->match.kind == PX_PATH_PREFIX) {
		size_t mlen = strlen(rt->match.path);

		strbuf_adds(loc, r->prefix_rewrite);
		if (plen > mlen)
			strbuf_add(loc, s->req.path + mlen, plen - mlen);
	} else {
		strbuf_add(loc, s->req.path, plen);
	}
	if (q && !r->strip_query && !r->path)
		strbuf_add(loc, q, s->req.path_len - plen);
	s->status = (int)r->response_code;
	s->details = "redirect";
	http_hdrs_reset(h);
	http_hdrs_add(h, "location", 8, strbuf_str(loc), loc->len);
	http_hdrs_add(h, "content-length", 14, "0", 1);
	add_date_server(s, h);
	s->resp_started = true;
	s->down->send_headers(s, s->status, h, true);
	finish(s);
}

/* ---- attempts -------------------------------------------------------------------------------- */

static uint64_t stream_rand(struct hstream *s)
{
	uint64_t *r = &s->hc->rng;

	*r ^= *r >> 12;
	*r ^= *r << 25;
	*r ^= *r >> 27;
	return *r * 0x2545F4914F6CDD1DULL;
}

static const char *pick_cluster(struct hstream *s, const struct px_route_action *a)
{
	if (a->cluster_header) {
		size_t len;
		const char *v = req_header(s, a->cluster_header, &len);
		struct worker *wk = s->hc->wk;

		if (!v || len >= sizeof(wk->cluster_name))
			return NULL;
		memcpy(wk->cluster_name, v, len);
		wk->cluster_name[len] = '\0';
		return wk->cluster_name;
	}
	if (a->cluster || !a->total_weight)
		return a->cluster;
	uint64_t r = stream_rand(s) % a->total_weight;

	for (uint32_t i = 0; i < a->nweighted; i++) {
		if (r < a->weighted[i].weight)
			return a->weighted[i].cluster;
		r -= a->weighted[i].weight;
	}
	return a->weighted[a->nweighted - 1].cluster;
}

/* The hash for ring hash / Maglev from the route's hash policies; false if none applies. */
static bool route_hash(struct hstream *s, uint64_t *out)
{
	const struct px_route_action *a = &s->route->action;
	bool have = false;

	for (uint32_t i = 0; i < a->nhash; i++) {
		const struct px_hash_policy *hp = &a->hash[i];
		uint64_t h = 0;
		bool got = false;

		if (hp->kind == PX_HASH_SOURCE_IP) {
			h = px_hash_bytes(&s->hc->remote, sizeof(s->hc->remote));
			got = true;
		} else if (hp->kind == PX_HASH_HEADER) {
			size_t len;
			const char *v = req_header(s, hp->name, &len);

			if (v) {
				h = px_hash_bytes(v, len);
				got = true;
			}
		} else if (hp->kind == PX_HASH_COOKIE) {
			size_t len, nl = strlen(hp->name);
			const char *c = req_header(s, "cookie", &len);

			for (size_t k = 0; c && k + nl < len; k++) {
				if ((k == 0 || c[k - 1] == ' ' || c[k - 1] == ';') &&
				    !strncmp(c + k, hp->name, nl) && c[k + nl] == '=') {
					size_t e = k + nl + 1;

					while (e < len && c[e] != ';')
						e++;
					h = px_hash_bytes(c + k + nl + 1, e - (k + nl + 1));
					got = true;
					break;
				}
			}
		}
		if (got) {
			*out = have ? ((*out << 1) | (*out >> 63)) ^ h : h;
			have = true;
			if (hp->terminal)
				break;
		}
	}
	return have;
}

static void start_attempt(struct hstream *s)
{
	struct worker *wk = s->hc->wk;
	struct px_lb_state *lb = worker_lb(wk, s->snap, s->cluster);
	uint64_t hash;
	bool hashed = route_hash(s, &hash);
	int ep, rc;

	s->deadline_backoff = 0;
	if (s->cluster->type == PX_CLUSTER_ORIGINAL_DST) {
		/* Istio's PassthroughCluster: where the connection was going in the first place. */
		s->endpoint = -1;
		s->up_ep = (struct px_endpoint){.addr = s->hc->local,
						.port = s->hc->local_port,
						.weight = 1,
						.healthy = true};
	} else {
		bool avoid = s->retry && s->retry->previous_hosts;

		ep = px_lb_pick(s->cluster, lb, hashed ? &hash : NULL, avoid ? s->avoid : NULL,
				avoid ? s->navoid : 0);
		if (ep < 0) {
			STAT_INC(wk, cx_no_healthy_upstream);
			local_reply(s, HTTP_LR_NO_HEALTHY, "no_healthy_upstream", NULL);
			return;
		}
		s->endpoint = ep;
		s->up_ep = s->cluster->endpoints[ep];
		px_lb_acquire(lb, s->cluster, (uint32_t)ep);
		if (s->navoid < HCM_MAX_AVOID)
			s->avoid[s->navoid++] = (uint32_t)ep;
	}
	s->t_upstream_start = wk->now_ms;
	s->deadline_try = s->per_try_ms ? wk->now_ms + s->per_try_ms : 0;
	worker_timer(wk, s->deadline_try);
	rc = s->upgrade ? upool_request_fresh(wk, s, s->cluster, &s->up_ep)
			: upool_request(wk, s, s->cluster, &s->up_ep);
	if (rc == -EBUSY) {
		STAT_INC(wk, http_rq_overflow);
		local_reply(s, HTTP_LR_OVERFLOW, "upstream_overflow", NULL);
	} else if (rc) {
		char why[48];

		snprintf(why, sizeof(why), "immediate connect error: %d", -rc); /* Envoy's words */
		hstream_on_upstream_failure(s, PX_RESET_CONNECT_FAILURE, why);
	}
}

/* Schedules another attempt if the policy covers how this one ended (covered) and the request
 * can still be replayed. A covered failure past num_retries marks the stream for Envoy's URX. */
static bool maybe_retry(struct hstream *s, bool covered)
{
	const struct px_retry_policy *rp = s->retry;
	struct worker *wk = s->hc->wk;

	if (!covered || !rp || s->resp_started)
		return false;
	/* A body too large to replay ends retrying altogether (no URX); with no retries at
	 * all (x-envoy-max-retries: 0) there was nothing to keep, and the failure is URX. */
	if (!s->body_replayable && rp->num_retries > 0)
		return false;
	if (s->attempt > rp->num_retries) {
		s->retry_exhausted = true;
		return false;
	}
	/* max_retries bounds the cluster's retries at a time; over it the failure stands, with
	 * no URX (Envoy's retry overflow). */
	if (!px_cb_acquire(s->cluster, PX_CB_RETRIES, false, &s->cb_retry)) {
		STAT_INC(wk, http_rq_retry_overflow);
		return false;
	}
	/* Exponential back-off with full jitter: [0, base * (2^n - 1)], capped. */
	uint64_t base = rp->base_interval_ms ? rp->base_interval_ms : HCM_RETRY_BASE_MS_DEF;
	uint64_t cap = rp->max_interval_ms ? rp->max_interval_ms : base * RETRY_MAX_INTERVAL_FACTOR;
	uint64_t span = base * ((1ULL << (s->attempt < 16 ? s->attempt : 16)) - 1);

	if (span > cap)
		span = cap;
	abandon_upstream(s);
	s->attempt++;
	s->deadline_try = 0;
	s->deadline_backoff = wk->now_ms + 1 + stream_rand(s) % (span + 1);
	worker_timer(wk, s->deadline_backoff);
	STAT_INC(wk, http_rq_retry);
	return true;
}

/* ---- the request ----------------------------------------------------------------------------- */

static void set_request_id(struct hstream *s)
{
	size_t len;
	const char *v = req_header(s, "x-request-id", &len);

	if (v && len && len <= HTTP_UUID_LEN) {
		memcpy(s->request_id, v, len);
		s->request_id[len] = '\0';
	} else if (!s->hc->cfg->no_generate_request_id) {
		http_uuid(s->request_id, &s->hc->rng);
	}
}

/* A gRPC request's deadline as the route allows it (see px_route_action.grpc_timeout). */
static uint32_t grpc_route_timeout(const struct hstream *s, const struct px_route_action *a)
{
	size_t len;
	const char *v = req_header(s, "grpc-timeout", &len);
	uint64_t t = 0;
	bool given = v && http_grpc_timeout_parse(v, len, &t) == 0;

	if (!given || (a->grpc_timeout_max_ms && t > a->grpc_timeout_max_ms))
		t = a->grpc_timeout_max_ms; /* no header and no cap: 0, no timeout */
	else if (!t)
		t = 1; /* an expired deadline still times out at once */
	if (a->grpc_timeout_offset_ms && t > a->grpc_timeout_offset_ms)
		t -= a->grpc_timeout_offset_ms;
	return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

static uint32_t route_timeout(const struct hstream *s)
{
	const struct px_route_action *a = &s->route->action;

	if (a->grpc_timeout && s->is_grpc)
		return grpc_route_timeout(s, a);
	if (a->no_timeout)
		return 0;
	return a->timeout_ms ? a->timeout_ms : PX_ROUTE_TIMEOUT_MS_DEF;
}

/* The deadline an attempt runs under, as Envoy's router tells the upstream (in
 * x-envoy-expected-rq-timeout-ms, and a rewritten grpc-timeout): the per-try timeout, else the
 * route's, never more than the route timeout leaves (1 when nothing is left). Envoy counts the
 * time from the end of the request for retries only. 0: no timeout. */
static uint32_t expected_timeout(const struct hstream *s)
{
	uint64_t global = s->timeout_ms, t = s->per_try_ms ? s->per_try_ms : global;
	uint64_t elapsed = s->attempt > 1 && s->req_end ? s->hc->wk->now_ms - s->t_req_end : 0;

	if (t && global)
		t = elapsed >= global ? 1 : t < global - elapsed ? t : global - elapsed;
	return (uint32_t)t;
}

static uint32_t ms_cap(uint64_t ms)
{
	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

/* The retry policy a trusted request's headers make of the route's (base, NULL: none), as
 * Envoy's retry state does: x-envoy-retry-on and x-envoy-retry-grpc-on add conditions (a policy
 * with Envoy's defaults when the route has none), x-envoy-max-retries replaces num_retries once
 * any condition is set, x-envoy-retriable-status-codes adds codes. Built in the stream. */
static const struct px_retry_policy *header_retry_policy(struct hstream *s,
							 const struct px_retry_policy *base)
{
	struct px_retry_policy *rp = &s->retry_hdr;
	size_t on_len, gon_len, max_len, codes_len;
	const char *on = req_header(s, "x-envoy-retry-on", &on_len);
	const char *gon = req_header(s, "x-envoy-retry-grpc-on", &gon_len);
	const char *max = req_header(s, "x-envoy-max-retries", &max_len);
	const char *codes = req_header(s, "x-envoy-retriable-status-codes", &codes_len);
	uint64_t n;

	/* Envoy keeps no retry state without a condition from the route or the request. */
	if ((!on && !gon && !(base && base->retry_on)) || (!on && !gon && !max && !codes))
		return base;
	if (base) {
		*rp = *base;
	} else {
		memset(rp, 0, sizeof(*rp));
		rp->num_retries = 1;
		rp->base_interval_ms = HCM_RETRY_BASE_MS_DEF;
	}
	if (on)
		rp->retry_on |= px_retry_on_header(on, on_len, false);
	if (gon)
		rp->retry_on |= px_retry_on_header(gon, gon_len, true);
	if (rp->retry_on && max && px_header_uint(max, max_len, &n))
		rp->num_retries = ms_cap(n);
	if (codes) {
		uint32_t k = 0;
		bool dropped = false;

		for (; base && k < base->nretriable_status_codes; k++) {
			if (k == HCM_RETRY_CODES_MAX) {
				dropped = true;
				break;
			}
			s->retry_codes[k] = base->retriable_status_codes[k];
		}
		k = px_status_codes_header(codes, codes_len, s->retry_codes, k, HCM_RETRY_CODES_MAX,
					   &dropped);
		rp->retriable_status_codes = s->retry_codes;
		rp->nretriable_status_codes = k;
		if (dropped)
			STAT_INC(s->hc->wk, http_rq_retry_codes_dropped);
	}
	return rp;
}

/* The route's retry policy and timeouts for this request, retuned by its x-envoy-* headers if
 * the request is internal (the HCM has stripped them from any other). Values that are no
 * unsigned number are ignored, as Envoy ignores them. */
static void route_policy(struct hstream *s, const struct px_retry_policy *base)
{
	size_t len;
	const char *v;
	uint64_t n;

	s->timeout_ms = route_timeout(s);
	s->per_try_ms = base ? base->per_try_timeout_ms : 0;
	s->retry = base;
	if (s->envoy_internal) {
		v = req_header(s, "x-envoy-upstream-rq-timeout-ms", &len);
		if (v && px_header_uint(v, len, &n))
			s->timeout_ms = ms_cap(n);
		v = req_header(s, "x-envoy-upstream-rq-per-try-timeout-ms", &len);
		if (v && px_header_uint(v, len, &n))
			s->per_try_ms = ms_cap(n);
		s->timeout_alt =
			req_header(s, "x-envoy-upstream-rq-timeout-alt-response", &len) != NULL;
		if (!s->upgrade)
			s->retry = header_retry_policy(s, base);
	}
	/* Envoy drops a per-try timeout that the route timeout would end first anyway. */
	if (s->timeout_ms && s->per_try_ms >= s->timeout_ms)
		s->per_try_ms = 0;
}

void hconn_init(struct hconn *hc, struct worker *wk, struct proxy_workload *w,
		struct px_snapshot *snap, const struct px_hcm *cfg, const struct shunt_addr *remote,
		__u16 remote_port, const struct shunt_addr *local, __u16 local_port)
{
	hc->wk = wk;
	hc->w = w;
	workload_get(w);
	hc->snap = snap;
	px_snapshot_get(snap);
	hc->cfg = cfg;
	hc->remote = *remote;
	hc->remote_port = remote_port;
	hc->local = *local;
	hc->local_port = local_port;
	hc->last_activity = wk->now_ms;
	/* Seeded per connection (its address, the time, a counter): well mixed by http_seed. */
	hc->rng = http_seed((uint64_t)(uintptr_t)hc ^ wk->now_ms ^ (++wk->conn_seq << 32));
	addr_fmt(remote, hc->remote_ip, sizeof(hc->remote_ip));
	list_init(&hc->streams);
}

void hconn_set_tls(struct hconn *hc, const struct tlsio *tls)
{
	hc->peer_authenticated = tls && tlsio_peer_principal(tls, hc->peer_principal_buf,
							     sizeof(hc->peer_principal_buf));
	hc->peer_principal = hc->peer_authenticated ? hc->peer_principal_buf : NULL;
	hc->sni = tls ? tlsio_sni(tls) : NULL;
}

void hconn_release(struct hconn *hc)
{
	workload_put(hc->w);
	px_snapshot_put(hc->snap);
}

void hstream_init(struct hstream *s, struct hconn *hc, const struct hconn_ops *ops)
{
	struct worker *wk = hc->wk;

	memset(s, 0, sizeof(*s));
	s->hc = hc;
	s->down = ops;
	s->endpoint = -1;
	s->attempt = 1;
	s->flags = "-";
	s->details = "-";
	s->t_start = s->last_activity = wk->now_ms;
	clock_gettime(CLOCK_REALTIME, &s->start_real);
	list_init(&s->node);
	list_init(&s->pool_node);
}

/* The upgrade a request asks for: "CONNECT" for CONNECT, else the Upgrade value of an HTTP/1.1
 * Connection: upgrade request. NULL for an ordinary request. */
static const char *upgrade_type(const struct hstream *s, size_t *len)
{
	size_t clen;
	const char *c;

	if (span_eq(s->req.method, s->req.method_len, "CONNECT")) {
		*len = 7;
		return "CONNECT";
	}
	const char *u;

	c = req_header(s, "connection", &clen);
	if (!c || !http_connection_lists(c, clen, "upgrade", 7))
		return NULL;
	u = req_header(s, "upgrade", len);
	/* Envoy's HTTP/1 codec drops an h2c upgrade offer and serves the request as HTTP/1.1 (curl
	 * --http2 sends one): not an upgrade to refuse. */
	if (u && *len == 3 && !strncasecmp(u, "h2c", 3))
		return NULL;
	return u;
}

/* Whether the route's CONNECT entry has a connect_config (we end CONNECT ourselves). */
static bool connect_terminates(const struct px_route_action *a)
{
	for (uint32_t i = 0; a && i < a->nupgrades; i++)
		if (a->upgrades[i].type && !strcasecmp(a->upgrades[i].type, "CONNECT"))
			return a->upgrades[i].connect_terminate;
	return false;
}

/* Envoy refuses, with an empty 403, an upgrade (or CONNECT) that the HCM's upgrade_configs do
 * not list or that the route disables. An allowed one is marked as such. */
static bool upgrade_refused(struct hstream *s)
{
	const struct px_hcm *cfg = s->hc->cfg;
	const struct px_route_action *a =
		s->route && s->route->kind == PX_ROUTE_FORWARD ? &s->route->action : NULL;
	size_t len;
	const char *type = upgrade_type(s, &len);

	if (!type)
		return false;
	if (px_upgrade_allowed(cfg->upgrades, cfg->nupgrades, a ? a->upgrades : NULL,
			       a ? a->nupgrades : 0, type, len)) {
		s->upgrade = true;
		s->is_connect = span_eq(s->req.method, s->req.method_len, "CONNECT");
		if (!s->is_connect) {
			s->upgrade_value = type;
			s->upgrade_len = len;
		}
		s->connect_terminate = s->is_connect && connect_terminates(a);
		return false;
	}
	STAT_INC(s->hc->wk, http_rq_upgrade_refused);
	local_reply(s, HTTP_LR_UPGRADE_FAILED, "upgrade_failed", NULL);
	return true;
}

/* ---- RBAC ------------------------------------------------------------------------------------ */

/* The client address the HCM trusts, for remote_ip, as Envoy derives it: with
 * use_remote_address, the peer unless xff_num_trusted_hops says to look that many entries into
 * x-forwarded-for from the right; without, the entry after the trusted hops from the right.
 * false: the peer it is (no such entry, or it is not an address). */
static bool rbac_trusted_client(const struct hstream *s, struct shunt_addr *out)
{
	const struct px_hcm *cfg = s->hc->cfg;
	uint32_t want =
		cfg->use_remote_address ? cfg->xff_num_trusted_hops : cfg->xff_num_trusted_hops + 1;
	size_t len = 0;
	const char *xff = req_header(s, "x-forwarded-for", &len);

	return xff && http_xff_addr(xff, len, want, out);
}

/* The config an RBAC filter runs with for this request: the route's RBACPerRoute for it, else
 * the virtual host's, else its own; NULL: disabled here. */
static const struct px_rbac *rbac_for(const struct hstream *s, const struct px_rbac_filter *f)
{
	const struct px_rbac_override *o[2] = {s->route ? s->route->rbac : NULL,
					       s->vh ? s->vh->rbac : NULL};
	uint32_t n[2] = {s->route ? s->route->nrbac : 0, s->vh ? s->vh->nrbac : 0};

	for (int k = 0; k < 2; k++)
		for (uint32_t i = 0; i < n[k]; i++)
			if (!strcmp(o[k][i].filter, f->name))
				return o[k][i].rbac;
	return f->rbac;
}

/* Envoy's RBAC HTTP filters, in the HCM's order: after route selection (their per-route
 * configs need the route) and before any upstream work. true: denied and answered 403. */
static bool rbac_denied(struct hstream *s)
{
	struct hconn *hc = s->hc;
	struct worker *wk = hc->wk;
	struct shunt_addr client;
	struct px_rbac_input in = {
		.req = &s->req,
		.dst = &hc->local,
		.dst_port = hc->local_port,
		.direct_remote = &hc->remote,
		.sni = hc->sni,
		.authenticated = hc->peer_authenticated,
		.principal = hc->peer_principal,
	};
	bool have_client = false;

	for (uint32_t i = 0; i < hc->cfg->nrbac; i++) {
		const struct px_rbac *rb = rbac_for(s, &hc->cfg->rbac[i]);
		const char *policy;
		unsigned bits;

		if (!rb)
			continue;
		if (!have_client) {
			in.remote = rbac_trusted_client(s, &client) ? &client : NULL;
			have_client = true;
		}
		bits = px_rbac_check(rb, &in, &policy);
		PX_RBAC_COUNT(wk, http, bits);
		if (bits & PX_RBAC_DENIED) {
			px_rbac_details(s->details_buf, sizeof(s->details_buf), policy);
			local_reply(s, HTTP_LR_RBAC_DENIED, s->details_buf, NULL);
			return true;
		}
	}
	return false;
}

/* Envoy applies route and cluster updates to the next requests of open connections; only a
 * changed listener or filter chain drains them. So a connection whose listener and chain the
 * worker's newer snapshot keeps (same fingerprints) moves to it before routing a request.
 * Streams in flight keep their own reference to the snapshot they started on. */
static void hconn_refresh(struct hconn *hc)
{
	struct worker *wk = hc->wk;
	const struct px_filter_chain *nfc;
	const struct px_listener *nl;

	if (!wk->snap || hc->snap == wk->snap || hc->draining || !hc->listener || !hc->chain)
		return;
	nl = px_listener_kept(wk->snap, hc->listener, hc->chain, &nfc);
	if (!nl || nfc->kind != PX_NF_HTTP)
		return; /* the drain that worker_drain_listeners starts will end it */
	px_snapshot_get(wk->snap);
	px_snapshot_put(hc->snap);
	hc->snap = wk->snap;
	hc->listener = nl;
	hc->chain = nfc;
	hc->cfg = &nfc->http;
	STAT_INC(wk, downstream_cx_config_moved);
}

void hstream_on_request_headers(struct hstream *s)
{
	struct worker *wk = s->hc->wk;
	const struct px_hcm *cfg;
	const struct px_route_action *a;
	const char *cluster;

	hconn_refresh(s->hc);
	cfg = s->hc->cfg;
	s->snap = s->hc->snap;
	px_snapshot_get(s->snap);

	STAT_INC(wk, http_rq_total);
	s->is_head = span_eq(s->req.method, s->req.method_len, "HEAD");
	{
		size_t ctlen;
		const char *ct = req_header(s, "content-type", &ctlen);

		s->is_grpc = http_is_grpc(ct, ctlen);
	}
	set_request_id(s);
	{
		size_t xlen;
		const char *xff = req_header(s, "x-forwarded-for", &xlen);

		s->envoy_internal =
			http_request_internal(cfg->use_remote_address, cfg->xff_num_trusted_hops,
					      xff, xff ? xlen : 0, &s->hc->remote);
	}
	s->rc = cfg->routes;
	s->vh = s->rc ? px_vhost_match(s->rc, s->req.authority, s->req.authority_len) : NULL;
	s->route = s->vh ? px_route_match(s->vh, &s->req) : NULL;
	if (upgrade_refused(s))
		return;
	if (cfg->nrbac && rbac_denied(s))
		return;
	if (!s->route) {
		STAT_INC(wk, cx_no_route);
		local_reply(s, HTTP_LR_NO_ROUTE, "route_not_found", NULL);
		return;
	}
	if (s->route->kind == PX_ROUTE_DIRECT) {
		direct_response(s, s->route);
		return;
	}
	if (s->route->kind == PX_ROUTE_REDIRECT) {
		redirect(s, s->route);
		return;
	}
	a = &s->route->action;
	cluster = pick_cluster(s, a);
	s->cluster = cluster ? px_cluster_find(s->snap, cluster) : NULL;
	if (!s->cluster) {
		STAT_INC(wk, cx_no_cluster);
		local_reply(s, HTTP_LR_NO_CLUSTER, "cluster_not_found", NULL);
		return;
	}
	/* max_requests: the cluster's active requests, over every worker. */
	if (!px_cb_acquire(s->cluster, PX_CB_RQ, false, &s->cb_rq)) {
		STAT_INC(wk, http_rq_overflow);
		local_reply(s, HTTP_LR_OVERFLOW, "upstream_overflow", NULL);
		return;
	}
	/* Retries never apply to upgrades: a tunnel cannot be replayed. */
	route_policy(s, s->upgrade ? NULL : a->retry ? a->retry : s->vh->retry);
	s->body_replayable = s->retry && s->retry->num_retries > 0;
	/* Envoy's route timeout runs from the end of the downstream request. */
	if (s->req_end) {
		s->t_req_end = wk->now_ms;
		if (s->timeout_ms) {
			s->deadline_route = wk->now_ms + s->timeout_ms;
			worker_timer(wk, s->deadline_route);
		}
	}
	start_attempt(s);
}

void hstream_on_request_data(struct hstream *s, const char *data, size_t len, bool end)
{
	struct worker *wk = s->hc->wk;

	s->bytes_rx += len;
	s->last_activity = wk->now_ms;
	if (end) {
		s->req_end = true;
		s->t_req_end = wk->now_ms;
		/* A tunnel's client half-closing is no request waiting for its response. */
		if (s->route && s->route->kind == PX_ROUTE_FORWARD && s->timeout_ms && !s->tunnel) {
			s->deadline_route = wk->now_ms + s->timeout_ms;
			worker_timer(wk, s->deadline_route);
		}
	}
	if (s->done)
		return;
	/* Keep what may be replayed; past the limit, retries are off. */
	if (s->body_replayable || !s->up) {
		if (s->body.len + len > HCM_RETRY_BUFFER_MAX && s->up) {
			s->body_replayable = false;
			strbuf_release(&s->body);
		} else if (len) {
			strbuf_add(&s->body, data, len);
		}
	}
	if (s->up && (len || end))
		s->up_ops->send_data(s->up, s, data, len, end);
	/* The last half of a half-closed tunnel. */
	if (end && s->tunnel && s->resp_end && !s->done)
		finish(s);
}

/* CONNECT with the route's connect_config: the TCP connection to the upstream is the tunnel.
 * Answer 200 ourselves, as Envoy does, and hand both sockets to the pump. */
static void connect_established(struct hstream *s)
{
	struct worker *wk = s->hc->wk;
	struct http_hdrs *h = wk->scratch_hdrs;

	http_hdrs_reset(h);
	add_date_server(s, h);
	s->t_first_byte = wk->now_ms;
	s->deadline_try = s->deadline_route = 0;
	s->status = 200;
	s->details = "via_upstream";
	s->resp_started = true;
	s->tunnel = true;
	s->down->send_headers(s, s->status, h, false);
	/* A codec that cannot give its socket away (HTTP/2) carries the tunnel as DATA; what the
	 * client sent before the 200 goes first. */
	if (s->down->detach) {
		if (!s->done)
			tunnel_handoff(s);
		return;
	}
	if (s->body.len || s->req_end)
		s->up_ops->send_data(s->up, s, s->body.buf ? s->body.buf : "", s->body.len,
				     s->req_end);
	strbuf_release(&s->body);
}

/* Builds the upstream request head and sends it with whatever body already arrived. */
void hstream_on_upstream_ready(struct hstream *s, void *u, const struct uconn_ops *ops)
{
	struct worker *wk = s->hc->wk;
	const struct px_hcm *cfg = s->hc->cfg;
	const struct px_route_action *a = &s->route->action;
	struct http_hdrs *h = wk->scratch_hdrs;
	const char *conn_hdr = NULL;
	size_t conn_len = 0, xff_len = 0;
	const char *xff = NULL;
	bool have_xfp = false;
	uint32_t grpc_deadline = s->is_grpc && a->grpc_timeout_rewrite ? expected_timeout(s) : 0;
	bool grpc_rewrite = grpc_deadline > 0;
	uint32_t expected = cfg->suppress_envoy_headers ? 0 : expected_timeout(s);
	/* Envoy's edge request: external, straight from the client. */
	bool edge = !s->envoy_internal && cfg->use_remote_address;
	char gt[HTTP_GRPC_TIMEOUT_DIGITS + 2];

	s->up = u;
	s->up_ops = ops;
	if (s->connect_terminate) {
		connect_established(s);
		return;
	}
	http_hdrs_reset(h);
	conn_hdr = req_header(s, "connection", &conn_len);
	for (uint32_t i = 0; i < s->req.nhdrs; i++) {
		const struct px_hdr *x = &s->req.hdrs[i];

		if (http_is_hop_by_hop(x->name, x->name_len) ||
		    (conn_hdr && http_connection_lists(conn_hdr, conn_len, x->name, x->name_len)) ||
		    span_eq(x->name, x->name_len, "host") ||
		    span_eq(x->name, x->name_len, "x-envoy-attempt-count") ||
		    span_eq(x->name, x->name_len, "expect") ||
		    (span_eq(x->name, x->name_len, "x-request-id") && !s->request_id[0]) ||
		    (grpc_rewrite && span_eq(x->name, x->name_len, "grpc-timeout")) ||
		    http_envoy_header_dropped(x->name, x->name_len, s->envoy_internal, edge) ||
		    (expected && span_eq(x->name, x->name_len, "x-envoy-expected-rq-timeout-ms")))
			continue;
		if (span_eq(x->name, x->name_len, "x-forwarded-for")) {
			xff = x->value;
			xff_len = x->value_len;
			continue;
		}
		have_xfp |= span_eq(x->name, x->name_len, "x-forwarded-proto");
		http_hdrs_add(h, x->name, x->name_len, x->value, x->value_len);
	}
	/* te: trailers is the one hop-by-hop value gRPC needs end to end. */
	size_t te_len;
	const char *te = req_header(s, "te", &te_len);

	if (te && http_connection_lists(te, te_len, "trailers", 8))
		http_hdrs_add(h, "te", 2, "trailers", 8);
	/* gt outlives the header list, which points into it until the head is sent. */
	if (grpc_rewrite)
		http_hdrs_add(h, "grpc-timeout", 12, gt,
			      http_grpc_timeout_format(grpc_deadline, gt));
	if (a->host_rewrite_literal) {
		s->up_authority = a->host_rewrite_literal;
		s->up_authority_len = strlen(a->host_rewrite_literal);
	} else {
		s->up_authority = s->req.authority;
		s->up_authority_len = s->req.authority_len;
	}
	if (http_xff(xff, xff_len, cfg->use_remote_address, cfg->skip_xff_append, s->hc->remote_ip,
		     &wk->scratch_xff))
		http_hdrs_add(h, "x-forwarded-for", 15, strbuf_str(&wk->scratch_xff),
			      wk->scratch_xff.len);
	else if (xff)
		http_hdrs_add(h, "x-forwarded-for", 15, xff, xff_len);
	if (!have_xfp)
		http_hdrs_add(h, "x-forwarded-proto", 17, "http", 4);
	if (s->request_id[0] && http_hdrs_find(h, "x-request-id") < 0)
		http_hdrs_add(h, "x-request-id", 12, s->request_id, strlen(s->request_id));
	if (s->vh->include_attempt_count)
		http_hdrs_addf(h, "x-envoy-attempt-count", "%u", s->attempt);
	if (expected)
		http_hdrs_addf(h, "x-envoy-expected-rq-timeout-ms", "%u", expected);
	if (s->envoy_internal)
		http_hdrs_add(h, "x-envoy-internal", 16, "true", 4);
	/* The upgrade's own hop-by-hop pair goes on to the upstream that is to answer it. */
	if (s->upgrade_value) {
		http_hdrs_add(h, "connection", 10, "upgrade", 7);
		http_hdrs_add(h, "upgrade", 7, s->upgrade_value, s->upgrade_len);
	}
	http_apply_mutation(h, &s->rc->request);
	http_apply_mutation(h, &s->vh->request);
	http_apply_mutation(h, &s->route->request);

	/* The path, rewritten if the route says so. */
	const char *q = memchr(s->req.path, '?', s->req.path_len);
	size_t plen = q ? (size_t)(q - s->req.path) : s->req.path_len;

	strbuf_reset(&wk->scratch_path);
	if (a->prefix_rewrite && s->route->match.kind == PX_PATH_PREFIX) {
		size_t mlen = strlen(s->route->match.path);

		strbuf_adds(&wk->scratch_path, a->prefix_rewrite);
		if (plen > mlen)
			strbuf_add(&wk->scratch_path, s->req.path + mlen, s->req.path_len - mlen);
		else if (q)
			strbuf_add(&wk->scratch_path, q, s->req.path_len - plen);
	} else {
		strbuf_add(&wk->scratch_path, s->req.path, s->req.path_len);
	}
	s->up_path = strbuf_str(&wk->scratch_path);
	s->up_path_len = wk->scratch_path.len;
	if (s->is_connect) {
		/* CONNECT to an upstream proxy: the target is the authority. */
		s->up_path = s->up_authority;
		s->up_path_len = s->up_authority_len;
	}
	if (h->overflow) {
		local_reply(s, HTTP_LR_HEADERS_TOO_LARGE, "request_headers_too_large", NULL);
		return;
	}
	/* An upgrade's head goes alone: what follows it is tunnel bytes, sent once answered. */
	if (ops->send_headers(u, s, h, !s->req_has_body || s->upgrade) < 0) {
		hstream_on_upstream_failure(s, PX_RESET_LOCAL, "cannot send request");
		return;
	}
	if (s->req_has_body && !s->upgrade && (s->body.len || s->req_end))
		ops->send_data(u, s, s->body.buf ? s->body.buf : "", s->body.len, s->req_end);
	if (!s->body_replayable) {
		/* Nothing will be replayed: the buffer was only a staging area. */
		strbuf_release(&s->body);
	}
}

/* ---- the response ---------------------------------------------------------------------------- */

/* The grpc-status a response head carries (a trailers-only response), or -1; looked up only
 * when the retry policy has a gRPC condition to match it against. */
static int response_grpc_status(const struct hstream *s, const struct px_hdr *hdrs, uint32_t n)
{
	if (!s->retry || !(s->retry->retry_on & PX_RETRY_GRPC))
		return -1;
	for (uint32_t i = 0; i < n; i++)
		if (span_eq(hdrs[i].name, hdrs[i].name_len, "grpc-status"))
			return http_grpc_status_parse(hdrs[i].value, hdrs[i].value_len);
	return -1;
}

void hstream_on_response_headers(struct hstream *s, int status, const struct px_hdr *hdrs,
				 uint32_t n, bool end_stream)
{
	struct worker *wk = s->hc->wk;
	const struct px_hcm *cfg = s->hc->cfg;
	struct http_hdrs *h = wk->scratch_hdrs;
	bool have_server = false;
	const char *conn_hdr = NULL;
	size_t conn_len = 0;

	if (s->done)
		return;
	s->t_first_byte = wk->now_ms;
	s->deadline_try = 0;
	if (maybe_retry(s,
			px_retry_on_response(s->retry, status, response_grpc_status(s, hdrs, n))))
		return;
	if (s->retry_exhausted)
		s->flags = "URX";
	/* An allowed upgrade answered 101, a CONNECT answered 2xx: from now on, raw bytes. */
	s->tunnel = s->upgrade && !end_stream &&
		    (s->is_connect ? status >= 200 && status < 300 : status == 101);
	http_hdrs_reset(h);
	for (uint32_t i = 0; i < n; i++)
		if (span_eq(hdrs[i].name, hdrs[i].name_len, "connection")) {
			conn_hdr = hdrs[i].value;
			conn_len = hdrs[i].value_len;
		}
	for (uint32_t i = 0; i < n; i++) {
		const struct px_hdr *x = &hdrs[i];

		/* The 101's own hop-by-hop pair goes on to the client it answers (HTTP/1.1). */
		if (s->tunnel && status == 101 && !s->h2_ext_connect &&
		    span_eq(x->name, x->name_len, "upgrade")) {
			http_hdrs_add(h, "connection", 10, "upgrade", 7);
			http_hdrs_add(h, "upgrade", 7, x->value, x->value_len);
			continue;
		}
		if (http_is_hop_by_hop(x->name, x->name_len) ||
		    (conn_hdr && http_connection_lists(conn_hdr, conn_len, x->name, x->name_len)))
			continue;
		/* A 2xx to CONNECT has no body to frame (RFC 9110 9.3.6). */
		if (s->tunnel && s->is_connect && span_eq(x->name, x->name_len, "content-length"))
			continue;
		/* The codec made the key: the accept answers it, not the client. */
		if (s->ws_key_made && span_eq(x->name, x->name_len, "sec-websocket-accept"))
			continue;
		if (span_eq(x->name, x->name_len, "server")) {
			if (cfg->server_header == PX_SERVER_OVERWRITE)
				continue;
			have_server = true;
		}
		http_hdrs_add(h, x->name, x->name_len, x->value, x->value_len);
	}
	if (!cfg->suppress_envoy_headers)
		http_hdrs_addf(h, "x-envoy-upstream-service-time", "%llu",
			       (unsigned long long)(s->t_first_byte - s->t_upstream_start));
	if (cfg->server_header == PX_SERVER_OVERWRITE ||
	    (cfg->server_header == PX_SERVER_APPEND_IF_ABSENT && !have_server))
		http_hdrs_add(h, "server", 6, cfg->server_name, strlen(cfg->server_name));
	http_apply_mutation(h, &s->rc->response);
	http_apply_mutation(h, &s->vh->response);
	http_apply_mutation(h, &s->route->response);
	/* RFC 8441: the HTTP/2 client's tunnel opens with 200. */
	if (s->h2_ext_connect)
		status = http_ext_connect_status(status);
	s->status = status;
	s->details = "via_upstream";
	s->resp_started = true;
	/* The route timeout waits for the answer; an open tunnel has only its idle timeout. */
	if (s->tunnel)
		s->deadline_route = 0;
	s->down->send_headers(s, status, h, end_stream);
	if (s->tunnel && s->down->detach) {
		if (!s->done)
			tunnel_handoff(s);
		return;
	}
	if (end_stream)
		finish(s);
}

void hstream_on_response_data(struct hstream *s, const char *data, size_t len, bool end)
{
	if (s->done)
		return;
	s->bytes_tx += len;
	s->last_activity = s->hc->wk->now_ms;
	s->down->send_data(s, data, len, end);
	if (!end)
		return;
	/* A tunnel's upstream ended its side; the client's may still be sending (half-close). */
	if (s->tunnel && !s->req_end) {
		s->resp_end = true;
		return;
	}
	finish(s);
}

void hstream_on_response_trailers(struct hstream *s, const struct px_hdr *hdrs, uint32_t n)
{
	struct worker *wk = s->hc->wk;
	struct http_hdrs *h = wk->scratch_hdrs;

	if (s->done)
		return;
	http_hdrs_reset(h);
	for (uint32_t i = 0; i < n; i++)
		http_hdrs_add(h, hdrs[i].name, hdrs[i].name_len, hdrs[i].value, hdrs[i].value_len);
	s->down->send_trailers(s, h);
	finish(s);
}

/* What Envoy's router says of each reset reason: the response flag (and with URX, when it was
 * the last failure the retry policy allowed), the reason's name in the details and its words
 * in a 503's body. */
static const struct {
	const char *flag, *flag_urx, *name, *words;
} resets[PX_RESET_KINDS] = {
	[PX_RESET_CONNECT_FAILURE] = {"UF", "UF,URX", "connection_failure", "connection failure"},
	[PX_RESET_CONNECT_TIMEOUT] = {"UF", "UF,URX", "connection_timeout", "connection timeout"},
	[PX_RESET_REFUSED_STREAM] = {"UR", "UR,URX", "remote_refused_stream_reset",
				     "remote refused stream reset"},
	[PX_RESET_REMOTE] = {"UR", "UR,URX", "remote_reset", "remote reset"},
	[PX_RESET_TERMINATION] = {"UC", "UC,URX", "connection_termination",
				  "connection termination"},
	[PX_RESET_PROTOCOL_ERROR] = {"UPE", "UPE,URX", "protocol_error", "protocol error"},
	[PX_RESET_LOCAL] = {"LR", "LR,URX", "local_reset", "local reset"},
};

/* The attempt ended before a response: retry it, or answer 503 (or reset a response that
 * already started). */
static void upstream_failed(struct hstream *s, enum px_upstream_reset kind, const char *reason)
{
	struct worker *wk = s->hc->wk;
	bool connect_failure = kind == PX_RESET_CONNECT_FAILURE || kind == PX_RESET_CONNECT_TIMEOUT;
	char words[sizeof(s->failure) + 96];

	if (s->done)
		return;
	s->up = NULL; /* the codec has let go of it */
	snprintf(s->failure, sizeof(s->failure), "%s", reason ? reason : "");
	if (connect_failure)
		STAT_INC(wk, upstream_cx_connect_fail);
	if (kind == PX_RESET_CONNECT_TIMEOUT)
		STAT_INC(wk, upstream_cx_connect_timeout);
	if (maybe_retry(s, px_retry_on_reset(s->retry, kind)))
		return;
	/* Envoy's transport failure reason: why a connection could not be made (a socket error,
	 * a TLS alert). A timeout or a reset on a working connection has none. */
	if (kind != PX_RESET_CONNECT_FAILURE)
		s->failure[0] = '\0';
	/* Once the response started, the downstream can only be reset; the flag still says how. */
	s->flags =
		s->retry_exhausted && !s->resp_started ? resets[kind].flag_urx : resets[kind].flag;
	snprintf(s->details_buf, sizeof(s->details_buf),
		 "upstream_reset_%s_response_started{%s%s%s}", s->resp_started ? "after" : "before",
		 resets[kind].name, s->failure[0] ? "," : "", s->failure);
	http_details_token(s->details_buf);
	if (s->resp_started) {
		s->details = s->details_buf;
		s->down->reset(s);
		return;
	}
	snprintf(words, sizeof(words), "%sreset reason: %s%s%s",
		 s->attempt > 1 ? "retried and the latest " : "", resets[kind].words,
		 s->failure[0] ? ", transport failure reason: " : "", s->failure);
	local_reply(s, connect_failure ? HTTP_LR_CONNECT_FAILURE : HTTP_LR_UPSTREAM_RESET,
		    s->details_buf, words);
}

void hstream_on_upstream_failure(struct hstream *s, enum px_upstream_reset kind, const char *reason)
{
	upstream_failed(s, kind < PX_RESET_KINDS ? kind : PX_RESET_LOCAL, reason);
}

void hstream_on_downstream_reset(struct hstream *s, const char *why)
{
	if (s->done)
		return;
	abandon_upstream(s);
	s->done = true;
	cb_release(s);
	/* A reset we sent ourselves (UR, SI) comes back here: keep what it said. */
	if (!strcmp(s->flags, "-")) {
		s->flags = "DC";
		s->details = why;
	} else if (!strcmp(s->details, "-")) {
		s->details = why;
	}
	if (!s->status)
		s->status = 0;
	log_stream(s);
}

void hstream_release(struct hstream *s)
{
	cb_release(s);
	strbuf_release(&s->body);
	px_snapshot_put(s->snap);
	s->snap = NULL;
}

/* ---- timers ----------------------------------------------------------------------------------- */

void hconn_tick(struct hconn *hc, uint64_t now)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &hc->streams) {
		struct hstream *s = list_entry(pos, struct hstream, node);

		if (s->done)
			continue;
		if (s->deadline_backoff && now >= s->deadline_backoff) {
			px_cb_release(&s->cb_retry, PX_CB_RETRIES);
			start_attempt(s);
			continue;
		}
		if (s->deadline_try && now >= s->deadline_try) {
			STAT_INC(hc->wk, http_rq_timeout);
			/* A per-try timeout is retried like a local reset, as in Envoy. */
			if (maybe_retry(s, px_retry_on_reset(s->retry, PX_RESET_LOCAL)))
				continue;
			if (s->retry_exhausted)
				s->flags = "UT,URX";
			local_reply(s, s->timeout_alt ? HTTP_LR_TIMEOUT_ALT : HTTP_LR_TIMEOUT,
				    "upstream_per_try_timeout", NULL);
			continue;
		}
		if (s->deadline_route && now >= s->deadline_route) {
			STAT_INC(hc->wk, http_rq_timeout);
			pr_debug("route timeout after %llu ms (%s)",
				 (unsigned long long)(now - s->t_start),
				 s->pool_wait ? "still waiting for a connection"
					      : "waiting for a response");
			local_reply(s, s->timeout_alt ? HTTP_LR_TIMEOUT_ALT : HTTP_LR_TIMEOUT,
				    "upstream_response_timeout", NULL);
			continue;
		}
		if (now - s->last_activity >= hc->cfg->stream_idle_timeout_ms && !s->resp_started) {
			local_reply(s, HTTP_LR_STREAM_IDLE, "stream_idle_timeout", NULL);
			continue;
		}
		/* A tunnel this codec carries (HTTP/2): idle both ways for its idle timeout. */
		if (s->tunnel && now - s->last_activity >= tunnel_idle_ms(s)) {
			STAT_INC(hc->wk, cx_idle_timeout);
			s->flags = "SI";
			local_reply(s, HTTP_LR_STREAM_IDLE, "stream_idle_timeout", NULL);
			continue;
		}
		/* Still pending: keep the loop's timer armed for the nearest one. */
		worker_timer(hc->wk, s->deadline_backoff);
		worker_timer(hc->wk, s->deadline_try);
		worker_timer(hc->wk, s->deadline_route);
	}
}
