/* Upstream pools and the HTTP/1 upstream codec: lend a kept-alive connection or open one,
 * write the request head and body with our own framing, parse the response and stream it to
 * the waiting stream. */
#include "proxy/upool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "proxy/h2.h"
#include "proxy/hcm.h"
#include "proxy/http1.h"
#include "proxy/tls.h"
#include "proxy/tunnel.h"
#include "proxy/upstream.h"

static const struct uconn_ops h1_up_ops;

static uint32_t cb_or(uint32_t v, uint32_t def)
{
	return v ? v : def;
}

/* ---- pools ------------------------------------------------------------------------------------ */

/* The pool of workload w's connections to endpoint ep of cluster c that speak HTTP/2 (h2) or
 * HTTP/1.1: one cluster has two when it follows the downstream protocol. */
static struct upool *pool_get(struct worker *wk, struct proxy_workload *w,
			      const struct px_cluster *c, const struct px_endpoint *ep,
			      const struct px_transport *tr, bool h2)
{
	struct list_head *pos, *tmp;
	struct upool *p;

	list_for_each_safe (pos, tmp, &wk->pools) {
		p = list_entry(pos, struct upool, node);
		if (p->w == w && p->port == ep->port && p->cfg.http2 == h2 &&
		    !memcmp(&p->addr, &ep->addr, sizeof(ep->addr)) && !strcmp(p->cluster, c->name))
			goto found;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->w = w;
	workload_get(w);
	snprintf(p->cluster, sizeof(p->cluster), "%s", c->name);
	p->addr = ep->addr;
	p->port = ep->port;
	list_init(&p->idle);
	list_init(&p->busy);
	list_init(&p->pending);
	list_init(&p->h2);
	list_add_tail(&p->node, &wk->pools);
found:;
	/* Settings follow the newest snapshot that used the pool; nothing that points into a
	 * snapshot is kept, since the pool outlives snapshots (the breaker state is counted). */
	struct px_cb_state *cbs = p->cfg.cbs;

	if (cbs != c->cbs) {
		px_cb_get(c->cbs);
		px_cb_put(cbs);
	}
	p->cfg = *c;
	p->cfg.name = p->cluster;
	p->cfg.http2 = h2;
	p->cfg.endpoints = NULL;
	p->cfg.nendpoints = 0;
	p->cfg.sets = NULL;
	p->cfg.nsets = 0;
	p->cfg.dns_targets = NULL;
	p->cfg.ndns_targets = 0;
	p->cfg.transport = (struct px_transport){0};
	if (p->tls != tr->tls) {
		if (tr->tls)
			px_tls_ctx_get(tr->tls);
		px_tls_ctx_put(p->tls);
		p->tls = tr->tls;
	}
	snprintf(p->sni, sizeof(p->sni), "%s", tr->sni ? tr->sni : "");
	return p;
}

void upool_maybe_free(struct upool *p)
{
	if (p->nconns || p->npending || p->ndead)
		return;
	list_del_init(&p->node);
	workload_put(p->w);
	px_tls_ctx_put(p->tls);
	px_cb_put(p->cfg.cbs);
	free(p);
}

int upool_tls_start(struct upool *p, struct tlsio *t, int fd, bool fresh)
{
	const char *offer = NULL;
	int err = tlsio_start(t, p->tls, fd, p->sni);

	if (err || !p->tls->alpn_by_codec)
		return err;
	/* The context named no protocol: offer the one this connection's codec will speak. An
	 * upgrade's connection speaks HTTP/1.1 whatever its cluster's default would offer. */
	if (fresh)
		offer = "http/1.1";
	else if (p->cfg.use_downstream_protocol)
		offer = p->cfg.http2 ? "h2" : "http/1.1";
	return offer ? tlsio_offer(t, offer) : 0;
}

bool upool_tls_step(struct worker *wk, struct upool *p, struct tlsio *t, const char *codec)
{
	enum tlsio_hs r = tlsio_handshake(t);
	char alpn[32];

	if (r == TLSIO_HS_AGAIN)
		return false;
	tlsio_count(wk, t, r);
	if (r == TLSIO_HS_FAILED) {
		pr_debug("upstream TLS to %s failed: %s", p->cluster, t->err);
		return true;
	}
	tlsio_alpn(t, alpn, sizeof(alpn));
	if (codec && (!strcmp(alpn, "h2") || !strcmp(alpn, "http/1.1")) && strcmp(alpn, codec)) {
		STAT_INC(wk, ssl_connection_error);
		snprintf(t->err, sizeof(t->err), "TLS_error:alpn_chose_%s_for_a_%s_cluster", alpn,
			 codec);
	}
	return true;
}

/* ---- connections ------------------------------------------------------------------------------ */

static void uconn_close(struct worker *wk, struct uconn *u)
{
	if (u->state == UC_CLOSED)
		return;
	pr_debug("upstream HTTP/1 connection to %s closed (state %d, %u waiting)", u->pool->cluster,
		 u->state, u->pool->npending);
	tlsio_shutdown(&u->tls);
	tlsio_free(&u->tls);
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
	u->state = UC_CLOSED;
	if (u->owner) {
		u->owner->up_fresh = NULL;
		u->owner = NULL;
	}
	worker_defer_cancel(&u->flush_later);
	list_del_init(&u->node);
	px_cb_release(&u->cbs, PX_CB_CX);
	u->pool->nconns--;
	u->pool->ndead++;
	list_add_tail(&u->dead, &wk->up_dead);
}

static bool uconn_in_get(struct worker *wk, struct uconn *u)
{
	struct buf *b = worker_buf_get(wk);

	if (!b)
		return false;
	u->in = b->data;
	return true;
}

static void uconn_in_put(struct worker *wk, struct uconn *u)
{
	worker_buf_put(wk, container_of(u->in, struct buf, data));
	u->in = NULL;
	u->in_len = 0;
}

void upool_free_dead(struct worker *wk)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &wk->up_dead) {
		struct uconn *u = list_entry(pos, struct uconn, dead);
		struct upool *p = u->pool;

		list_del_init(&u->dead);
		strbuf_release(&u->out);
		if (u->in)
			uconn_in_put(wk, u);
		free(u);
		p->ndead--;
		upool_maybe_free(p);
	}
}

