/* HTTP/2 with nghttp2: downstream server sessions (one hstream per stream) and upstream
 * client sessions shared by many exchanges. nghttp2 owns framing, HPACK and flow control; this
 * file moves bytes between it and the sockets and between its callbacks and the stream logic.
 *
 * nghttp2 must not be re-entered from its own callbacks with mem_send, so submissions made
 * inside a callback are flushed by the caller once nghttp2 returns (the `busy` flag). */
#include "proxy/h2.h"

#include <ctype.h>
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "proxy/hcm.h"
#include "proxy/tlsio.h"
#include "proxy/upool.h"
#include "proxy/upstream.h"
#include "proxy/worker.h"

#define H2_READ_CHUNK 16384

/* ---- header collection (shared by both sides) ------------------------------------------------ */

/* Header fields copied out of nghttp2's transient buffers: bytes in `buf`, positions as
 * offsets, resolved into px_hdr spans once the block is complete (buf may move meanwhile). */
struct h2_hdrs {
	struct strbuf buf;
	struct {
		uint32_t name, name_len, value, value_len;
	} off[H2_MAX_HEADERS];
	uint32_t n;
	bool overflow;
	struct px_hdr out[H2_MAX_HEADERS];
};

static void hh_reset(struct h2_hdrs *h)
{
	strbuf_reset(&h->buf);
	h->n = 0;
	h->overflow = false;
}

static void hh_add(struct h2_hdrs *h, const uint8_t *name, size_t nlen, const uint8_t *value,
		   size_t vlen)
{
	if (h->n >= H2_MAX_HEADERS) {
		h->overflow = true;
		return;
	}
	h->off[h->n].name = (uint32_t)h->buf.len;
	h->off[h->n].name_len = (uint32_t)nlen;
	strbuf_add(&h->buf, name, nlen);
	h->off[h->n].value = (uint32_t)h->buf.len;
	h->off[h->n].value_len = (uint32_t)vlen;
	strbuf_add(&h->buf, value, vlen);
	h->n++;
}

/* Resolves into spans; pseudo-headers are left out of the list and returned through get. */
static uint32_t hh_resolve(struct h2_hdrs *h)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < h->n; i++) {
		const char *name = h->buf.buf + h->off[i].name;

		if (name[0] == ':')
			continue;
		h->out[n++] = (struct px_hdr){name, h->off[i].name_len,
					      h->buf.buf + h->off[i].value, h->off[i].value_len};
	}
	return n;
}

static const char *hh_pseudo(const struct h2_hdrs *h, const char *name, size_t *len)
{
	size_t nl = strlen(name);

	for (uint32_t i = 0; i < h->n; i++) {
		if (h->off[i].name_len == nl && !memcmp(h->buf.buf + h->off[i].name, name, nl)) {
			*len = h->off[i].value_len;
			return h->buf.buf + h->off[i].value;
		}
	}
	*len = 0;
	return NULL;
}

/* nghttp2 name/value pairs from an outgoing list; names lower-cased into scratch (HTTP/2
 * forbids upper case), values as they are. Returns the count. */
static size_t to_nv(nghttp2_nv *nv, size_t cap, size_t start, const struct http_hdrs *h,
		    struct strbuf *scratch)
{
	size_t n = start;

	strbuf_reset(scratch);
	/* Reserve first so that the buffer does not move under the pointers taken below. */
	for (uint32_t i = 0; i < h->n; i++)
		strbuf_add(scratch, h->v[i].name, h->v[i].name_len);
	for (uint32_t i = 0, off = 0; i < h->n && n < cap; i++) {
		char *name = scratch->buf + off;

		for (uint32_t k = 0; k < h->v[i].name_len; k++)
			name[k] = (char)tolower((unsigned char)name[k]);
		off += h->v[i].name_len;
		/* Connection-specific fields are illegal in HTTP/2. */
		if ((h->v[i].name_len == 4 && !memcmp(name, "host", 4)) ||
		    (h->v[i].name_len == 2 && !memcmp(name, "te", 2) &&
		     !(h->v[i].value_len == 8 && !memcmp(h->v[i].value, "trailers", 8))))
			continue;
		nv[n++] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)h->v[i].value, h->v[i].name_len,
				       h->v[i].value_len, NGHTTP2_NV_FLAG_NONE};
	}
	return n;
}

/* ---- downstream -------------------------------------------------------------------------------- */

struct h2conn;

struct h2stream {
	struct hstream s;
	struct h2conn *c;
	int32_t id;
	struct h2_hdrs req;
	struct strbuf body; /* response DATA waiting for nghttp2 */
	size_t body_off;
	bool body_end;
	struct http_hdrs *trailers; /* response trailers to send after the body */
	bool submitted;		    /* response headers submitted */
	bool deferred;		    /* the data provider waits for more */
	bool up_waiting; /* the upstream stopped reading: our backlog was above UCONN_OUT_HIGH */
	/* DATA bytes of a tunnel not yet given back to the client's stream window: its upstream
	 * had more than UCONN_OUT_HIGH queued. Returned when that upstream drains (h2_resume). */
	size_t unconsumed;
};

struct h2conn {
	struct ev_handler h; /* EV_H2 */
	struct hconn hc;
	struct list_head dead;
	struct list_head dirty; /* in the worker's h2_dirty: frames to write */
	int fd;
	bool readable, writable, closed, busy;
	bool goaway_final;  /* draining: the GOAWAY that refuses newer streams is sent */
	uint64_t drain_end; /* draining: when that GOAWAY is due; 0: not draining */
	struct tlsio tls;
	nghttp2_session *ng;
	struct strbuf out;
	size_t out_off;
	struct strbuf nvbuf;
};

static const struct hconn_ops h2_down_ops;

static void down_flush(struct h2conn *c);

/* Output is written at the end of the loop iteration, never from inside a call from the
 * stream logic: writing lets nghttp2 finish a stream, and its close callback must not free a
 * stream whose caller is still on the stack. */
static void down_mark(struct h2conn *c)
{
	if (!c->closed && !list_linked(&c->dirty))
		list_add_tail(&c->dirty, &c->hc.wk->h2_dirty);
}

