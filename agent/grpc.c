/* gRPC over HTTP/2 with nghttp2: one client stream, message framing, trailers, keepalive. */
#include "agent/grpc.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/grpc_frame.h"
#include "lib/log.h"
#include "lib/strbuf.h"

#define GRPC_STREAM_WINDOW (1 << 20) /* flow-control windows we grant the server */
#define GRPC_CONN_WINDOW   (8 << 20)

enum grpc_state {
	GC_CONNECTING,
	GC_HANDSHAKE, /* TCP connected, TLS handshake under way */
	GC_OPEN,
	GC_CLOSED
};

struct grpc_client {
	int fd;
	enum grpc_state state;
	SSL *ssl;	     /* NULL: h2c */
	bool ssl_want_write; /* the last SSL call wants the socket writable */
	nghttp2_session *h2;
	int32_t stream_id;
	struct grpc_callbacks cb;
	void *ctx;
	struct grpc_decoder dec;
	struct strbuf out; /* framed messages not yet taken by nghttp2 */
	size_t out_off;
	bool finishing;
	struct strbuf wbuf; /* HTTP/2 bytes not yet written to the socket */
	size_t woff;
	char authority[256], path[256];
	int http_status;
	int grpc_status; /* -1 until trailers say */
	char grpc_message[256];
	uint64_t now, connect_deadline, next_ping, ping_deadline;
	uint32_t keepalive_ms, ping_timeout_ms;
	/* Set once the stream ended; reported from the next io/tick call so that the callback
	 * may free the client without nghttp2 still on the stack. */
	bool close_pending;
	int close_status;
	char close_message[256];
};

static void fail(struct grpc_client *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(struct grpc_client *c, int status, const char *fmt, ...)
{
	va_list ap;

	if (c->close_pending || c->state == GC_CLOSED)
		return;
	c->close_pending = true;
	c->close_status = status;
	va_start(ap, fmt);
	vsnprintf(c->close_message, sizeof(c->close_message), fmt, ap);
	va_end(ap);
}

/* ---- nghttp2 callbacks ---------------------------------------------------------------------- */

static int deliver(void *ctx, const uint8_t *msg, size_t len)
{
	struct grpc_client *c = ctx;

	return c->cb.on_message(c->ctx, msg, len) ? -ECANCELED : 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
		   void *user)
{
	struct grpc_client *c = user;
	int rc;

	if (sid != c->stream_id || c->close_pending)
		return 0;
	rc = grpc_decoder_feed(&c->dec, data, len, deliver, c);
	if (rc == -EMSGSIZE)
		fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
		     "received message larger than the limit of %u bytes", c->dec.max_len);
	else if (rc == -EPROTO)
		fail(c, GRPC_STATUS_INTERNAL, "received a compressed message (not negotiated)");
	else if (rc == -ECANCELED)
		fail(c, GRPC_STATUS_INTERNAL, "message rejected by the receiver");
	else if (rc)
		fail(c, GRPC_STATUS_INTERNAL, "cannot receive message: %s", strerror(-rc));
	if (rc)
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, sid, NGHTTP2_CANCEL);
	return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
		     const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
	struct grpc_client *c = user;

	if (f->hd.stream_id != c->stream_id)
		return 0;
	if (nlen == 7 && !memcmp(name, ":status", 7))
		c->http_status = atoi((const char *)value);
	else if (nlen == 11 && !memcmp(name, "grpc-status", 11))
		c->grpc_status = atoi((const char *)value);
	else if (nlen == 12 && !memcmp(name, "grpc-message", 12))
		snprintf(c->grpc_message, sizeof(c->grpc_message), "%.*s", (int)vlen,
			 (const char *)value);
	return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	struct grpc_client *c = user;

	if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK))
		c->ping_deadline = 0;
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t error_code, void *user)
{
	struct grpc_client *c = user;

	if (sid != c->stream_id)
		return 0;
	if (c->grpc_status >= 0)
		fail(c, c->grpc_status, "%s", c->grpc_message);
	else if (c->http_status && c->http_status != 200)
		fail(c, GRPC_STATUS_UNAVAILABLE, "HTTP status %d instead of 200", c->http_status);
	else if (error_code)
		fail(c, GRPC_STATUS_UNAVAILABLE, "stream reset by the server (HTTP/2 error %u)",
		     error_code);
	else
		fail(c, GRPC_STATUS_INTERNAL, "stream ended without grpc-status");
	return 0;
}

