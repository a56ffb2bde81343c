/* The proxy's one funnel for socket I/O: plain recv/send, or OpenSSL on the same non-blocking
 * socket when the connection's transport is TLS.
 *
 * Every codec (tcp_proxy, h1_down, h2, upool) embeds a struct tlsio next to its fd and calls
 * these instead of recv/send. A plain connection (ssl == NULL) costs one inline branch. A TLS
 * connection behaves like a socket to its caller: -1 with errno EAGAIN when it must wait, 0 at
 * the peer's end, and the epoll edges it needs are mapped back to the caller's readable and
 * writable flags by tlsio_on_events (a read may need the socket writable and the other way
 * round). Ownership: the tlsio holds the SSL and one reference to its px_tls_ctx. */
#ifndef SHUNT_PROXY_TLSIO_H
#define SHUNT_PROXY_TLSIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "proxy/worker.h"

#define TLSIO_HANDSHAKE_TIMEOUT_MS 10000 /* a TLS handshake that takes longer is given up */
#define TLSIO_ERR_MAX		   160

struct px_tls_ctx;

enum tlsio_hs {
	TLSIO_HS_DONE,
	TLSIO_HS_AGAIN, /* waiting for the socket: call again on its next event */
	TLSIO_HS_FAILED,
};

/* Why a TLS handshake failed, for the ssl.* counters. */
enum tlsio_fail {
	TLSIO_FAIL_NONE,
	TLSIO_FAIL_CONNECTION, /* protocol error, reset, peer closed */
	TLSIO_FAIL_VERIFY_SAN, /* the peer's certificate names no accepted SAN */
	TLSIO_FAIL_NO_CERT,    /* a required peer certificate was not sent */
	TLSIO_FAIL_VERIFY,     /* the peer's chain does not verify (untrusted, expired...) */
};

struct tlsio {
	void *ssl; /* SSL *, NULL: plain */
	struct px_tls_ctx *ctx;
	bool rd_wants_write; /* the last read stopped for the socket to be writable */
	bool wr_wants_read;  /* the last write stopped for the socket to be readable */
	enum tlsio_fail fail;
	char err[TLSIO_ERR_MAX]; /* Envoy's TLS_error:... for access logs; "" when none */
};

/* Starts TLS on a connected socket: server side (accept) or client side (connect, with SNI
 * when sni is not NULL). Takes a reference to ctx. 0 or -ENOMEM. */
int tlsio_start(struct tlsio *t, struct px_tls_ctx *ctx, int fd, const char *sni);
/* Drives the handshake; on TLSIO_HS_FAILED, t->err and t->fail say why. */
enum tlsio_hs tlsio_handshake(struct tlsio *t);
/* The negotiated ALPN protocol ("" when none), NUL-terminated into buf. */
const char *tlsio_alpn(const struct tlsio *t, char *buf, size_t len);
/* The verified peer's identity as Envoy's RBAC reads it: its first URI SAN, else its first DNS
 * SAN, else its subject (RFC 2253), into buf. false: plain, or no verified peer certificate. */
bool tlsio_peer_principal(const struct tlsio *t, char *buf, size_t len);
/* The SNI the client asked for (owned by the session); NULL: plain or none. */
const char *tlsio_sni(const struct tlsio *t);
/* A client connection offers proto ("h2", "http/1.1") by ALPN instead of its context's list;
 * before the handshake. 0, -EINVAL (empty or too long), -ENOMEM. */
int tlsio_offer(struct tlsio *t, const char *proto);
/* Sends close_notify (best effort: the socket is non-blocking) before the caller shuts down
 * the write side or closes. */
void tlsio_shutdown(struct tlsio *t);
/* Counts a finished handshake (DONE or FAILED) in the worker's ssl_* counters. */
void tlsio_count(struct worker *wk, const struct tlsio *t, enum tlsio_hs r);
/* Frees the SSL and drops the context reference; the fd stays the caller's. */
void tlsio_free(struct tlsio *t);

ssize_t tlsio_ssl_recv(struct tlsio *t, void *buf, size_t len);
ssize_t tlsio_ssl_send(struct tlsio *t, const void *buf, size_t len);

static inline ssize_t tlsio_recv(struct tlsio *t, int fd, void *buf, size_t len)
{
	if (__builtin_expect(!t->ssl, 1))
		return recv(fd, buf, len, 0);
	return tlsio_ssl_recv(t, buf, len);
}

static inline ssize_t tlsio_send(struct tlsio *t, int fd, const void *buf, size_t len)
{
	if (__builtin_expect(!t->ssl, 1))
		return send(fd, buf, len, MSG_NOSIGNAL);
	return tlsio_ssl_send(t, buf, len);
}

/* recv_drained for the funnel: never for TLS, whose library may hold decrypted bytes (or a
 * whole further record) that no epoll edge will announce. */
static inline bool tlsio_drained(const struct tlsio *t, ssize_t got, size_t asked, bool rdhup,
				 bool sockmap)
{
	return !t->ssl && recv_drained(got, asked, rdhup, sockmap);
}

/* Maps an epoll event onto the caller's flags: a read waiting for the socket to drain goes on
 * when it is writable, a write waiting for a record goes on when it is readable. */
static inline void tlsio_on_events(const struct tlsio *t, uint32_t events, bool *readable,
				   bool *writable)
{
	if (__builtin_expect(!t->ssl, 1))
		return;
	if (t->rd_wants_write && (events & EPOLLOUT))
		*readable = true;
	if (t->wr_wants_read && (events & EPOLLIN))
		*writable = true;
}

#endif