static void down_close(struct worker *wk, struct h2conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	/* Streams still open end as downstream resets; nghttp2_session_del frees nothing of
	 * ours, so walk them here. */
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &c->hc.streams) {
		struct h2stream *st =
			container_of(list_entry(pos, struct hstream, node), struct h2stream, s);

		list_del_init(&st->s.node);
		if (!st->s.done)
			hstream_on_downstream_reset(&st->s, "downstream_remote_disconnect");
		hstream_release(&st->s);
		strbuf_release(&st->req.buf);
		strbuf_release(&st->body);
		free(st->trailers);
		free(st);
	}
	tlsio_shutdown(&c->tls);
	tlsio_free(&c->tls);
	close(c->fd);
	c->fd = -1;
	list_del_init(&c->hc.node);
	if (list_linked(&c->dirty))
		list_del_init(&c->dirty);
	list_add_tail(&c->dead, &wk->h2_dead);
	STAT_DEC(wk, downstream_cx_active);
}

static ssize_t down_read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
			      uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct h2stream *st = src->ptr;
	size_t avail = st->body.len - st->body_off;

	if (!avail && !st->body_end) {
		st->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (len > avail)
		len = avail;
	memcpy(buf, st->body.buf + st->body_off, len);
	st->body_off += len;
	if (st->body_off == st->body.len) {
		strbuf_reset(&st->body);
		st->body_off = 0;
		if (st->body_end) {
			*flags |= NGHTTP2_DATA_FLAG_EOF;
			if (st->trailers) {
				nghttp2_nv nv[HTTP_HDRS_MAX];
				size_t n = to_nv(nv, HTTP_HDRS_MAX, 0, st->trailers, &st->c->nvbuf);

				*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
				nghttp2_submit_trailer(ng, id, nv, n);
			}
		}
	}
	return (ssize_t)len;
}

static struct h2stream *of_hs(struct hstream *s)
{
	return container_of(s, struct h2stream, s);
}

static void h2_send_headers(struct hstream *s, int status, struct http_hdrs *h, bool end_stream)
{
	struct h2stream *st = of_hs(s);
	struct h2conn *c = st->c;
	nghttp2_nv nv[HTTP_HDRS_MAX + 1];
	char code[8];
	size_t n;
	nghttp2_data_provider prd = {.source.ptr = st, .read_callback = down_read_body};

	snprintf(code, sizeof(code), "%d", status);
	nv[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, strlen(code),
			     NGHTTP2_NV_FLAG_NONE};
	n = to_nv(nv, HTTP_HDRS_MAX + 1, 1, h, &c->nvbuf);
	st->submitted = true;
	st->body_end = end_stream;
	nghttp2_submit_response(c->ng, st->id, nv, n, end_stream ? NULL : &prd);
	down_mark(c);
}

static void h2_send_data(struct hstream *s, const char *data, size_t len, bool end_stream)
{
	struct h2stream *st = of_hs(s);

	strbuf_add(&st->body, data, len);
	st->body_end |= end_stream;
	if (st->deferred) {
		st->deferred = false;
		nghttp2_session_resume_data(st->c->ng, st->id);
	}
	down_mark(st->c);
}

static void h2_send_trailers(struct hstream *s, struct http_hdrs *h)
{
	struct h2stream *st = of_hs(s);

	st->trailers = malloc(sizeof(*st->trailers));
	if (st->trailers) {
		/* Copy: values may point into buffers that change before nghttp2 asks. */
		http_hdrs_reset(st->trailers);
		for (uint32_t i = 0; i < h->n; i++) {
			char *dst = st->trailers->own + st->trailers->own_len;
			size_t need = h->v[i].name_len + h->v[i].value_len + 2;

			if (st->trailers->own_len + need > HTTP_HDRS_OWN)
				break;
			memcpy(dst, h->v[i].name, h->v[i].name_len);
			dst[h->v[i].name_len] = '\0';
			memcpy(dst + h->v[i].name_len + 1, h->v[i].value, h->v[i].value_len);
			dst[need - 1] = '\0';
			st->trailers->own_len += need;
			http_hdrs_add(st->trailers, dst, h->v[i].name_len,
				      dst + h->v[i].name_len + 1, h->v[i].value_len);
		}
	}
	h2_send_data(s, "", 0, true);
}

static void h2_stream_done(struct hstream *s)
{
	/* nghttp2 closes the stream once its last frame is out; on_stream_close frees it. */
}

static void h2_reset(struct hstream *s)
{
	struct h2stream *st = of_hs(s);

	nghttp2_submit_rst_stream(st->c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
	down_mark(st->c);
}

static size_t h2_pending_out(struct hstream *s)
{
	struct h2stream *st = of_hs(s);
	size_t n = st->body.len - st->body_off + st->c->out.len - st->c->out_off;

	/* The upstream asks before each read and stops above the mark: remember to wake it. */
	if (n > UCONN_OUT_HIGH)
		st->up_waiting = true;
	return n;
}

static void h2_resume(struct hstream *s)
{
	struct h2stream *st = of_hs(s);

	/* The upstream took a tunnel's backlog: the client may send that much again. The
	 * WINDOW_UPDATE goes out with the connection's next write. */
	if (st->unconsumed && !st->c->closed) {
		nghttp2_session_consume_stream(st->c->ng, st->id, st->unconsumed);
		st->unconsumed = 0;
		down_mark(st->c);
	}
}

static const struct hconn_ops h2_down_ops = {
	.send_headers = h2_send_headers,
	.send_data = h2_send_data,
	.send_trailers = h2_send_trailers,
	.stream_done = h2_stream_done,
	.reset = h2_reset,
	.pending_out = h2_pending_out,
	.resume = h2_resume,
};

static int down_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
	struct h2conn *c = user;
	struct h2stream *st;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = calloc(1, sizeof(*st));
	if (!st)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	st->c = c;
	st->id = f->hd.stream_id;
	hstream_init(&st->s, &c->hc, &h2_down_ops);
	st->s.codec_id = (uint32_t)st->id;
	list_add_tail(&st->s.node, &c->hc.streams);
	nghttp2_session_set_stream_user_data(ng, st->id, st);
	return 0;
}