/* The stream's exchange failed: tell it (it may retry elsewhere) and drop the connection. */
static void uconn_fail(struct worker *wk, struct uconn *u, enum px_upstream_reset kind,
		       const char *reason)
{
	struct hstream *s = u->stream;

	u->stream = NULL;
	uconn_close(wk, u);
	if (s)
		hstream_on_upstream_failure(s, kind, reason);
}

/* Writes what is queued. A hard error is not handled here, inside some send path: shutting
 * the socket down makes epoll report it, and the read path fails the stream then. */
static void flush_out(struct uconn *u)
{
	while (u->out_off < u->out.len && u->writable) {
		ssize_t n = tlsio_send(&u->tls, u->fd, u->out.buf + u->out_off,
				       u->out.len - u->out_off);

		if (n < 0) {
			if (errno == EAGAIN) {
				u->writable = false;
			} else if (errno != EINTR) {
				shutdown(u->fd, SHUT_RDWR);
				u->writable = false;
			}
			return;
		}
		u->out_off += (size_t)n;
	}
	if (u->out_off == u->out.len) {
		strbuf_reset(&u->out);
		u->out_off = 0;
		/* A tunnel's client ended its side: ours ends once its bytes are out. */
		if (u->shut_wanted && !u->wr_shut) {
			shutdown(u->fd, SHUT_WR);
			u->wr_shut = true;
		}
	}
}

static void uconn_flush_later(struct worker *wk, struct wk_deferred *d)
{
	struct uconn *u = container_of(d, struct uconn, flush_later);

	(void)wk;
	if (u->state != UC_CLOSED)
		flush_out(u);
}

static enum http1_method method_of(const struct hstream *s)
{
	static const struct {
		const char *name;
		enum http1_method m;
	} m[] = {{"HEAD", HTTP1_METHOD_HEAD}, {"CONNECT", HTTP1_METHOD_CONNECT}};

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (s->req.method_len == strlen(m[i].name) &&
		    !memcmp(s->req.method, m[i].name, s->req.method_len))
			return m[i].m;
	return HTTP1_METHOD_GET;
}

/* Lends u to s and sends s's request on it. */
static void attach(struct worker *wk, struct uconn *u, struct hstream *s)
{
	list_del_init(&u->node);
	list_add_tail(&u->node, &u->pool->busy);
	u->state = UC_BUSY;
	u->stream = s;
	u->requests++;
	u->head_done = u->resp_done = u->req_done = false;
	u->in_len = 0;
	u->req_method = method_of(s);
	/* CONNECT that we end ourselves: no HTTP goes upstream, the connection is the tunnel. */
	if (s->connect_terminate) {
		u->raw = u->head_done = u->req_done = true;
		u->body = HTTP1_BODY_TUNNEL;
	}
	hstream_on_upstream_ready(s, u, &h1_up_ops);
}

