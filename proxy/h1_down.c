/* The HTTP/1.1 downstream codec: parse requests (keep-alive, pipelining, bodies), hand them to
 * the stream logic, and write its responses with our own framing.
 *
 * The current request's head stays at the start of the input buffer for the whole exchange:
 * its header spans are what the stream routes on, rewrites and replays for retries. Body bytes
 * after it are consumed in place; the next request moves to the front once the exchange is
 * over. */
#include "proxy/h1_down.h"

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
#include "proxy/upool.h"
#include "proxy/tlsio.h"
#include "proxy/tunnel.h"
#include "proxy/upstream.h"

#define H1_IN_SLACK	16384	  /* room for body bytes beyond the largest head */
#define H1_OUT_HIGH	(1 << 20) /* response bytes queued before upstream reads pause */
#define H1_TRAILERS	16
#define H1_REQ_HDRS_MIN 16 /* first size of a connection's request field array */

struct h1conn {
	struct ev_handler h; /* EV_HTTP */
	struct hconn hc;
	struct list_head dead;
	struct list_head ready;		/* in the worker's http_ready list */
	struct wk_deferred flush_later; /* a response head waiting for its body */
	int fd;
	bool readable, writable, peer_eof, closing, closed;
	bool rdhup;   /* the peer's FIN or an error was reported: read until 0 */
	bool sockmap; /* the socket may be in the SOCKHASH (see recv_drained) */
	struct tlsio tls;
	/* A pool buffer (in_cap == BUF_SIZE), or a malloc'd one grown for a large head. Held only
	 * while a request is in progress or bytes wait in it; NULL otherwise, so an idle keep-alive
	 * connection costs no buffer. */
	char *in;
	size_t in_cap, in_len;
	size_t head_len; /* the current request's head: in[0..head_len) */
	size_t body_off; /* the next unprocessed byte */
	struct strbuf out;
	size_t out_off;
	struct http1_limits lim;
	struct http1_parser parser;
	struct px_hdr *req_hdrs; /* the current request's fields; grown on demand, kept */
	size_t req_hdrs_cap;
	struct hstream stream;
	bool active;   /* a request is in progress */
	bool finished; /* its response is complete (queued) */
	enum http1_body body;
	uint64_t body_left;
	bool body_done;
	struct http1_chunked chunked;
	struct http1_header trailers[H1_TRAILERS];
	bool keep_alive;
	uint8_t minor;
	bool resp_chunked, resp_close_delimited, resp_no_body;
	uint32_t requests;
};

static const struct hconn_ops h1_ops;

static struct h1conn *of_stream(struct hstream *s)
{
	return container_of(s->hc, struct h1conn, hc);
}

/* ---- output ----------------------------------------------------------------------------------- */

static void h1_close(struct worker *wk, struct h1conn *c, bool reset)
{
	if (c->closed)
		return;
	c->closed = true;
	if (c->active && !c->stream.done)
		hstream_on_downstream_reset(&c->stream, "downstream_remote_disconnect");
	if (c->active)
		hstream_release(&c->stream);
	c->active = false;
	if (reset) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};

		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	} else {
		tlsio_shutdown(&c->tls);
	}
	tlsio_free(&c->tls);
	close(c->fd);
	c->fd = -1;
	list_del_init(&c->hc.node);
	if (list_linked(&c->ready))
		list_del_init(&c->ready);
	worker_defer_cancel(&c->flush_later);
	list_add_tail(&c->dead, &wk->http_dead);
	STAT_DEC(wk, downstream_cx_active);
}