static int down_on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
			  size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
	struct h2stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);

	if (st && f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
		hh_add(&st->req, name, nlen, value, vlen);
	return 0;
}

/* RFC 8441: an extended CONNECT (with :protocol) becomes, as in Envoy's codec, an HTTP/1.1
 * style upgrade request: GET, Connection: upgrade, Upgrade: <protocol> (and a WebSocket key). */
static void down_ext_connect(struct h2stream *st, const char *proto, size_t plen)
{
	struct px_req_view *r = &st->s.req;
	struct px_hdr add[HTTP_EXT_CONNECT_HDRS];
	char p[64], key[HTTP_WS_KEY_LEN + 1];
	size_t len;
	uint32_t n;

	if (plen >= sizeof(p))
		plen = sizeof(p) - 1;
	memcpy(p, proto, plen); /* proto points into req.buf, which hh_add may move */
	n = http_ext_connect_to_h1(p, plen, px_req_header(r, "sec-websocket-key", &len) != NULL,
				   px_req_header(r, "sec-websocket-version", &len) != NULL,
				   &st->c->hc.rng, key, add, &st->s.ws_key_made);
	for (uint32_t i = 0; i < n; i++)
		hh_add(&st->req, (const uint8_t *)add[i].name, add[i].name_len,
		       (const uint8_t *)add[i].value, add[i].value_len);
	st->s.h2_ext_connect = true;
}

static void down_request_view(struct h2stream *st)
{
	struct px_req_view *r = &st->s.req;

	r->nhdrs = hh_resolve(&st->req);
	r->hdrs = st->req.out;
	r->method = hh_pseudo(&st->req, ":method", &r->method_len);
	r->path = hh_pseudo(&st->req, ":path", &r->path_len);
	r->scheme = hh_pseudo(&st->req, ":scheme", &r->scheme_len);
	r->authority = hh_pseudo(&st->req, ":authority", &r->authority_len);
	if (!r->authority)
		r->authority = px_req_header(r, "host", &r->authority_len);
	if (!r->authority) {
		r->authority = "";
		r->authority_len = 0;
	}
}

static void down_request_headers(struct h2stream *st, bool end_stream)
{
	struct px_req_view *r = &st->s.req;
	size_t plen;
	const char *proto;
	bool connect;

	down_request_view(st);
	connect = r->method && r->method_len == 7 && !memcmp(r->method, "CONNECT", 7);
	proto = hh_pseudo(&st->req, ":protocol", &plen);
	if (connect && proto && plen) {
		down_ext_connect(st, proto, plen);
		down_request_view(st);
		r->method = "GET";
		r->method_len = 3;
	} else if (connect && !r->path) {
		/* Plain CONNECT has no :path (RFC 9113 8.5); nghttp2 checked the rest. */
		r->path = "/";
		r->path_len = 1;
	}
	st->s.req_has_body = !end_stream;
	st->s.req_end = end_stream;
	if (!r->method || !r->path || st->req.overflow) {
		/* Malformed: nghttp2 checks most of it, the rest is ours. */
		nghttp2_submit_rst_stream(st->c->ng, NGHTTP2_FLAG_NONE, st->id,
					  NGHTTP2_PROTOCOL_ERROR);
		return;
	}
	STAT_INC(st->c->hc.wk, http2_rq_total);
	hstream_on_request_headers(&st->s);
}

static int down_on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
	struct h2stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
	bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;

	if (!st)
		return 0;
	st->c->hc.last_activity = st->c->hc.wk->now_ms;
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
		down_request_headers(st, end);
		return 0;
	}
	/* The end of the request: END_STREAM on DATA or on trailers. */
	if (end && (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
	    !st->s.req_end) {
		st->s.req_end = true;
		hstream_on_request_data(&st->s, "", 0, true);
	}
	return 0;
}

static int down_on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
			size_t len, void *user)
{
	struct h2stream *st = nghttp2_session_get_stream_user_data(ng, id);

	/* Windows are ours to update (no automatic WINDOW_UPDATE): the connection's at once, so
	 * that one stream cannot hold up the others; a stream's once its bytes are taken. */
	nghttp2_session_consume_connection(ng, len);
	if (!st)
		return 0;
	hstream_on_request_data(&st->s, (const char *)data, len, false);
	/* A tunnel whose upstream is not keeping up keeps its window shut: nothing buffers
	 * without bound, and the client waits instead. Request bodies are bounded elsewhere. */
	if (st->s.tunnel && st->s.up && st->s.up_ops->pending_out(st->s.up) > UCONN_OUT_HIGH)
		st->unconsumed += len;
	else
		nghttp2_session_consume_stream(ng, id, len);
	return 0;
}

static int down_on_stream_close(nghttp2_session *ng, int32_t id, uint32_t error_code, void *user)
{
	struct h2stream *st = nghttp2_session_get_stream_user_data(ng, id);

	if (!st)
		return 0;
	nghttp2_session_set_stream_user_data(ng, id, NULL);
	list_del_init(&st->s.node);
	if (!st->s.done)
		hstream_on_downstream_reset(&st->s, error_code ? "downstream_remote_reset"
							       : "downstream_remote_disconnect");
	hstream_release(&st->s);
	strbuf_release(&st->req.buf);
	strbuf_release(&st->body);
	free(st->trailers);
	free(st);
	return 0;
}

/* Upstreams that stopped reading because a stream's backlog was above UCONN_OUT_HIGH read
 * again once nghttp2 has sent it below half of that: the client's window paces the upstream. */
static void down_resume_upstreams(struct h2conn *c)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &c->hc.streams) {
		struct h2stream *st =
			container_of(list_entry(pos, struct hstream, node), struct h2stream, s);

		if (!st->up_waiting || st->s.done || !st->s.up ||
		    st->body.len - st->body_off + c->out.len - c->out_off > UCONN_OUT_HIGH / 2)
			continue;
		st->up_waiting = false;
		st->s.up_ops->resume(st->s.up);
	}
}