static void park(struct worker *wk, struct uconn *u)
{
	struct upool *p = u->pool;

	list_del_init(&u->node);
	list_add_tail(&u->node, &p->idle);
	u->state = UC_IDLE;
	u->stream = NULL;
	u->deadline = wk->now_ms + cb_or(p->cfg.upstream_idle_timeout_ms, UPOOL_IDLE_MS_DEF);
}

/* Hands parked connections to waiting streams. Runs at the end of each loop iteration, never
 * from inside a codec callback, so that no parser is working on a connection's buffer while
 * it changes hands. */
void upool_dispatch(struct worker *wk)
{
	struct list_head *pp, *ptmp;

	list_for_each_safe (pp, ptmp, &wk->pools) {
		struct upool *p = list_entry(pp, struct upool, node);

		if (p->cfg.http2 || p->alpn_h2) {
			h2_up_dispatch(wk, p);
			continue;
		}
		while (!list_empty(&p->pending) && !list_empty(&p->idle)) {
			struct hstream *s = list_entry(p->pending.next, struct hstream, pool_node);

			upool_unqueue(p, s);
			attach(wk, list_entry(p->idle.next, struct uconn, node), s);
		}
	}
}

bool upool_cx_take(struct upool *p, struct px_cb_state **held)
{
	/* When other hosts hold the cluster's connections, this one still gets one if it has
	 * none, or its waiters would have none to wait for (Envoy does the same). */
	return px_cb_acquire(&p->cfg, PX_CB_CX, false, held) ||
	       (!p->nconns && px_cb_acquire(&p->cfg, PX_CB_CX, true, held));
}

/* A new connection for p, counted by the cluster's breaker: -EBUSY when it is full. */
static int uconn_open(struct worker *wk, struct upool *p, struct hstream *owner)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
	struct px_cb_state *held;
	struct uconn *u;
	int fd;

	if (!upool_cx_take(p, &held))
		return -EBUSY;
	u = calloc(1, sizeof(*u));
	if (!u) {
		px_cb_release(&held, PX_CB_CX);
		return -ENOMEM;
	}
	fd = upstream_connect(wk, p->w, &p->cfg, &p->addr, p->port, &u->bound_local);
	if (fd < 0) {
		px_cb_release(&held, PX_CB_CX);
		free(u);
		return fd;
	}
	u->cbs = held;
	u->h.type = EV_UPSTREAM;
	u->fd = fd;
	u->pool = p;
	u->state = UC_CONNECTING;
	if (owner) {
		u->fresh = true;
		u->owner = owner;
		owner->up_fresh = u;
	}
	worker_defer_init(&u->flush_later, uconn_flush_later);
	u->deadline = wk->now_ms + cb_or(p->cfg.connect_timeout_ms, wk->p->cfg.connect_timeout_ms);
	worker_timer(wk, u->deadline);
	list_init(&u->dead);
	list_add_tail(&u->node, &p->busy);
	p->nconns++;
	ev.data.ptr = &u->h;
	if (epoll_ctl(wk->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		int err = -errno;

		uconn_close(wk, u);
		return err;
	}
	return 0;
}

/* The pool for endpoint ep of c, with the endpoint's transport, for s on a connection of its
 * own (fresh: always HTTP/1.1) or shared. NULL with *err = 0 after answering s itself, or with
 * -ENOMEM. */
static struct upool *pool_for(struct worker *wk, struct hstream *s, const struct px_cluster *c,
			      const struct px_endpoint *ep, bool fresh, int *err)
{
	const struct px_transport *tr = ep->transport ? ep->transport : &c->transport;
	struct upool *p;
	bool h2;

	*err = 0;
	if (tr->missing_secret) {
		/* Envoy's cluster that is not ready: a connection failure, with the reason. */
		char why[96];

		STAT_INC(wk, ssl_secret_not_ready);
		snprintf(why, sizeof(why), "TLS_error:secret_not_ready:%s", tr->missing_secret);
		hstream_on_upstream_failure(s, PX_RESET_CONNECT_FAILURE, why);
		return NULL;
	}
	if (fresh)
		h2 = false;
	else if (c->use_downstream_protocol)
		h2 = s->codec_id != 0; /* Envoy's choice: HTTP/2 downstream, HTTP/2 upstream */
	else
		h2 = c->http2;
	p = pool_get(wk, s->hc->w, c, ep, tr, h2);
	if (!p)
		*err = -ENOMEM;
	return p;
}

int upool_enqueue(struct upool *p, struct hstream *s, const struct px_cluster *c)
{
	if (!px_cb_acquire(c, PX_CB_PENDING, false, &s->cb_pending)) {
		upool_maybe_free(p);
		return -EBUSY;
	}
	list_add_tail(&s->pool_node, &p->pending);
	s->pool_wait = p;
	p->npending++;
	return 0;
}