static ssize_t read_out(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
			nghttp2_data_source *src, void *user)
{
	struct grpc_client *c = user;
	size_t avail = c->out.len - c->out_off;

	if (!avail) {
		if (c->finishing) {
			*flags |= NGHTTP2_DATA_FLAG_EOF;
			return 0;
		}
		return NGHTTP2_ERR_DEFERRED;
	}
	if (len > avail)
		len = avail;
	memcpy(buf, c->out.buf + c->out_off, len);
	c->out_off += len;
	if (c->out_off == c->out.len) {
		strbuf_reset(&c->out);
		c->out_off = 0;
	}
	return (ssize_t)len;
}

/* ---- transport: plain socket or TLS ----------------------------------------------------------- */

/* One line for the last OpenSSL error (the queue is cleared). */
static const char *ssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (!e)
		snprintf(buf, len, "%s", "no detail");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* What an SSL_read or SSL_write that returned n <= 0 means: -EAGAIN (wait; ssl_want_write says
 * for which direction), `closed` for the peer's orderly end, else -errno or -EPROTO after failing
 * the client with the TLS reason. */
static ssize_t ssl_result(struct grpc_client *c, int n, ssize_t closed)
{
	char why[160];
	int e = SSL_get_error(c->ssl, n);

	c->ssl_want_write = e == SSL_ERROR_WANT_WRITE;
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return -EAGAIN;
	if (e == SSL_ERROR_ZERO_RETURN)
		return closed;
	if (e == SSL_ERROR_SYSCALL && !ERR_peek_error())
		return errno ? -errno : closed;
	fail(c, GRPC_STATUS_UNAVAILABLE, "TLS: %s", ssl_reason(why, sizeof(why)));
	return -EPROTO;
}

/* >0 bytes, 0 closed, -EAGAIN, or another -errno with c failed. */
static ssize_t t_recv(struct grpc_client *c, void *buf, size_t len)
{
	int n;

	if (!c->ssl) {
		ssize_t r = recv(c->fd, buf, len, 0);

		return r < 0 ? (errno == EINTR ? -EAGAIN : -errno) : r;
	}
	n = SSL_read(c->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
	return n > 0 ? n : ssl_result(c, n, 0);
}

static ssize_t t_send(struct grpc_client *c, const void *buf, size_t len)
{
	int n;

	if (!c->ssl) {
		ssize_t r = send(c->fd, buf, len, MSG_NOSIGNAL);

		return r < 0 ? (errno == EINTR ? -EAGAIN : -errno) : r;
	}
	n = SSL_write(c->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
	return n > 0 ? n : ssl_result(c, n, -EPIPE);
}

/* ---- I/O ------------------------------------------------------------------------------------- */

static void flush(struct grpc_client *c)
{
	for (;;) {
		if (c->woff < c->wbuf.len) {
			ssize_t n = t_send(c, c->wbuf.buf + c->woff, c->wbuf.len - c->woff);

			if (n == -EAGAIN)
				return;
			if (n < 0) {
				fail(c, GRPC_STATUS_UNAVAILABLE, "send: %s", strerror((int)-n));
				return;
			}
			c->woff += (size_t)n;
			continue;
		}
		strbuf_reset(&c->wbuf);
		c->woff = 0;
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->h2, &data);

		if (n < 0) {
			fail(c, GRPC_STATUS_INTERNAL, "HTTP/2: %s", nghttp2_strerror((int)n));
			return;
		}
		if (n == 0)
			return;
		strbuf_add(&c->wbuf, data, (size_t)n);
	}
}

static int open_stream(struct grpc_client *c)
{
	const nghttp2_settings_entry settings[] = {
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, GRPC_STREAM_WINDOW},
	};
	nghttp2_session_callbacks *cbs;
	nghttp2_data_provider dp = {.read_callback = read_out};
#define HDR(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}
	nghttp2_nv hdrs[] = {
		HDR(":method", "POST"),
		HDR(":scheme", "http"),
		HDR(":path", c->path),
		HDR(":authority", c->authority),
		HDR("content-type", "application/grpc"),
		HDR("te", "trailers"),
		HDR("user-agent", "shunt-grpc/1"),
	};
#undef HDR

	if (nghttp2_session_callbacks_new(&cbs))
		return -ENOMEM;
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	int rc = nghttp2_session_client_new(&c->h2, cbs, c);

	nghttp2_session_callbacks_del(cbs);
	if (rc)
		return -ENOMEM;
	nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, settings,
				sizeof(settings) / sizeof(settings[0]));
	nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, GRPC_CONN_WINDOW);
	c->stream_id = nghttp2_submit_request(c->h2, NULL, hdrs, sizeof(hdrs) / sizeof(hdrs[0]),
					      &dp, NULL);
	if (c->stream_id < 0)
		return -EIO;
	return 0;
}