static void down_flush(struct h2conn *c)
{
	struct worker *wk = c->hc.wk;

	if (c->closed || c->busy)
		return;
	for (;;) {
		if (c->out_off < c->out.len) {
			if (!c->writable)
				return;
			ssize_t n = tlsio_send(&c->tls, c->fd, c->out.buf + c->out_off,
					       c->out.len - c->out_off);

			if (n < 0 && errno == EAGAIN) {
				c->writable = false;
				return;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				down_close(wk, c);
				return;
			}
			c->out_off += (size_t)n;
			continue;
		}
		strbuf_reset(&c->out);
		c->out_off = 0;
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->ng, &data);

		if (n < 0) {
			down_close(wk, c);
			return;
		}
		if (n == 0)
			break;
		strbuf_add(&c->out, data, (size_t)n);
	}
	down_resume_upstreams(c);
	if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng))
		down_close(wk, c);
}

static void down_feed(struct worker *wk, struct h2conn *c, const char *data, size_t len)
{
	ssize_t used;

	c->busy = true;
	used = nghttp2_session_mem_recv(c->ng, (const uint8_t *)data, len);
	c->busy = false;
	if (used < 0) {
		STAT_INC(wk, http_downstream_protocol_error);
		pr_debug("HTTP/2 from %s: %s", c->hc.remote_ip, nghttp2_strerror((int)used));
		down_flush(c); /* a GOAWAY nghttp2 queued */
		down_close(wk, c);
		return;
	}
	down_flush(c);
}

void h2_down_on_event(struct worker *wk, struct ev_handler *h, uint32_t events)
{
	struct h2conn *c = container_of(h, struct h2conn, h);
	char buf[H2_READ_CHUNK];

	if (c->closed)
		return;
	if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		c->writable = true;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
		c->readable = true;
	tlsio_on_events(&c->tls, events, &c->readable, &c->writable);
	down_flush(c);
	while (c->readable && !c->closed) {
		ssize_t n = tlsio_recv(&c->tls, c->fd, buf, sizeof(buf));

		if (n < 0 && errno == EAGAIN) {
			c->readable = false;
			break;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			down_close(wk, c);
			return;
		}
		c->hc.last_activity = wk->now_ms;
		down_feed(wk, c, buf, (size_t)n);
	}
}

int h2_down_start(struct worker *wk, int fd, struct proxy_workload *w, struct px_snapshot *snap,
		  const struct px_listener *l, const struct px_filter_chain *fc,
		  const struct shunt_addr *remote, __u16 remote_port,
		  const struct shunt_addr *local, __u16 local_port, const char *pre, size_t pre_len,
		  struct tlsio *tls)
{
	nghttp2_settings_entry settings[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
		 fc->http.h2_max_streams && fc->http.h2_max_streams < H2_MAX_STREAMS
			 ? fc->http.h2_max_streams
			 : H2_MAX_STREAMS},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
		{NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
	};
	/* Extended CONNECT is offered only where the HCM allows it (allow_connect). */
	size_t nsettings = sizeof(settings) / sizeof(settings[0]) - !fc->http.h2_allow_connect;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
	nghttp2_session_callbacks *cbs;
	struct h2conn *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	if (nghttp2_session_callbacks_new(&cbs)) {
		free(c);
		return -ENOMEM;
	}
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, down_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, down_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, down_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, down_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, down_on_stream_close);
	nghttp2_option *opt = NULL;
	int rc = nghttp2_option_new(&opt);

	/* We say when DATA is consumed (down_on_data): tunnels hold their window shut while
	 * their upstream backs up. */
	if (!rc) {
		nghttp2_option_set_no_auto_window_update(opt, 1);
		rc = nghttp2_session_server_new2(&c->ng, cbs, c, opt);
		nghttp2_option_del(opt);
	}
	nghttp2_session_callbacks_del(cbs);
	if (rc) {
		free(c);
		return -ENOMEM;
	}
	nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, settings, nsettings);
	c->h.type = EV_H2;
	list_init(&c->dirty);
	c->fd = fd;
	hconn_init(&c->hc, wk, w, snap, &fc->http, remote, remote_port, local, local_port);
	c->hc.listener = l;
	c->hc.chain = fc;
	list_init(&c->dead);
	ev.data.ptr = &c->h;
	if (epoll_ctl(wk->epfd, EPOLL_CTL_MOD, fd, &ev)) {
		int err = -errno;

		nghttp2_session_del(c->ng);
		workload_put(w);
		px_snapshot_put(snap);
		free(c);
		return err;
	}
	if (tls) {
		c->tls = *tls;
		memset(tls, 0, sizeof(*tls));
		hconn_set_tls(&c->hc, &c->tls);
	}
	list_add_tail(&c->hc.node, &wk->h2_conns);
	STAT_INC(wk, http_cx_total);
	STAT_INC(wk, http2_cx_total);
	pr_debug("downstream HTTP/2 connection from %s (%zu bytes read already)", c->hc.remote_ip,
		 pre_len);
	c->readable = c->writable = true;
	if (pre_len)
		down_feed(wk, c, pre, pre_len);
	if (!c->closed && wk->draining)
		h2_down_drain_conn(wk, &c->hc);
	if (!c->closed)
		h2_down_on_event(wk, &c->h, 0);
	return 0;
}