void upool_unqueue(struct upool *p, struct hstream *s)
{
	list_del_init(&s->pool_node);
	s->pool_wait = NULL;
	p->npending--;
	px_cb_release(&s->cb_pending, PX_CB_PENDING);
}

int upool_request(struct worker *wk, struct hstream *s, const struct px_cluster *c,
		  const struct px_endpoint *ep)
{
	struct upool *p;
	int err;

	p = pool_for(wk, s, c, ep, false, &err);
	if (!p)
		return err;
	if (p->cfg.http2 || p->alpn_h2)
		return h2_up_request(wk, p, s);
	if (!list_empty(&p->idle)) {
		attach(wk, list_entry(p->idle.next, struct uconn, node), s);
		return 0;
	}
	err = upool_enqueue(p, s, c);
	if (err)
		return err;
	/* A new connection (if the breaker allows one) serves the oldest waiter; if not, the
	 * stream waits for one of the pool's connections to come free. */
	err = uconn_open(wk, p, NULL);
	if (err && err != -EBUSY) {
		upool_cancel(wk, s);
		return err;
	}
	if (err)
		STAT_INC(wk, upstream_cx_overflow);
	return 0;
}

int upool_request_fresh(struct worker *wk, struct hstream *s, const struct px_cluster *c,
			const struct px_endpoint *ep)
{
	int err;
	struct upool *p = pool_for(wk, s, c, ep, true, &err);

	if (!p)
		return err;
	err = uconn_open(wk, p, s);
	if (err == -EBUSY)
		STAT_INC(wk, upstream_cx_overflow);
	if (err)
		upool_maybe_free(p);
	return err;
}

/* The stream a fresh connection was opened for, which no longer waits for it. */
static struct hstream *take_owner(struct uconn *u)
{
	struct hstream *s = u->owner;

	u->owner = NULL;
	if (s)
		s->up_fresh = NULL;
	return s;
}

struct hstream *upool_take_oldest(struct worker *wk, struct upool *p)
{
	struct hstream *s;

	if (list_empty(&p->pending))
		return NULL;
	s = list_entry(p->pending.next, struct hstream, pool_node);
	upool_cancel(wk, s);
	return s;
}

void upool_connect_failed(struct hstream *s, int err)
{
	char why[64];

	if (!s)
		return;
	snprintf(why, sizeof(why), "delayed connect error: %d", -err);
	hstream_on_upstream_failure(s, PX_RESET_CONNECT_FAILURE, why);
}

void upool_cancel(struct worker *wk, struct hstream *s)
{
	struct upool *p = s->pool_wait;

	if (s->up_fresh) {
		struct uconn *u = s->up_fresh;

		take_owner(u);
		uconn_close(wk, u);
		return;
	}
	if (!p)
		return;
	upool_unqueue(p, s);
	upool_maybe_free(p);
}

void upool_release(struct worker *wk, struct uconn *u, bool reusable)
{
	uint32_t max = u->pool->cfg.max_requests_per_connection;

	u->stream = NULL;
	/* A tunnel's last bytes to the server are still queued: write them, then close. */
	if (u->raw && u->out_off < u->out.len && u->state == UC_BUSY) {
		u->linger = true;
		u->deadline = wk->now_ms + UPOOL_LINGER_MS;
		worker_timer(wk, u->deadline);
		return;
	}
	if (!reusable || u->fresh || !u->keep_alive || !u->resp_done || !u->req_done ||
	    u->out_off < u->out.len || (max && u->requests >= max)) {
		uconn_close(wk, u);
		return;
	}
	park(wk, u);
}

void upool_tick(struct worker *wk)
{
	struct list_head *pp, *ptmp, *pos, *tmp;

	list_for_each_safe (pp, ptmp, &wk->pools) {
		struct upool *p = list_entry(pp, struct upool, node);

		list_for_each_safe (pos, tmp, &p->busy) {
			struct uconn *u = list_entry(pos, struct uconn, node);

			if ((u->state == UC_CONNECTING || u->linger) && wk->now_ms < u->deadline)
				worker_timer(wk, u->deadline);
			if (u->linger && wk->now_ms >= u->deadline) {
				uconn_close(wk, u);
				continue;
			}
			if (u->state == UC_CONNECTING && wk->now_ms >= u->deadline) {
				/* The waiter this connection was opened for gives up on it. */
				struct hstream *s = u->fresh ? take_owner(u)
						    : list_empty(&p->pending)
							    ? NULL
							    : list_entry(p->pending.next,
									 struct hstream, pool_node);

				if (s && !u->fresh)
					upool_cancel(wk, s);
				uconn_close(wk, u);
				if (s)
					hstream_on_upstream_failure(s, PX_RESET_CONNECT_TIMEOUT,
								    "connection timeout");
			}
		}
		list_for_each_safe (pos, tmp, &p->idle) {
			struct uconn *u = list_entry(pos, struct uconn, node);

			if (wk->now_ms >= u->deadline)
				uconn_close(wk, u);
		}
		h2_up_tick(wk, p);
	}
}