static void flush(struct worker *wk, struct h1conn *c)
{
	while (c->out_off < c->out.len && c->writable) {
		ssize_t n = tlsio_send(&c->tls, c->fd, c->out.buf + c->out_off,
				       c->out.len - c->out_off);

		if (n < 0) {
			if (errno == EAGAIN)
				c->writable = false;
			else if (errno != EINTR)
				h1_close(wk, c, false);
			return;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out.len) {
		strbuf_reset(&c->out);
		c->out_off = 0;
		/* Connection: close answered, or the peer half-closed: done once written. */
		if (c->closing && !c->active)
			h1_close(wk, c, false);
	}
}

static void h1_send_headers(struct hstream *s, int status, struct http_hdrs *h, bool end_stream)
{
	struct h1conn *c = of_stream(s);
	struct strbuf *o = &c->out;
	bool has_cl = http_hdrs_find(h, "content-length") >= 0;
	bool bodiless = s->is_head || status == 204 || status == 304 || status < 200;

	strbuf_addf(o, "HTTP/1.1 %d %s\r\n", status, http_reason_phrase(status));
	for (uint32_t i = 0; i < h->n; i++) {
		strbuf_add(o, h->v[i].name, h->v[i].name_len);
		strbuf_adds(o, ": ");
		strbuf_add(o, h->v[i].value, h->v[i].value_len);
		strbuf_adds(o, "\r\n");
	}
	if (s->tunnel) {
		/* 101 or a 2xx to CONNECT: raw bytes follow, no framing. The head is the first
		 * thing the tunnel writes (see h1_detach); writing it here could fail and close
		 * the connection under the hand-over. */
		strbuf_adds(o, "\r\n");
		return;
	}
	c->resp_chunked = c->resp_close_delimited = false;
	c->resp_no_body = bodiless || end_stream;
	if (!bodiless && end_stream && !has_cl) {
		strbuf_adds(o, "content-length: 0\r\n");
	} else if (!bodiless && !end_stream && !has_cl) {
		/* Unknown length: chunked for HTTP/1.1 clients, until close for HTTP/1.0 ones. */
		if (c->minor >= 1) {
			c->resp_chunked = true;
			strbuf_adds(o, "transfer-encoding: chunked\r\n");
		} else {
			c->resp_close_delimited = true;
			c->keep_alive = false;
		}
	}
	/* Draining: this is the connection's last response, and the client is told so. */
	if (c->hc.draining)
		c->keep_alive = false;
	if (!c->keep_alive)
		strbuf_adds(o, "connection: close\r\n");
	else if (c->minor == 0)
		strbuf_adds(o, "connection: keep-alive\r\n");
	strbuf_adds(o, "\r\n");
	/* The body usually follows in this iteration: one send for both. */
	if (end_stream)
		flush(c->hc.wk, c);
	else
		worker_defer(c->hc.wk, &c->flush_later);
}

static void h1_send_data(struct hstream *s, const char *data, size_t len, bool end_stream)
{
	struct h1conn *c = of_stream(s);
	struct strbuf *o = &c->out;
	char hdr[HTTP1_CHUNK_HEADER_MAX];

	if (!c->resp_no_body && len) {
		if (c->resp_chunked) {
			strbuf_add(o, hdr, http1_chunk_header(hdr, len));
			strbuf_add(o, data, len);
			strbuf_adds(o, HTTP1_CHUNK_END);
		} else {
			strbuf_add(o, data, len);
		}
	}
	if (end_stream && c->resp_chunked && !c->resp_no_body)
		strbuf_adds(o, HTTP1_CHUNK_LAST);
	flush(c->hc.wk, c);
}

static void h1_send_trailers(struct hstream *s, struct http_hdrs *h)
{
	/* HTTP/1 clients rarely ask for trailers (TE: trailers); the body ends without them. */
	h1_send_data(s, "", 0, true);
}

static void process(struct worker *wk, struct h1conn *c);

static void h1_stream_done(struct hstream *s)
{
	struct h1conn *c = of_stream(s);

	c->finished = true;
	c->requests++;
	if (!c->keep_alive || c->resp_close_delimited)
		c->closing = true;
	if (c->hc.draining && !c->closing) {
		STAT_INC(c->hc.wk, downstream_cx_drain_close);
		c->closing = true;
	}
	/* The next request is set up by process() at the end of the loop iteration, outside the
	 * stream's call chain. */
	if (!list_linked(&c->ready))
		list_add_tail(&c->ready, &c->hc.wk->http_ready);
}

static void h1_reset(struct hstream *s)
{
	struct h1conn *c = of_stream(s);

	h1_close(c->hc.wk, c, true);
}

static void h1_resume(struct hstream *s);
static size_t h1_pending_out(struct hstream *s);

/* The response opened a tunnel: the socket goes to the TCP proxy with whatever the client
 * sent after the request head and whatever of the response head is not written yet. The
 * connection ends here without a close; it stays counted as active, now as the tunnel. */
static void h1_detach(struct hstream *s, struct tunnel_end *e)
{
	struct h1conn *c = of_stream(s);
	struct worker *wk = c->hc.wk;

	e->fd = c->fd;
	e->tls = c->tls; /* moved */
	memset(&c->tls, 0, sizeof(c->tls));
	e->eof = c->peer_eof;
	if (c->in_len > c->body_off)
		strbuf_add(&e->rx, c->in + c->body_off, c->in_len - c->body_off);
	if (c->out.len > c->out_off)
		strbuf_add(&e->tx, c->out.buf + c->out_off, c->out.len - c->out_off);
	list_del_init(&s->node);
	hstream_release(s);
	c->active = false;
	c->closed = true;
	c->fd = -1;
	list_del_init(&c->hc.node);
	if (list_linked(&c->ready))
		list_del_init(&c->ready);
	worker_defer_cancel(&c->flush_later);
	list_add_tail(&c->dead, &wk->http_dead);
}

static const struct hconn_ops h1_ops = {
	.send_headers = h1_send_headers,
	.send_data = h1_send_data,
	.send_trailers = h1_send_trailers,
	.stream_done = h1_stream_done,
	.reset = h1_reset,
	.pending_out = h1_pending_out,
	.resume = h1_resume,
	.detach = h1_detach,
};

/* ---- input ------------------------------------------------------------------------------------ */

/* A request we answer ourselves before any routing (400/414/431/505 for malformed input,
 * 417), logged as a stream, connection closed. */
static void protocol_reply(struct worker *wk, struct h1conn *c, int status, const char *text)
{
	struct hstream *s = &c->stream;
	struct http_hdrs *h = wk->scratch_hdrs;

	if (!c->active) {
		hstream_init(s, &c->hc, &h1_ops);
		c->active = true;
	}
	c->keep_alive = false;
	c->closing = true;
	s->status = status;
	if (!strcmp(s->flags, "-"))
		s->flags = "DPE";
	if (!strcmp(s->details, "-"))
		s->details = "http1.codec_error";
	snprintf(s->failure, sizeof(s->failure), "%s", text);
	http_hdrs_reset(h);
	http_hdrs_add(h, "content-type", 12, "text/plain", 10);
	http_hdrs_addf(h, "content-length", "%zu", strlen(text));
	http_hdrs_add(h, "server", 6, c->hc.cfg->server_name, strlen(c->hc.cfg->server_name));
	if (!c->minor)
		c->minor = 1;
	h1_send_headers(s, status, h, false);
	h1_send_data(s, text, strlen(text), true);
	s->bytes_tx = strlen(text);
	/* Logged like any stream, though nothing was routed. */
	hstream_on_downstream_reset(s, s->details);
	list_del_init(&s->node);
	hstream_release(s);
	c->active = false;
	flush(wk, c);
}

static void protocol_error(struct worker *wk, struct h1conn *c, enum http1_err err)
{
	struct hstream *s = &c->stream;

	STAT_INC(wk, http_downstream_protocol_error);
	if (http1_err_is_smuggling(err))
		STAT_INC(wk, http_downstream_smuggling);
	hstream_init(s, &c->hc, &h1_ops);
	c->active = true;
	s->details = http1_err_is_smuggling(err) ? "http1.request_smuggling" : "http1.codec_error";
	protocol_reply(wk, c, http1_err_status(err), http1_err_text(err));
}

static bool in_get(struct worker *wk, struct h1conn *c)
{
	struct buf *b = worker_buf_get(wk);

	if (!b)
		return false;
	c->in = b->data;
	c->in_cap = BUF_SIZE;
	return true;
}

static void in_put(struct worker *wk, struct h1conn *c)
{
	if (c->in_cap == BUF_SIZE)
		worker_buf_put(wk, container_of(c->in, struct buf, data));
	else
		free(c->in);
	c->in = NULL;
	c->in_cap = c->in_len = 0;
}

/* No request in progress and nothing read: no span points into the buffer, so it goes back
 * to the pool until the client sends again. */
static void in_release_idle(struct worker *wk, struct h1conn *c)
{
	if (c->in && !c->closed && !c->active && !c->in_len)
		in_put(wk, c);
}

static bool grow_in(struct worker *wk, struct h1conn *c)
{
	size_t max = c->lim.max_head_bytes + H1_IN_SLACK, cap;
	char *n;

	if (c->in_cap >= max)
		return false;
	cap = c->in_cap * 2 > max ? max : c->in_cap * 2;
	if (c->in_cap == BUF_SIZE) {
		/* A pool buffer does not grow in place: the bytes move to a malloc'd one. */
		n = malloc(cap);
		if (!n)
			return false;
		memcpy(n, c->in, c->in_len);
		worker_buf_put(wk, container_of(c->in, struct buf, data));
	} else {
		n = realloc(c->in, cap);
		if (!n)
			return false;
	}
	c->in = n;
	c->in_cap = cap;
	return true;
}

/* Room for the n fields of the next request (never while one is in progress: the stream's
 * view points at the array). */
static bool grow_req_hdrs(struct h1conn *c, size_t n)
{
	size_t cap = c->req_hdrs_cap ? c->req_hdrs_cap * 2 : H1_REQ_HDRS_MIN;
	struct px_hdr *h;

	if (c->req_hdrs && n <= c->req_hdrs_cap)
		return true;
	if (cap < n)
		cap = n;
	h = realloc(c->req_hdrs, cap * sizeof(*h));
	if (!h)
		return false;
	c->req_hdrs = h;
	c->req_hdrs_cap = cap;
	return true;
}

static void start_request(struct worker *wk, struct h1conn *c, const struct http1_msg *m,
			  size_t head_len)
{
	struct hstream *s = &c->stream;
	struct px_req_view *r = &s->req;

	hstream_init(s, &c->hc, &h1_ops);
	c->active = true;
	c->finished = false;
	c->head_len = c->body_off = head_len;
	c->keep_alive = m->keep_alive;
	c->minor = m->minor;
	c->body = m->body;
	c->body_left = m->content_length;
	c->body_done = m->body == HTTP1_BODY_NONE;
	for (size_t i = 0; i < m->nheaders; i++)
		c->req_hdrs[i] =
			(struct px_hdr){m->headers[i].name.p, (uint32_t)m->headers[i].name.len,
					m->headers[i].value.p, (uint32_t)m->headers[i].value.len};
	r->method = m->method_name.p;
	r->method_len = m->method_name.len;
	if (m->path.len) {
		r->path = m->path.p;
		r->path_len = m->path.len;
	} else {
		r->path = "/";
		r->path_len = 1;
	}
	if (m->authority.len) {
		r->authority = m->authority.p;
		r->authority_len = m->authority.len;
	} else {
		r->authority = m->host.p ? m->host.p : "";
		r->authority_len = m->host.p ? m->host.len : 0;
	}
	r->scheme = "http";
	r->scheme_len = 4;
	r->hdrs = c->req_hdrs;
	r->nhdrs = (uint32_t)m->nheaders;
	s->req_has_body = !c->body_done;
	s->req_end = c->body_done;
	if (c->body == HTTP1_BODY_CHUNKED)
		http1_chunked_begin(&c->chunked, &c->lim, c->trailers, H1_TRAILERS);
	list_add_tail(&s->node, &c->hc.streams);
	/* Expect: as Envoy does by default, answer 100-continue ourselves (the upstream never
	 * sees the Expect header) and refuse any other expectation. */
	size_t elen;
	const char *expect = px_req_header(r, "expect", &elen);

	if (expect && !m->expect_continue) {
		c->body_done = true; /* whatever follows cannot be trusted as this body */
		c->keep_alive = false;
		protocol_reply(wk, c, 417, "expectation not supported");
		return;
	}
	if (m->expect_continue && !c->body_done) {
		strbuf_adds(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
		flush(wk, c);
	}
	hstream_on_request_headers(s);
}

/* Feeds body bytes to the stream (or drops them once its response is complete).
 * Returns false when no progress is possible now. */
static bool feed_body(struct worker *wk, struct h1conn *c)
{
	size_t avail = c->in_len - c->body_off;
	const char *p = c->in + c->body_off;
	struct hstream *s = &c->stream;

	if (c->body_done || !avail)
		return false;
	if (c->body == HTTP1_BODY_LENGTH) {
		size_t take = avail < c->body_left ? avail : (size_t)c->body_left;

		c->body_left -= take;
		c->body_off += take;
		c->body_done = c->body_left == 0;
		if (!s->done)
			hstream_on_request_data(s, p, take, c->body_done);
		return true;
	}
	if (c->body == HTTP1_BODY_CHUNKED) {
		struct http1_span data = {"", 0};
		ssize_t n = http1_chunked_decode(&c->chunked, p, avail, &data);

		if (n == HTTP1_INVALID) {
			if (!s->done)
				hstream_on_downstream_reset(s, "http1.invalid_chunk");
			h1_close(wk, c, true);
			return false;
		}
		if (n == HTTP1_INCOMPLETE)
			return false;
		if (n > 0)
			c->body_off += (size_t)n;
		c->body_done = n == 0 || http1_chunked_done(&c->chunked);
		if (!s->done && (data.len || c->body_done))
			hstream_on_request_data(s, data.p, data.len, c->body_done);
		return true;
	}
	/* A body we do not frame (tunnel): not carried on this path. */
	c->body_done = true;
	return true;
}

/* The upstream has more request body queued than we want to buffer: stop reading. */
static bool paused(const struct h1conn *c)
{
	const struct hstream *s = &c->stream;

	if (!c->active || s->done)
		return false;
	if (s->up && s->up_ops->pending_out(s->up) > UCONN_OUT_HIGH)
		return true;
	return !s->up && s->body.len > HCM_RETRY_BUFFER_MAX;
}

/* The HTTP/2 codec takes the socket and the bytes read so far; this connection ends quietly. */
static void to_h2(struct worker *wk, struct h1conn *c)
{
	int err = h2_down_start(wk, c->fd, c->hc.w, c->hc.snap, c->hc.listener,
				container_of(c->hc.cfg, struct px_filter_chain, http),
				&c->hc.remote, c->hc.remote_port, &c->hc.local, c->hc.local_port,
				c->in, c->in_len, &c->tls);

	if (err) {
		h1_close(wk, c, true);
		return;
	}
	/* Not a connection of ours any more: no close, no count. */
	c->closed = true;
	c->fd = -1;
	list_del_init(&c->hc.node);
	if (list_linked(&c->ready))
		list_del_init(&c->ready);
	list_add_tail(&c->dead, &wk->http_dead);
	STAT_DEC(wk, http_cx_total);
}

static void process(struct worker *wk, struct h1conn *c)
{
	for (;;) {
		if (c->closed)
			return;
		if (c->active && c->finished && c->body_done) {
			/* Exchange over: move what follows (a pipelined request) to the front. */
			list_del_init(&c->stream.node);
			hstream_release(&c->stream);
			c->active = false;
			memmove(c->in, c->in + c->body_off, c->in_len - c->body_off);
			c->in_len -= c->body_off;
			c->head_len = c->body_off = 0;
			if (c->closing) {
				flush(wk, c);
				return;
			}
		}
		if (c->active) {
			if (paused(c) || !feed_body(wk, c))
				return;
			continue;
		}
		if (!c->in_len) {
			if (c->peer_eof)
				h1_close(wk, c, false);
			return;
		}
		/* Prior-knowledge HTTP/2 (h2c) starts with its preface: hand the connection over. */
		if (c->requests == 0 && c->hc.cfg->codec != PX_CODEC_HTTP1 && c->in[0] == 'P') {
			size_t k = c->in_len < H2_PREFACE_LEN ? c->in_len : H2_PREFACE_LEN;

			if (!memcmp(c->in, H2_PREFACE, k)) {
				if (k < H2_PREFACE_LEN)
					return; /* wait for the rest of it */
				to_h2(wk, c);
				return;
			}
		}
		struct http1_header *hdrs = worker_h1_hdrs(wk, c->lim.max_headers);
		struct http1_msg m;
		int n;

		if (!hdrs) {
			h1_close(wk, c, true);
			return;
		}
		/* Parsed whole each time: the fields land in the worker's scratch array and are
		 * copied out before anything else runs. */
		http1_request_begin(&c->parser, &c->lim, hdrs, c->lim.max_headers);
		n = http1_parse_request(&c->parser, c->in, c->in_len, &m);
		if (n == HTTP1_INCOMPLETE) {
			if (c->in_len >= c->lim.max_head_bytes)
				protocol_error(wk, c, HTTP1_E_HEAD_TOO_LARGE);
			else if (c->peer_eof)
				h1_close(wk, c, false);
			return;
		}
		if (n == HTTP1_INVALID) {
			protocol_error(wk, c, c->parser.err);
			return;
		}
		if (!grow_req_hdrs(c, m.nheaders)) {
			h1_close(wk, c, true);
			return;
		}
		STAT_INC(wk, http_rq_parsed);
		start_request(wk, c, &m, (size_t)n);
	}
}

static void read_in(struct worker *wk, struct h1conn *c)
{
	while (c->readable && !c->closed && !c->peer_eof) {
		ssize_t n;

		if (!c->in && !in_get(wk, c)) {
			h1_close(wk, c, true);
			return;
		}
		if (c->in_len == c->in_cap) {
			/* Room is made by the exchange consuming body bytes; only a head still
			 * being read may grow the buffer. While a request is in progress its view
			 * points into the buffer, which must not move. */
			if (c->active && c->body_off > c->head_len) {
				memmove(c->in + c->head_len, c->in + c->body_off,
					c->in_len - c->body_off);
				c->in_len -= c->body_off - c->head_len;
				c->body_off = c->head_len;
			} else if (c->active && !c->body_done) {
				/* Body framing (a chunk line, trailers) that fills what the head
				 * left: no client needs that. */
				STAT_INC(wk, http_downstream_protocol_error);
				h1_close(wk, c, true);
				return;
			} else if (c->active) {
				/* Pipelined requests behind one in progress: read on once it is
				 * over (h1_down_run_ready). */
				break;
			} else if (!grow_in(wk, c)) {
				break;
			}
			continue;
		}
		size_t room = c->in_cap - c->in_len;

		n = tlsio_recv(&c->tls, c->fd, c->in + c->in_len, room);
		if (n < 0 && errno == EAGAIN) {
			c->readable = false;
			break;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			c->peer_eof = true;
			if (n < 0 || (c->active && !c->body_done)) {
				h1_close(wk, c, n < 0);
				return;
			}
			break;
		}
		c->in_len += (size_t)n;
		c->hc.last_activity = wk->now_ms;
		if (tlsio_drained(&c->tls, n, room, c->rdhup, c->sockmap))
			c->readable = false;
		process(wk, c);
		if (paused(c))
			break;
	}
	process(wk, c);
	in_release_idle(wk, c);
}

/* Writes what is queued and, once the backlog is small again, lets a paused upstream read. */
static void write_out(struct worker *wk, struct h1conn *c)
{
	flush(wk, c);
	if (!c->closed && c->active && c->stream.up && c->out.len - c->out_off < H1_OUT_HIGH)
		c->stream.up_ops->resume(c->stream.up);
}

static void h1_flush_later(struct worker *wk, struct wk_deferred *d)
{
	struct h1conn *c = container_of(d, struct h1conn, flush_later);

	if (!c->closed)
		write_out(wk, c);
}

void h1_down_on_event(struct worker *wk, struct ev_handler *h, uint32_t events)
{
	struct h1conn *c = container_of(h, struct h1conn, h);

	if (c->closed)
		return;
	if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		c->writable = true;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
		c->readable = true;
	if (events & (EPOLLRDHUP | EPOLLERR | EPOLLHUP))
		c->rdhup = true;
	tlsio_on_events(&c->tls, events, &c->readable, &c->writable);
	write_out(wk, c);
	if (!c->closed)
		read_in(wk, c);
}

static void h1_resume(struct hstream *s)
{
	struct h1conn *c = of_stream(s);

	if (!c->closed && !paused(c))
		read_in(c->hc.wk, c);
}

static size_t h1_pending_out(struct hstream *s)
{
	struct h1conn *c = of_stream(s);

	return c->out.len - c->out_off;
}

/* ---- lifecycle -------------------------------------------------------------------------------- */

int h1_down_start(struct worker *wk, int fd, struct proxy_workload *w, struct px_snapshot *snap,
		  const struct px_listener *l, const struct px_filter_chain *fc,
		  const struct shunt_addr *remote, __u16 remote_port,
		  const struct shunt_addr *local, __u16 local_port, struct tlsio *tls)
{
	struct h1conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
	struct http1_limits want = {0};

	if (!c)
		return -ENOMEM;
	c->h.type = EV_HTTP;
	c->fd = fd;
	hconn_init(&c->hc, wk, w, snap, &fc->http, remote, remote_port, local, local_port);
	c->hc.listener = l;
	c->hc.chain = fc;
	c->hc.draining = wk->draining;
	list_init(&c->dead);
	list_init(&c->ready);
	worker_defer_init(&c->flush_later, h1_flush_later);
	c->sockmap = w->sockmap;
	want.max_head_bytes = fc->http.max_request_headers_kb * 1024;
	want.max_headers = fc->http.max_headers_count;
	http1_limits_resolve(&c->lim, &want);
	ev.data.ptr = &c->h;
	if (epoll_ctl(wk->epfd, EPOLL_CTL_MOD, fd, &ev) &&
	    epoll_ctl(wk->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		int err = -errno;

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
	list_add_tail(&c->hc.node, &wk->http_conns);
	STAT_INC(wk, http_cx_total);
	/* The socket may already hold the first request. */
	c->readable = c->writable = true;
	read_in(wk, c);
	return 0;
}

void h1_down_run_ready(struct worker *wk)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &wk->http_ready) {
		struct h1conn *c = list_entry(pos, struct h1conn, ready);

		list_del_init(&c->ready);
		process(wk, c);
		if (!c->closed && c->readable && !paused(c))
			read_in(wk, c);
		in_release_idle(wk, c);
	}
}

void h1_down_tick(struct worker *wk)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &wk->http_conns) {
		struct h1conn *c =
			container_of(list_entry(pos, struct hconn, node), struct h1conn, hc);

		if (c->hc.drain_deadline && wk->now_ms >= c->hc.drain_deadline) {
			/* The drain time is over: whatever is still open goes. */
			STAT_INC(wk, listener_drain_cx_closed);
			h1_close(wk, c, false);
		} else if (c->active) {
			hconn_tick(&c->hc, wk->now_ms);
			process(wk, c);
			in_release_idle(wk, c);
		} else if (wk->now_ms - c->hc.last_activity >= c->hc.cfg->idle_timeout_ms) {
			STAT_INC(wk, cx_idle_timeout);
			h1_close(wk, c, false);
		}
	}
}