void h2_down_tick(struct worker *wk)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &wk->h2_conns) {
		struct h2conn *c =
			container_of(list_entry(pos, struct hconn, node), struct h2conn, hc);

		if (c->hc.drain_deadline && wk->now_ms >= c->hc.drain_deadline) {
			/* The drain time is over: open streams end with the connection. */
			STAT_INC(wk, listener_drain_cx_closed);
			nghttp2_session_terminate_session(c->ng, NGHTTP2_NO_ERROR);
			down_flush(c);
			down_close(wk, c);
		} else if (!list_empty(&c->hc.streams)) {
			hconn_tick(&c->hc, wk->now_ms);
			if (c->drain_end && !c->goaway_final && wk->now_ms >= c->drain_end) {
				/* Streams the client opens from now on are refused; the open
				 * ones finish. */
				nghttp2_submit_goaway(
					c->ng, NGHTTP2_FLAG_NONE,
					nghttp2_session_get_last_proc_stream_id(c->ng),
					NGHTTP2_NO_ERROR, NULL, 0);
				c->goaway_final = true;
			}
			down_mark(c);
		} else if (c->drain_end ||
			   wk->now_ms - c->hc.last_activity >= c->hc.cfg->idle_timeout_ms) {
			/* The GOAWAY names the last stream served, so the client knows any
			 * later one was not and may retry it elsewhere. */
			if (c->drain_end)
				STAT_INC(wk, downstream_cx_drain_close);
			else
				STAT_INC(wk, cx_idle_timeout);
			nghttp2_session_terminate_session(c->ng, NGHTTP2_NO_ERROR);
			down_flush(c);
			down_close(wk, c);
		}
	}
}

void h2_down_drain_conn(struct worker *wk, struct hconn *hc)
{
	struct h2conn *c = container_of(hc, struct h2conn, hc);
	uint32_t ms = hc->cfg->drain_timeout_ms ? hc->cfg->drain_timeout_ms : PX_HCM_DRAIN_MS_DEF;

	hc->draining = true;
	if (hc->drain_deadline)
		worker_timer(wk, hc->drain_deadline);
	/* The tick closes it now if it is idle. */
	worker_timer(wk, wk->now_ms);
	if (c->drain_end || c->closed)
		return;
	/* GOAWAY with the largest stream id: stop opening streams here, nothing is refused yet.
	 * The tick closes the connection once it has no stream. */
	nghttp2_submit_shutdown_notice(c->ng);
	c->drain_end = wk->now_ms + ms;
	worker_timer(wk, c->drain_end);
	down_mark(c);
}

void h2_down_drain(struct worker *wk)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &wk->h2_conns)
		h2_down_drain_conn(wk, list_entry(pos, struct hconn, node));
}

void h2_down_free_dead(struct worker *wk)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &wk->h2_dead) {
		struct h2conn *c = list_entry(pos, struct h2conn, dead);

		list_del_init(&c->dead);
		nghttp2_session_del(c->ng);
		strbuf_release(&c->out);
		strbuf_release(&c->nvbuf);
		hconn_release(&c->hc);
		free(c);
	}
}

void h2_down_close_all(struct worker *wk)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &wk->h2_conns) {
		struct h2conn *c =
			container_of(list_entry(pos, struct hconn, node), struct h2conn, hc);

		STAT_INC(wk, cx_drained);
		down_close(wk, c);
	}
	h2_down_free_dead(wk);
}

/* ---- upstream --------------------------------------------------------------------------------- */

enum h2up_state {
	H2UP_CONNECTING,
	H2UP_OPEN,
	H2UP_CLOSED
};

struct h2up {
	struct ev_handler h; /* EV_H2UP */
	struct upool *pool;
	struct list_head node; /* in the pool's h2 list */
	struct list_head dead;
	struct list_head dirty; /* in the worker's h2_dirty_up */
	int fd;
	bool readable, writable, busy, goaway;
	struct tlsio tls;	 /* the pool's cluster originates TLS */
	struct px_cb_state *cbs; /* the breaker state that counts it (a reference) */
	enum h2up_state state;
	nghttp2_session *ng;
	struct strbuf out;
	size_t out_off;
	uint32_t active;
	uint64_t deadline; /* connect timeout, then idle expiry when no stream is active */
	struct strbuf nvbuf;
	struct list_head xs; /* exchanges, freed with the connection if nghttp2 still has them */
};

/* One exchange on an upstream HTTP/2 connection. */
struct h2x {
	struct list_head node; /* in u->xs */
	struct h2up *u;
	struct hstream *s; /* NULL once the stream let go (the RST is on its way) */
	int32_t id;
	struct strbuf body; /* request body waiting for nghttp2 */
	size_t body_off;
	bool body_end, deferred, head_done;
	bool malformed; /* nghttp2 rejected the response's messaging (and resets the stream) */
	struct h2_hdrs resp;
};

static const struct uconn_ops h2_up_ops;

static void up_flush(struct worker *wk, struct h2up *u);

/* As downstream: written at the end of the loop iteration (see down_mark). */
static void up_mark(struct worker *wk, struct h2up *u)
{
	if (u->state != H2UP_CLOSED && !list_linked(&u->dirty))
		list_add_tail(&u->dirty, &wk->h2_dirty_up);
}

static void up_close(struct worker *wk, struct h2up *u, const char *why)
{
	if (u->state == H2UP_CLOSED)
		return;
	u->state = H2UP_CLOSED;
	tlsio_shutdown(&u->tls);
	tlsio_free(&u->tls);
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
	list_del_init(&u->node);
	if (list_linked(&u->dirty))
		list_del_init(&u->dirty);
	px_cb_release(&u->cbs, PX_CB_CX);
	u->pool->nconns--;
	u->pool->ndead++;
	list_add_tail(&u->dead, &wk->h2up_dead);
	pr_debug("upstream HTTP/2 connection to %s closed: %s", u->pool->cluster, why);
}

static ssize_t up_read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
			    uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct h2x *x = src->ptr;
	size_t avail = x->body.len - x->body_off;

	if (!avail && !x->body_end) {
		x->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (len > avail)
		len = avail;
	memcpy(buf, x->body.buf + x->body_off, len);
	x->body_off += len;
	if (x->body_off == x->body.len) {
		strbuf_reset(&x->body);
		x->body_off = 0;
		if (x->body_end)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
	}
	return (ssize_t)len;
}