void upool_destroy(struct worker *wk)
{
	struct list_head *pp, *ptmp, *pos, *tmp;

	list_for_each_safe (pp, ptmp, &wk->pools) {
		struct upool *p = list_entry(pp, struct upool, node);

		list_for_each_safe (pos, tmp, &p->idle)
			uconn_close(wk, list_entry(pos, struct uconn, node));
		list_for_each_safe (pos, tmp, &p->busy)
			uconn_close(wk, list_entry(pos, struct uconn, node));
		h2_up_close_pool(wk, p);
	}
	upool_free_dead(wk);
	h2_up_free_dead(wk);
}

/* ---- the HTTP/1 upstream codec ----------------------------------------------------------------- */

static bool method_takes_body(const struct hstream *s)
{
	static const char *const m[] = {"POST", "PUT", "PATCH"};

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (s->req.method_len == strlen(m[i]) &&
		    !memcmp(s->req.method, m[i], s->req.method_len))
			return true;
	return false;
}

static int h1_send_headers(void *x, struct hstream *s, struct http_hdrs *h, bool end_stream)
{
	struct uconn *u = x;
	struct strbuf *o = &u->out;
	bool has_cl = http_hdrs_find(h, "content-length") >= 0;

	strbuf_add(o, s->req.method, s->req.method_len);
	strbuf_addc(o, ' ');
	if (s->up_path_len)
		strbuf_add(o, s->up_path, s->up_path_len);
	else
		strbuf_addc(o, '/');
	strbuf_adds(o, " HTTP/1.1\r\nhost: ");
	strbuf_add(o, s->up_authority, s->up_authority_len);
	strbuf_adds(o, "\r\n");
	for (uint32_t i = 0; i < h->n; i++) {
		strbuf_add(o, h->v[i].name, h->v[i].name_len);
		strbuf_adds(o, ": ");
		strbuf_add(o, h->v[i].value, h->v[i].value_len);
		strbuf_adds(o, "\r\n");
	}
	/* Our own framing: a known length passes through, anything else is chunked. */
	u->req_chunked = !end_stream && !has_cl;
	if (u->req_chunked)
		strbuf_adds(o, "transfer-encoding: chunked\r\n");
	else if (end_stream && !has_cl && method_takes_body(s))
		strbuf_adds(o, "content-length: 0\r\n");
	strbuf_adds(o, "\r\n");
	u->req_done = end_stream;
	if (o->err)
		return -ENOMEM;
	/* A body that follows in this iteration goes out in the same send. */
	if (end_stream)
		flush_out(u);
	else
		worker_defer(s->hc->wk, &u->flush_later);
	return 0;
}

static int h1_send_data(void *x, struct hstream *s, const char *data, size_t len, bool end_stream)
{
	struct uconn *u = x;
	struct strbuf *o = &u->out;
	char hdr[HTTP1_CHUNK_HEADER_MAX];

	if (u->raw || s->upgrade) {
		/* A tunnel: the bytes as they are; the end of the stream is our FIN. */
		strbuf_add(o, data, len);
		if (o->err)
			return -ENOMEM;
		u->shut_wanted |= end_stream;
		flush_out(u);
		return 0;
	}
	if (u->req_done)
		return 0;
	if (u->req_chunked && len) {
		strbuf_add(o, hdr, http1_chunk_header(hdr, len));
		strbuf_add(o, data, len);
		strbuf_adds(o, HTTP1_CHUNK_END);
	} else if (len) {
		strbuf_add(o, data, len);
	}
	if (end_stream) {
		if (u->req_chunked)
			strbuf_adds(o, HTTP1_CHUNK_LAST);
		u->req_done = true;
	}
	if (o->err)
		return -ENOMEM;
	flush_out(u);
	return 0;
}

static void h1_abandon(void *x, struct hstream *s)
{
	struct uconn *u = x;
	struct worker *wk = s->hc->wk;

	/* The response is unread (or half read): this connection cannot carry another. */
	u->stream = NULL;
	uconn_close(wk, u);
}

static void h1_release(void *x, struct hstream *s)
{
	upool_release(s->hc->wk, x, true);
}

static size_t h1_pending_out(void *x)
{
	struct uconn *u = x;

	return u->out.len - u->out_off;
}