void h1_down_drain_conn(struct worker *wk, struct hconn *hc)
{
	struct h1conn *c = container_of(hc, struct h1conn, hc);

	hc->draining = true;
	if (hc->drain_deadline)
		worker_timer(wk, hc->drain_deadline);
	/* Busy: its response says connection: close and ends it (h1_stream_done). */
	if (!c->active) {
		STAT_INC(wk, downstream_cx_drain_close);
		h1_close(wk, c, false);
	}
}

void h1_down_drain(struct worker *wk)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &wk->http_conns)
		h1_down_drain_conn(wk, list_entry(pos, struct hconn, node));
}

void h1_down_free_dead(struct worker *wk)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &wk->http_dead) {
		struct h1conn *c = list_entry(pos, struct h1conn, dead);

		list_del_init(&c->dead);
		strbuf_release(&c->out);
		if (c->in)
			in_put(wk, c);
		free(c->req_hdrs);
		hconn_release(&c->hc);
		free(c);
	}
}

void h1_down_close_all(struct worker *wk)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &wk->http_conns) {
		struct h1conn *c =
			container_of(list_entry(pos, struct hconn, node), struct h1conn, hc);

		STAT_INC(wk, cx_drained);
		h1_close(wk, c, false);
	}
	h1_down_free_dead(wk);
}