static int up_send_headers(void *hx, struct hstream *s, struct http_hdrs *h, bool end_stream)
{
	struct h2x *x = hx;
	struct h2up *u = x->u;
	nghttp2_nv nv[HTTP_HDRS_MAX + 4];
	nghttp2_data_provider prd = {.source.ptr = x, .read_callback = up_read_body};
	size_t n;

	nv[0] = (nghttp2_nv){(uint8_t *)":method", (uint8_t *)s->req.method, 7, s->req.method_len,
			     NGHTTP2_NV_FLAG_NONE};
	nv[1] = (nghttp2_nv){(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, NGHTTP2_NV_FLAG_NONE};
	nv[2] = (nghttp2_nv){(uint8_t *)":authority", (uint8_t *)s->up_authority, 10,
			     s->up_authority_len, NGHTTP2_NV_FLAG_NONE};
	nv[3] = (nghttp2_nv){(uint8_t *)":path", (uint8_t *)(s->up_path_len ? s->up_path : "/"), 5,
			     s->up_path_len ? s->up_path_len : 1, NGHTTP2_NV_FLAG_NONE};
	n = to_nv(nv, HTTP_HDRS_MAX + 4, 4, h, &u->nvbuf);
	x->body_end = end_stream;
	x->id = nghttp2_submit_request(u->ng, NULL, nv, n, end_stream ? NULL : &prd, x);
	pr_debug("upstream HTTP/2 request %d on %s: %s", x->id, u->pool->cluster,
		 x->id < 0 ? nghttp2_strerror(x->id) : "submitted");
	if (x->id < 0)
		return -EIO;
	up_mark(s->hc->wk, u);
	return 0;
}

static int up_send_data(void *hx, struct hstream *s, const char *data, size_t len, bool end)
{
	struct h2x *x = hx;

	strbuf_add(&x->body, data, len);
	x->body_end |= end;
	if (x->deferred && x->id > 0) {
		x->deferred = false;
		nghttp2_session_resume_data(x->u->ng, x->id);
	}
	up_mark(s->hc->wk, x->u);
	return x->body.err ? -ENOMEM : 0;
}

static void x_free(struct h2x *x)
{
	list_del_init(&x->node);
	strbuf_release(&x->body);
	strbuf_release(&x->resp.buf);
	free(x);
}

static void up_release(void *hx, struct hstream *s)
{
	struct h2x *x = hx;

	/* The response is complete; nghttp2's stream close frees x. */
	x->s = NULL;
}

static void up_abandon(void *hx, struct hstream *s)
{
	struct h2x *x = hx;

	x->s = NULL;
	if (x->id > 0 && x->u->state == H2UP_OPEN) {
		nghttp2_submit_rst_stream(x->u->ng, NGHTTP2_FLAG_NONE, x->id, NGHTTP2_CANCEL);
		up_mark(s->hc->wk, x->u);
	}
}

static size_t up_pending_out(void *hx)
{
	struct h2x *x = hx;

	return x->body.len - x->body_off;
}

static void up_resume(void *hx)
{
	/* Response DATA is flow-controlled by nghttp2's windows. */
}

static const struct uconn_ops h2_up_ops = {
	.send_headers = up_send_headers,
	.send_data = up_send_data,
	.release = up_release,
	.abandon = up_abandon,
	.pending_out = up_pending_out,
	.resume = up_resume,
};

static int up_on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
			size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
	struct h2x *x = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);

	if (x && f->hd.type == NGHTTP2_HEADERS)
		hh_add(&x->resp, name, nlen, value, vlen);
	return 0;
}

static int up_on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
	struct h2up *u = user;
	struct h2x *x;
	bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;

	if (f->hd.type == NGHTTP2_GOAWAY) {
		u->goaway = true;
		return 0;
	}
	x = f->hd.stream_id ? nghttp2_session_get_stream_user_data(ng, f->hd.stream_id) : NULL;
	if (!x || !x->s)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && (f->hd.flags & NGHTTP2_FLAG_END_HEADERS)) {
		uint32_t n = hh_resolve(&x->resp);

		if (!x->head_done) {
			size_t len;
			const char *st = hh_pseudo(&x->resp, ":status", &len);
			int status = st ? atoi(st) : 0;

			if (status >= 100 && status < 200) {
				hh_reset(&x->resp);
				return 0;
			}
			x->head_done = true;
			hstream_on_response_headers(x->s, status, x->resp.out, n, end);
			hh_reset(&x->resp);
			return 0;
		}
		/* Trailers. */
		hstream_on_response_trailers(x->s, x->resp.out, n);
		return 0;
	}
	if (f->hd.type == NGHTTP2_DATA && end)
		hstream_on_response_data(x->s, "", 0, true);
	return 0;
}

static int up_on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
		      size_t len, void *user)
{
	struct h2x *x = nghttp2_session_get_stream_user_data(ng, id);

	if (x && x->s)
		hstream_on_response_data(x->s, (const char *)data, len, false);
	return 0;
}

/* nghttp2 checks a response's HTTP messaging (pseudo-headers, field syntax, content-length
 * against DATA) and resets a stream that breaks it: Envoy's upstream protocol error. */
static int up_on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *f, int lib_error,
			       void *user)
{
	struct h2x *x =
		f->hd.stream_id ? nghttp2_session_get_stream_user_data(ng, f->hd.stream_id) : NULL;

	if (x && (lib_error == NGHTTP2_ERR_HTTP_HEADER || lib_error == NGHTTP2_ERR_HTTP_MESSAGING))
		x->malformed = true;
	return 0;
}

static int up_on_stream_close(nghttp2_session *ng, int32_t id, uint32_t error_code, void *user)
{
	struct h2up *u = user;
	struct h2x *x = nghttp2_session_get_stream_user_data(ng, id);

	if (!x)
		return 0;
	nghttp2_session_set_stream_user_data(ng, id, NULL);
	u->active--;
	if (!u->active)
		u->deadline = 0; /* idle from now: armed by the tick */
	if (x->s) {
		struct hstream *s = x->s;

		x->s = NULL;
		s->up = NULL;
		/* nghttp2 also closes the streams a GOAWAY left unprocessed with REFUSED_STREAM:
		 * those, too, never reached the application and are safe to retry. A response
		 * nghttp2 found malformed it reset itself: the upstream's protocol error. */
		if (x->malformed)
			hstream_on_upstream_failure(s, PX_RESET_PROTOCOL_ERROR, "protocol error");
		else if (error_code == NGHTTP2_REFUSED_STREAM)
			hstream_on_upstream_failure(s, PX_RESET_REFUSED_STREAM, "refused stream");
		else
			hstream_on_upstream_failure(s, PX_RESET_REMOTE, "remote reset");
	}
	x_free(x);
	return 0;
}