static void h1_resume(void *x)
{
	struct uconn *u = x;
	struct worker *wk = u->stream ? u->stream->hc->wk : NULL;

	if (wk && u->state == UC_BUSY)
		uconn_on_event(wk, u, 0);
}

/* The exchange became a tunnel the TCP proxy carries: give it the socket, the bytes that came
 * after the response head and any request bytes not yet written. */
static void h1_detach(void *x, struct hstream *s, struct tunnel_end *e)
{
	struct uconn *u = x;

	(void)s;
	e->fd = u->fd;
	e->tls = u->tls; /* moved: uconn_close below finds none to shut down */
	memset(&u->tls, 0, sizeof(u->tls));
	e->eof = false; /* a FIN read ends the exchange before any hand-over */
	if (u->in_len > u->head_len)
		strbuf_add(&e->rx, u->in + u->head_len, u->in_len - u->head_len);
	if (u->out.len > u->out_off)
		strbuf_add(&e->tx, u->out.buf + u->out_off, u->out.len - u->out_off);
	u->in_len = u->head_len = 0;
	u->fd = -1;
	u->stream = NULL;
	uconn_close(s->hc->wk, u);
}

static const struct uconn_ops h1_up_ops = {
	.send_headers = h1_send_headers,
	.send_data = h1_send_data,
	.release = h1_release,
	.abandon = h1_abandon,
	.pending_out = h1_pending_out,
	.resume = h1_resume,
	.detach = h1_detach,
};

/* Parses what arrived; delivers head and body to the stream. Returns false if u is gone. */
static bool h1_read_response(struct worker *wk, struct uconn *u)
{
	struct hstream *s = u->stream;

	while (u->in_len && s && !u->resp_done) {
		if (!u->head_done) {
			struct http1_header *fields = worker_h1_hdrs(wk, UCONN_HDRS);
			struct http1_msg msg;
			struct px_hdr hdrs[UCONN_HDRS];
			int n;

			if (!fields) {
				uconn_fail(wk, u, PX_RESET_LOCAL, "out of memory");
				return false;
			}
			/* From the start each time: heads rarely span reads, and the fields land
			 * in the worker's scratch array, copied out below before any callback. */
			http1_response_begin(&u->parser, NULL, fields, UCONN_HDRS, u->req_method);
			n = http1_parse_response(&u->parser, u->in, u->in_len, &msg);
			if (n == HTTP1_INCOMPLETE) {
				if (u->in_len == UCONN_IN_SIZE) {
					uconn_fail(wk, u, PX_RESET_PROTOCOL_ERROR,
						   "response headers too large");
					return false;
				}
				return true;
			}
			if (n == HTTP1_INVALID) {
				uconn_fail(wk, u, PX_RESET_PROTOCOL_ERROR, "protocol error");
				return false;
			}
			if (msg.status >= 100 && msg.status < 200 && msg.status != 101) {
				/* 100 Continue and friends: not ours to forward; wait for the real one. */
				memmove(u->in, u->in + n, u->in_len - (size_t)n);
				u->in_len -= (size_t)n;
				continue;
			}
			for (size_t i = 0; i < msg.nheaders; i++)
				hdrs[i] = (struct px_hdr){
					msg.headers[i].name.p, (uint32_t)msg.headers[i].name.len,
					msg.headers[i].value.p, (uint32_t)msg.headers[i].value.len};
			u->head_done = true;
			u->body = msg.body;
			u->body_left = msg.content_length;
			u->keep_alive = msg.keep_alive;
			if (u->body == HTTP1_BODY_CHUNKED)
				http1_chunked_begin(&u->chunked, NULL, u->trailers, 16);
			u->resp_done = u->body == HTTP1_BODY_NONE;
			u->head_len = (size_t)n;
			hstream_on_response_headers(s, msg.status, hdrs, (uint32_t)msg.nheaders,
						    u->resp_done);
			if (u->state == UC_CLOSED)
				return false; /* detached into a tunnel, or failed */
			/* A tunnel the downstream codec cannot take over: we carry it. */
			u->raw = u->body == HTTP1_BODY_TUNNEL && u->stream == s && s->tunnel;
			u->head_len = 0;
			memmove(u->in, u->in + n, u->in_len - (size_t)n);
			u->in_len -= (size_t)n;
			if (u->resp_done || u->stream != s)
				return u->state != UC_CLOSED;
			continue;
		}
		if (u->body == HTTP1_BODY_LENGTH || u->body == HTTP1_BODY_UNTIL_CLOSE) {
			size_t take = u->in_len;

			if (u->body == HTTP1_BODY_LENGTH && take > u->body_left)
				take = (size_t)u->body_left;
			u->body_left -= take;
			u->resp_done = u->body == HTTP1_BODY_LENGTH && u->body_left == 0;
			hstream_on_response_data(s, u->in, take, u->resp_done);
			memmove(u->in, u->in + take, u->in_len - take);
			u->in_len -= take;
			continue;
		}
		if (u->body == HTTP1_BODY_CHUNKED) {
			struct http1_span data = {"", 0};
			ssize_t n = http1_chunked_decode(&u->chunked, u->in, u->in_len, &data);

			if (n == HTTP1_INVALID) {
				uconn_fail(wk, u, PX_RESET_PROTOCOL_ERROR, "protocol error");
				return false;
			}
			if (n == HTTP1_INCOMPLETE)
				return true;
			u->resp_done = n == 0 || http1_chunked_done(&u->chunked);
			/* data (and the trailers) point into in[]: hand them over before the
			 * consumed bytes go. Trailers end the response when there are any. */
			if (u->resp_done && u->chunked.ntrailers) {
				struct px_hdr t[sizeof(u->trailers) / sizeof(u->trailers[0])];
				uint32_t nt = u->chunked.ntrailers;

				for (uint32_t i = 0; i < nt; i++)
					t[i] = (struct px_hdr){u->trailers[i].name.p,
							       (uint32_t)u->trailers[i].name.len,
							       u->trailers[i].value.p,
							       (uint32_t)u->trailers[i].value.len};
				if (data.len)
					hstream_on_response_data(s, data.p, data.len, false);
				hstream_on_response_trailers(s, t, nt);
			} else if (data.len || u->resp_done) {
				hstream_on_response_data(s, data.p, data.len, u->resp_done);
			}
			if (n > 0 && u->state != UC_CLOSED && (size_t)n <= u->in_len) {
				memmove(u->in, u->in + n, u->in_len - (size_t)n);
				u->in_len -= (size_t)n;
			}
			if (u->resp_done)
				return u->state != UC_CLOSED;
			continue;
		}
		if (u->raw) {
			hstream_on_response_data(s, u->in, u->in_len, false);
			u->in_len = 0;
			continue;
		}
		/* A 101 or CONNECT 2xx the stream did not ask for (it never sent an upgrade). */
		uconn_fail(wk, u, PX_RESET_PROTOCOL_ERROR, "upgrade not supported on this path");
		return false;
	}
	return true;
}