static void report_close(struct grpc_client *c)
{
	if (!c->close_pending || c->state == GC_CLOSED)
		return;
	c->state = GC_CLOSED;
	c->cb.on_close(c->ctx, c->close_status, c->close_message);
	/* c may be freed now. */
}

static void stream_up(struct grpc_client *c);

/* Drives the TLS handshake; the chain and the name were checked by OpenSSL (SSL_set1_host),
 * and the server must agree to h2 over ALPN, as gRPC requires. */
static void handshake(struct grpc_client *c)
{
	const unsigned char *alpn = NULL;
	unsigned alpn_len = 0;
	char why[160];
	int n = SSL_connect(c->ssl), e;

	if (n == 1) {
		SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
		if (alpn_len != 2 || memcmp(alpn, "h2", 2)) {
			fail(c, GRPC_STATUS_UNAVAILABLE,
			     "TLS: the server did not agree to ALPN \"h2\"");
			return;
		}
		c->ssl_want_write = false;
		stream_up(c);
		return;
	}
	e = SSL_get_error(c->ssl, n);
	c->ssl_want_write = e == SSL_ERROR_WANT_WRITE;
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return;
	if (SSL_get_verify_result(c->ssl) != X509_V_OK) {
		fail(c, GRPC_STATUS_UNAVAILABLE, "TLS: certificate verify failed: %s",
		     X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
		ERR_clear_error();
		return;
	}
	if (e == SSL_ERROR_SYSCALL && !ERR_peek_error()) {
		fail(c, GRPC_STATUS_UNAVAILABLE, "TLS handshake: %s",
		     errno ? strerror(errno) : "connection closed by the server");
		return;
	}
	fail(c, GRPC_STATUS_UNAVAILABLE, "TLS handshake: %s", ssl_reason(why, sizeof(why)));
}

static void connected(struct grpc_client *c)
{
	int err = 0, one = 1;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
		fail(c, GRPC_STATUS_UNAVAILABLE, "connect: %s", strerror(err ? err : errno));
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c->ssl) {
		c->state = GC_HANDSHAKE;
		handshake(c);
		return;
	}
	stream_up(c);
}

/* The transport is ready (TCP, or TLS with h2 agreed): HTTP/2 and the stream start. */
static void stream_up(struct grpc_client *c)
{
	if (open_stream(c)) {
		fail(c, GRPC_STATUS_INTERNAL, "cannot start the HTTP/2 session");
		return;
	}
	c->state = GC_OPEN;
	c->next_ping = c->now + c->keepalive_ms;
	flush(c);
	if (!c->close_pending && c->cb.on_open)
		c->cb.on_open(c->ctx);
}

void grpc_client_io(struct grpc_client *c, uint32_t events)
{
	uint8_t buf[16384];

	if (c->state == GC_CONNECTING) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			connected(c);
		report_close(c);
		return;
	}
	if (c->state == GC_HANDSHAKE) {
		handshake(c);
		if (c->state != GC_OPEN || c->close_pending) {
			report_close(c);
			return;
		}
		events |= EPOLLIN; /* the handshake may have read application data already */
	}
	if (c->state != GC_OPEN)
		return;
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		for (;;) {
			ssize_t n = t_recv(c, buf, sizeof(buf));

			if (n == -EAGAIN)
				break;
			if (n <= 0) {
				fail(c, GRPC_STATUS_UNAVAILABLE, "connection %s",
				     n ? strerror((int)-n) : "closed by the server");
				break;
			}
			ssize_t used = nghttp2_session_mem_recv(c->h2, buf, (size_t)n);

			/* Anything heard proves the connection alive: ping only after silence. */
			c->next_ping = c->now + c->keepalive_ms;

			if (used < 0) {
				fail(c, GRPC_STATUS_INTERNAL, "HTTP/2: %s",
				     nghttp2_strerror((int)used));
				break;
			}
			if (c->close_pending)
				break;
		}
	}
	if (!c->close_pending)
		flush(c);
	report_close(c);
}