static void up_fail_all(struct worker *wk, struct h2up *u, const char *why)
{
	struct hstream *failed[H2_MAX_STREAMS];
	struct list_head *pos, *tmp;
	uint32_t nf = 0;

	/* Detach every exchange from its stream first: the streams may retry elsewhere, and
	 * must not find this connection half torn down. */
	list_for_each_safe (pos, tmp, &u->xs) {
		struct h2x *x = list_entry(pos, struct h2x, node);

		if (x->s && nf < H2_MAX_STREAMS) {
			failed[nf++] = x->s;
			x->s->up = NULL;
			x->s = NULL;
		}
	}
	up_close(wk, u, why);
	for (uint32_t i = 0; i < nf; i++)
		hstream_on_upstream_failure(failed[i], PX_RESET_TERMINATION, why);
}

static void up_flush(struct worker *wk, struct h2up *u)
{
	if (u->state != H2UP_OPEN || u->busy)
		return;
	for (;;) {
		if (u->out_off < u->out.len) {
			if (!u->writable)
				return;
			ssize_t n = tlsio_send(&u->tls, u->fd, u->out.buf + u->out_off,
					       u->out.len - u->out_off);

			if (n < 0 && errno == EAGAIN) {
				u->writable = false;
				return;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				/* Reported by the read path, as for HTTP/1. */
				shutdown(u->fd, SHUT_RDWR);
				return;
			}
			u->out_off += (size_t)n;
			continue;
		}
		strbuf_reset(&u->out);
		u->out_off = 0;
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(u->ng, &data);

		if (n <= 0)
			return;
		strbuf_add(&u->out, data, (size_t)n);
	}
}

/* A new connection of pool p: connects, or (tls not NULL) adopts the TLS connection fd on which
 * the server chose h2 by ALPN, already in the epoll set. held is its count in the cluster's
 * breaker, which the connection gives back when it closes (or this, on failure). */
static int up_open_fd(struct worker *wk, struct upool *p, int fd, struct tlsio *tls,
		      struct px_cb_state *held)
{
	struct h2up *u = calloc(1, sizeof(*u));
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
	nghttp2_session_callbacks *cbs;
	bool bound;
	int rc = -ENOMEM;

	if (!u) {
		px_cb_release(&held, PX_CB_CX);
		return -ENOMEM;
	}
	u->cbs = held;
	if (!nghttp2_session_callbacks_new(&cbs)) {
		nghttp2_session_callbacks_set_on_header_callback(cbs, up_on_header);
		nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, up_on_frame_recv);
		nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, up_on_data);
		nghttp2_session_callbacks_set_on_stream_close_callback(cbs, up_on_stream_close);
		nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs,
									     up_on_invalid_frame);
		rc = nghttp2_session_client_new(&u->ng, cbs, u) ? -ENOMEM : 0;
		nghttp2_session_callbacks_del(cbs);
	}
	if (!rc && !tls) {
		fd = upstream_connect(wk, p->w, &p->cfg, &p->addr, p->port, &bound);
		if (fd < 0) {
			rc = fd;
			nghttp2_session_del(u->ng);
		}
	}
	if (rc) {
		px_cb_release(&u->cbs, PX_CB_CX);
		free(u);
		return rc;
	}
	u->h.type = EV_H2UP;
	list_init(&u->xs);
	list_init(&u->dirty);
	u->fd = fd;
	u->pool = p;
	u->state = H2UP_CONNECTING;
	u->deadline = wk->now_ms + (p->cfg.connect_timeout_ms ? p->cfg.connect_timeout_ms
							      : wk->p->cfg.connect_timeout_ms);
	worker_timer(wk, u->deadline);
	list_init(&u->dead);
	list_add_tail(&u->node, &p->h2);
	p->nconns++;
	ev.data.ptr = &u->h;
	if (epoll_ctl(wk->epfd, tls ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev)) {
		int err = -errno;

		if (tls)
			u->fd = -1; /* still the caller's */
		up_close(wk, u, "cannot watch the socket");
		return err;
	}
	if (tls) {
		u->tls = *tls;
		memset(tls, 0, sizeof(*tls));
		u->state = H2UP_OPEN;
		u->readable = u->writable = true;
	}
	nghttp2_submit_settings(u->ng, NGHTTP2_FLAG_NONE, NULL, 0);
	if (tls)
		up_mark(wk, u); /* the preface and SETTINGS go out at the end of the iteration */
	return 0;
}

static int up_open(struct worker *wk, struct upool *p)
{
	struct px_cb_state *held;

	if (!upool_cx_take(p, &held))
		return -EBUSY;
	return up_open_fd(wk, p, -1, NULL, held);
}

int h2_up_adopt(struct worker *wk, struct upool *p, int fd, struct tlsio *tls)
{
	struct px_cb_state *held;

	/* The HTTP/1 connection it was gives its count back when it closes. */
	px_cb_acquire(&p->cfg, PX_CB_CX, true, &held);
	return up_open_fd(wk, p, fd, tls, held);
}

static uint32_t up_capacity(const struct h2up *u)
{
	uint32_t max =
		nghttp2_session_get_remote_settings(u->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);

	if (u->state != H2UP_OPEN || u->goaway || u->active >= max)
		return 0;
	return max - u->active;
}

static void up_attach(struct worker *wk, struct h2up *u, struct hstream *s)
{
	struct h2x *x = calloc(1, sizeof(*x));

	if (!x) {
		hstream_on_upstream_failure(s, PX_RESET_LOCAL, "out of memory");
		return;
	}
	x->u = u;
	x->s = s;
	list_add_tail(&x->node, &u->xs);
	u->active++;
	u->deadline = 0;
	hstream_on_upstream_ready(s, x, &h2_up_ops);
	if (x->id <= 0) {
		/* The request never went out (the stream gave up at once): no stream to close. */
		u->active--;
		x_free(x);
	}
}