/* auto_config: the server chose h2 by ALPN. The pool remembers it (Envoy caches the protocol per
 * host) and the connection becomes an HTTP/2 one; its waiters are served from p->h2. */
static bool uconn_to_h2(struct worker *wk, struct uconn *u)
{
	char alpn[32];

	if (strcmp(tlsio_alpn(&u->tls, alpn, sizeof(alpn)), "h2"))
		return false;
	u->pool->alpn_h2 = true;
	if (h2_up_adopt(wk, u->pool, u->fd, &u->tls)) {
		struct hstream *s = upool_take_oldest(wk, u->pool);

		uconn_close(wk, u);
		upool_connect_failed(s, -ENOMEM);
		return true;
	}
	u->fd = -1; /* the HTTP/2 connection's now */
	uconn_close(wk, u);
	return true;
}

/* The waiter a connection that failed to connect or to handshake was for. */
static struct hstream *connect_waiter(struct worker *wk, struct uconn *u)
{
	return u->fresh ? take_owner(u) : upool_take_oldest(wk, u->pool);
}

/* A connection ready for HTTP: a fresh one goes to the stream it was opened for (now), any
 * other serves the oldest waiter at the end of this iteration. */
static void uconn_ready(struct worker *wk, struct uconn *u)
{
	struct hstream *s;

	if (!u->fresh) {
		park(wk, u);
		return;
	}
	s = take_owner(u);
	if (s)
		attach(wk, u, s);
	else
		uconn_close(wk, u);
}

/* Connect, then (for a TLS cluster) the handshake; the connection then serves the oldest waiter
 * (or its own stream) at the end of this iteration. Either failing fails that waiter. */