int grpc_client_send(struct grpc_client *c, const uint8_t *msg, size_t len)
{
	uint8_t hdr[GRPC_FRAME_HDR];

	if (c->close_pending || c->state == GC_CLOSED || c->finishing)
		return -EPIPE;
	if (len > UINT32_MAX)
		return -EMSGSIZE;
	grpc_frame_header(hdr, (uint32_t)len);
	strbuf_add(&c->out, hdr, sizeof(hdr));
	strbuf_add(&c->out, msg, len);
	if (c->out.err)
		return -ENOMEM;
	if (c->state == GC_OPEN) {
		nghttp2_session_resume_data(c->h2, c->stream_id);
		flush(c);
	}
	return 0;
}

void grpc_client_finish(struct grpc_client *c)
{
	c->finishing = true;
	if (c->state == GC_OPEN) {
		nghttp2_session_resume_data(c->h2, c->stream_id);
		flush(c);
	}
}

int grpc_client_tick(struct grpc_client *c, uint64_t now_ms)
{
	uint64_t next = now_ms + 1000;

	c->now = now_ms;
	if (c->state == GC_CONNECTING && c->connect_deadline == UINT64_MAX)
		c->connect_deadline = now_ms + GRPC_CONNECT_TIMEOUT_MS;
	if ((c->state == GC_CONNECTING || c->state == GC_HANDSHAKE) &&
	    now_ms >= c->connect_deadline)
		fail(c, GRPC_STATUS_UNAVAILABLE, "connect timed out after %d ms",
		     GRPC_CONNECT_TIMEOUT_MS);
	if (c->state == GC_OPEN && c->ping_deadline && now_ms >= c->ping_deadline)
		fail(c, GRPC_STATUS_UNAVAILABLE, "keepalive ping not answered in %u ms",
		     c->ping_timeout_ms);
	/* One ping at a time: a new one must not move the deadline of the unanswered one. */
	if (c->state == GC_OPEN && !c->close_pending && !c->ping_deadline &&
	    now_ms >= c->next_ping) {
		nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL);
		c->ping_deadline = now_ms + c->ping_timeout_ms;
		c->next_ping = now_ms + c->keepalive_ms;
		flush(c);
	}
	if (c->state == GC_OPEN && c->next_ping < next)
		next = c->next_ping;
	if (c->state == GC_OPEN && c->ping_deadline && c->ping_deadline < next)
		next = c->ping_deadline;
	report_close(c);
	return next > now_ms ? (int)(next - now_ms) : 0;
}

int grpc_client_fd(const struct grpc_client *c)
{
	return c->fd;
}

uint32_t grpc_client_want(const struct grpc_client *c)
{
	if (c->state == GC_CONNECTING)
		return EPOLLOUT;
	if (c->state == GC_HANDSHAKE)
		return c->ssl_want_write ? EPOLLOUT : EPOLLIN;
	if (c->state != GC_OPEN)
		return 0;
	return EPOLLIN |
	       (c->ssl_want_write || c->woff < c->wbuf.len || nghttp2_session_want_write(c->h2)
			? EPOLLOUT
			: 0);
}

static int tls_setup(struct grpc_client *c, const struct grpc_client_opts *o)
{
	static const unsigned char h2[] = {2, 'h', '2'};
	const char *name = o->sni && *o->sni ? o->sni : o->host;

	c->ssl = SSL_new(o->tls);
	if (!c->ssl)
		return -ENOMEM;
	/* The server's certificate must name the SNI host (DNS SAN, or IP SAN for a literal). */
	if (!SSL_set_fd(c->ssl, c->fd) || SSL_set_alpn_protos(c->ssl, h2, sizeof(h2)) ||
	    !SSL_set1_host(c->ssl, name))
		return -ENOMEM;
	if (!strchr(name, ':') && strspn(name, "0123456789.") != strlen(name))
		SSL_set_tlsext_host_name(c->ssl, name);
	SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
	return 0;
}