int h2_up_request(struct worker *wk, struct upool *p, struct hstream *s)
{
	struct list_head *pos, *tmp;
	bool connecting = false;

	list_for_each_safe (pos, tmp, &p->h2) {
		struct h2up *u = list_entry(pos, struct h2up, node);

		if (up_capacity(u)) {
			up_attach(wk, u, s);
			return 0;
		}
		connecting |= u->state == H2UP_CONNECTING;
	}
	int err = upool_enqueue(p, s, s->cluster);

	if (err)
		return err;
	if (!connecting) {
		err = up_open(wk, p);
		if (err == -EBUSY) {
			STAT_INC(wk, upstream_cx_overflow);
		} else if (err) {
			upool_cancel(wk, s);
			return err;
		}
	}
	return 0;
}

void h2_up_dispatch(struct worker *wk, struct upool *p)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &p->h2) {
		struct h2up *u = list_entry(pos, struct h2up, node);

		while (!list_empty(&p->pending) && up_capacity(u)) {
			struct hstream *s = list_entry(p->pending.next, struct hstream, pool_node);

			upool_unqueue(p, s);
			up_attach(wk, u, s);
		}
	}
}

void h2_up_on_event(struct worker *wk, struct ev_handler *h, uint32_t events)
{
	struct h2up *u = container_of(h, struct h2up, h);
	char buf[H2_READ_CHUNK];

	if (u->state == H2UP_CLOSED)
		return;
	if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		u->writable = true;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
		u->readable = true;
	tlsio_on_events(&u->tls, events, &u->readable, &u->writable);
	if (u->state == H2UP_CONNECTING) {
		if (!u->tls.ssl) {
			if (!u->writable)
				return;
			int err = upstream_connect_result(u->fd);

			if (err) {
				struct hstream *s = upool_take_oldest(wk, u->pool);

				up_close(wk, u, "connect");
				upool_connect_failed(s, err);
				return;
			}
			if (!u->pool->tls)
				goto open;
			if (upool_tls_start(u->pool, &u->tls, u->fd, false)) {
				up_close(wk, u, "out of memory");
				upool_connect_failed(upool_take_oldest(wk, u->pool), -ENOMEM);
				return;
			}
		}
		if (!upool_tls_step(wk, u->pool, &u->tls, "h2"))
			return;
		if (u->tls.err[0]) {
			struct hstream *s = upool_take_oldest(wk, u->pool);

			up_close(wk, u, u->tls.err);
			if (s)
				hstream_on_upstream_failure(s, PX_RESET_CONNECT_FAILURE,
							    u->tls.err);
			return;
		}
	open:
		u->state = H2UP_OPEN;
		pr_debug("upstream HTTP/2 connection to %s open", u->pool->cluster);
		up_flush(wk, u);
		/* Waiting streams get their exchanges at the end of this iteration. */
		return;
	}
	up_flush(wk, u);
	while (u->readable && u->state == H2UP_OPEN) {
		ssize_t n = tlsio_recv(&u->tls, u->fd, buf, sizeof(buf));

		if (n < 0 && errno == EAGAIN) {
			u->readable = false;
			break;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			up_fail_all(wk, u, "connection termination");
			return;
		}
		u->busy = true;
		ssize_t used = nghttp2_session_mem_recv(u->ng, (const uint8_t *)buf, (size_t)n);

		u->busy = false;
		if (used < 0) {
			up_fail_all(wk, u, "protocol error");
			return;
		}
		up_flush(wk, u);
	}
}

void h2_up_tick(struct worker *wk, struct upool *p)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &p->h2) {
		struct h2up *u = list_entry(pos, struct h2up, node);

		if (u->state == H2UP_CONNECTING && wk->now_ms >= u->deadline) {
			struct hstream *s =
				list_empty(&p->pending)
					? NULL
					: list_entry(p->pending.next, struct hstream, pool_node);

			if (s)
				upool_cancel(wk, s);
			up_close(wk, u, "connect timeout");
			if (s)
				hstream_on_upstream_failure(s, PX_RESET_CONNECT_TIMEOUT,
							    "connection timeout");
			continue;
		}
		if (u->state == H2UP_CONNECTING) {
			worker_timer(wk, u->deadline);
			continue;
		}
		if (u->active)
			continue;
		if (!u->deadline)
			u->deadline = wk->now_ms + (p->cfg.upstream_idle_timeout_ms
							    ? p->cfg.upstream_idle_timeout_ms
							    : UPOOL_IDLE_MS_DEF);
		if (wk->now_ms >= u->deadline || u->goaway)
			up_close(wk, u, "idle");
	}
}

void h2_up_close_pool(struct worker *wk, struct upool *p)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &p->h2)
		up_fail_all(wk, list_entry(pos, struct h2up, node), "shutdown");
}

void h2_up_free_dead(struct worker *wk)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &wk->h2up_dead) {
		struct h2up *u = list_entry(pos, struct h2up, dead);
		struct upool *p = u->pool;

		list_del_init(&u->dead);
		nghttp2_session_del(u->ng); /* runs no callbacks: free what it still had */
		while (!list_empty(&u->xs))
			x_free(list_entry(u->xs.next, struct h2x, node));
		strbuf_release(&u->out);
		strbuf_release(&u->nvbuf);
		free(u);
		p->ndead--;
		upool_maybe_free(p);
	}
}

void h2_flush_dirty(struct worker *wk)
{
	/* Flushing may mark more (a stream closing fails its exchange, which may retry). */
	while (!list_empty(&wk->h2_dirty) || !list_empty(&wk->h2_dirty_up)) {
		while (!list_empty(&wk->h2_dirty)) {
			struct h2conn *c = list_entry(wk->h2_dirty.next, struct h2conn, dirty);

			list_del_init(&c->dirty);
			down_flush(c);
		}
		while (!list_empty(&wk->h2_dirty_up)) {
			struct h2up *u = list_entry(wk->h2_dirty_up.next, struct h2up, dirty);

			list_del_init(&u->dirty);
			up_flush(wk, u);
		}
	}
}