static void uconn_connecting(struct worker *wk, struct uconn *u)
{
	if (!u->tls.ssl) {
		if (!u->writable)
			return;
		int err = upstream_connect_result(u->fd);

		if (!err && u->pool->tls && upool_tls_start(u->pool, &u->tls, u->fd, u->fresh))
			err = -ENOMEM;
		if (err) {
			struct hstream *s = connect_waiter(wk, u);

			uconn_close(wk, u);
			upool_connect_failed(s, err);
			return;
		}
		if (!u->pool->tls) {
			uconn_ready(wk, u);
			return;
		}
	}
	/* An upgrade's connection speaks HTTP/1.1 whatever ALPN could offer. */
	if (!upool_tls_step(wk, u->pool, &u->tls,
			    u->pool->cfg.alpn_auto && !u->fresh ? NULL : "http/1.1"))
		return;
	if (u->tls.err[0]) {
		struct hstream *s = connect_waiter(wk, u);
		char why[TLSIO_ERR_MAX];

		snprintf(why, sizeof(why), "%s", u->tls.err);
		uconn_close(wk, u);
		if (s)
			hstream_on_upstream_failure(s, PX_RESET_CONNECT_FAILURE, why);
		return;
	}
	if (u->pool->cfg.alpn_auto && !u->fresh && uconn_to_h2(wk, u))
		return;
	uconn_ready(wk, u);
}

static void uconn_event(struct worker *wk, struct uconn *u, uint32_t events)
{
	if (u->state == UC_CLOSED)
		return;
	if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		u->writable = true;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
		u->readable = true;
	if (events & (EPOLLRDHUP | EPOLLERR | EPOLLHUP))
		u->rdhup = true;
	tlsio_on_events(&u->tls, events, &u->readable, &u->writable);
	if (u->state == UC_CONNECTING) {
		uconn_connecting(wk, u);
		return;
	}
	if (u->state == UC_IDLE) {
		/* A parked connection has nothing to say: EOF or bytes both end it. Over TLS the
		 * server's session tickets arrive now, and reading them is not a reply. */
		char b;

		if (u->tls.ssl) {
			if (!u->readable)
				return;
			if (tlsio_recv(&u->tls, u->fd, &b, 1) == -1 && errno == EAGAIN)
				u->readable = false;
			else
				uconn_close(wk, u);
		} else if (u->readable && recv(u->fd, &b, 1, MSG_PEEK) != -1) {
			uconn_close(wk, u);
		} else if (errno == EAGAIN) {
			u->readable = false;
		}
		return;
	}
	flush_out(u);
	if (u->linger) {
		if (u->out_off == u->out.len || (events & (EPOLLERR | EPOLLHUP)))
			uconn_close(wk, u);
		return;
	}
	/* The downstream drained: it may read request body again. */
	if (u->stream && u->out.len - u->out_off < UCONN_OUT_HIGH)
		u->stream->down->resume(u->stream);
	while (u->readable && u->state == UC_BUSY && u->stream) {
		ssize_t n;

		/* A tunnel whose server ended its side: only the client's half is left. */
		if (u->raw && u->resp_done) {
			u->readable = false;
			break;
		}

		/* The downstream is not writing what we gave it: wait for it. */
		if (u->stream->down->pending_out(u->stream) > UCONN_OUT_HIGH)
			break;
		if (!u->in && !uconn_in_get(wk, u)) {
			uconn_fail(wk, u, PX_RESET_LOCAL, "out of memory");
			return;
		}
		if (u->in_len == UCONN_IN_SIZE)
			break; /* the stream is not consuming: wait */
		size_t room = UCONN_IN_SIZE - u->in_len;

		n = tlsio_recv(&u->tls, u->fd, u->in + u->in_len, room);
		if (n < 0 && errno == EAGAIN) {
			u->readable = false;
			break;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* Closed by the server: the end of a read-until-close body, a keep-alive
			 * connection that expired while idle, or a reset mid-exchange. */
			if (u->stream && u->head_done &&
			    (u->body == HTTP1_BODY_UNTIL_CLOSE || (u->raw && n == 0))) {
				struct hstream *s = u->stream;

				u->resp_done = true;
				u->keep_alive = false;
				hstream_on_response_data(s, "", 0, true);
			} else if (u->stream) {
				uconn_fail(wk, u, PX_RESET_TERMINATION, "connection termination");
			} else {
				uconn_close(wk, u);
			}
			return;
		}
		u->in_len += (size_t)n;
		if (tlsio_drained(&u->tls, n, room, u->rdhup, u->pool->w->sockmap))
			u->readable = false;
		if (!u->stream) {
			/* Bytes from a server we asked nothing: it cannot be trusted any more. */
			uconn_close(wk, u);
			return;
		}
		if (!h1_read_response(wk, u))
			return;
	}
}

void uconn_on_event(struct worker *wk, struct uconn *u, uint32_t events)
{
	uconn_event(wk, u, events);
	/* Back at the top, no span points into in[]: once the bytes in it are delivered (or the
	 * connection was parked), the buffer goes back to the pool until the server sends again.
	 * A closed connection's goes when it is freed. */
	if (u->in && u->state != UC_CLOSED && (!u->in_len || u->state != UC_BUSY))
		uconn_in_put(wk, u);
}