int grpc_client_start(struct grpc_client **out, const struct grpc_client_opts *o,
		      const struct grpc_callbacks *cb, void *ctx)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	struct grpc_client *c;
	char port[8];
	int rc;

	if (!o->host || !o->port || !o->path || o->path[0] != '/' || !cb->on_message ||
	    !cb->on_close)
		return -EINVAL;
	snprintf(port, sizeof(port), "%u", o->port);
	/* Blocking resolution on the agent thread: acceptable for the rare (re)connect. */
	rc = getaddrinfo(o->host, port, &hints, &ai);
	if (rc)
		return -EHOSTUNREACH;
	c = calloc(1, sizeof(*c));
	if (!c) {
		freeaddrinfo(ai);
		return -ENOMEM;
	}
	c->fd = -1;
	c->cb = *cb;
	c->ctx = ctx;
	c->grpc_status = -1;
	c->keepalive_ms = o->keepalive_ms ? o->keepalive_ms : GRPC_KEEPALIVE_MS_DEF;
	c->ping_timeout_ms = o->ping_timeout_ms ? o->ping_timeout_ms : GRPC_PING_TIMEOUT_MS;
	grpc_decoder_init(&c->dec, o->max_message ? o->max_message : GRPC_MAX_MESSAGE_DEF);
	snprintf(c->path, sizeof(c->path), "%s", o->path);
	if (o->authority)
		snprintf(c->authority, sizeof(c->authority), "%s", o->authority);
	else
		snprintf(c->authority, sizeof(c->authority), "%s:%u", o->host, o->port);
	c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || (connect(c->fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS)) {
		rc = -errno;
		freeaddrinfo(ai);
		grpc_client_free(c);
		return rc;
	}
	freeaddrinfo(ai);
	if (o->tls) {
		rc = tls_setup(c, o);
		if (rc) {
			grpc_client_free(c);
			return rc;
		}
	}
	c->state = GC_CONNECTING;
	c->connect_deadline = UINT64_MAX; /* armed by the first tick */
	*out = c;
	return 0;
}

void grpc_client_free(struct grpc_client *c)
{
	if (!c)
		return;
	if (c->h2)
		nghttp2_session_del(c->h2);
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	grpc_decoder_free(&c->dec);
	strbuf_release(&c->out);
	strbuf_release(&c->wbuf);
	free(c);
}

/* ---- TLS context ---------------------------------------------------------------------------- */

static int tls_err(char *err, size_t errlen, const char *what)
{
	char why[160];

	snprintf(err, errlen, "%s: %s", what, ssl_reason(why, sizeof(why)));
	return -EINVAL;
}

/* PEM certificates from memory into the store. */
static int add_ca_pem(SSL_CTX *ctx, const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;
	int n = 0;

	if (!b)
		return -ENOMEM;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), x))
			n++;
		X509_free(x);
	}
	BIO_free(b);
	ERR_clear_error(); /* the read that ends the loop leaves "no start line" */
	return n ? 0 : -EINVAL;
}

static int use_pem_pair(SSL_CTX *ctx, const char *cert_pem, const char *key_pem)
{
	BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1);
	X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
	EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
	int ok = x && k && SSL_CTX_use_certificate(ctx, x) && SSL_CTX_use_PrivateKey(ctx, k);

	X509_free(x);
	EVP_PKEY_free(k);
	BIO_free(cb);
	BIO_free(kb);
	return ok ? 0 : -EINVAL;
}

struct ssl_ctx_st *grpc_tls_ctx_new(const struct grpc_tls_opts *t, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx) {
		tls_err(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (t->ca_file ? SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL) != 1
		       : !t->ca_pem || add_ca_pem(ctx, t->ca_pem)) {
		if (t->ca_file)
			tls_err(err, errlen, t->ca_file);
		else
			snprintf(err, errlen, "no PEM certificate in the inline trusted CA");
		goto fail;
	}
	if (t->cert_file || t->key_file) {
		if (!t->cert_file || !t->key_file ||
		    SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, t->key_file, SSL_FILETYPE_PEM) != 1) {
			tls_err(err, errlen, "client certificate or key");
			goto fail;
		}
	} else if (t->cert_pem || t->key_pem) {
		if (!t->cert_pem || !t->key_pem || use_pem_pair(ctx, t->cert_pem, t->key_pem)) {
			tls_err(err, errlen, "inline client certificate or key");
			goto fail;
		}
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void grpc_tls_ctx_free(struct ssl_ctx_st *ctx)
{
	SSL_CTX_free(ctx);
}
