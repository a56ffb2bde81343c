/* Tests proxy/tlsio.c over non-blocking socketpairs with real handshakes: the plain path is
 * recv/send, TLS reads and writes behave like a socket's (EAGAIN, short writes resumed, 0 at
 * close_notify), a read that must write first asks for EPOLLOUT, and failed handshakes say why.
 * Certificates are made by the openssl tool in a temporary directory. */
#include <errno.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/tls.h"
#include "proxy/tlsio.h"
#include "tests/lib/pki.h"
#include "tests/lib/tap.h"

static char dir[] = "/tmp/shunt-tlsio-test-XXXXXX";

static int make_pki(void)
{
	return pki_ca(dir, "ca") ||
	       pki_leaf(dir, "server", "ca", "URI:spiffe://cluster.local/ns/default/sa/server") ||
	       pki_leaf(dir, "client", "ca", "URI:spiffe://cluster.local/ns/default/sa/client");
}

static struct px_tls_pem pem(const char *name)
{
	return pki_pem(dir, name);
}

static const char *const alpn[] = {"h2", "http/1.1"};
static const struct px_san_match want_server = {PX_SAN_URI, PX_SAN_EXACT,
						"spiffe://cluster.local/ns/default/sa/server"};
static const struct px_san_match want_other = {PX_SAN_URI, PX_SAN_EXACT,
					       "spiffe://cluster.local/ns/default/sa/other"};

static struct px_tls_ctx *server_ctx(bool mtls)
{
	struct px_tls_cfg c = {.server = true,
			       .cert_chain = pem("server.crt"),
			       .private_key = pem("server.key"),
			       .alpn = alpn,
			       .nalpn = 2};
	struct px_tls_ctx *t = NULL;
	char err[PX_TLS_ERR_MAX];

	if (mtls) {
		c.trusted_ca = pem("ca.crt");
		c.require_client_certificate = true;
	}
	if (px_tls_ctx_new(&c, &t, err, sizeof(err)))
		tap_diag("server context: %s", err);
	return t;
}

static struct px_tls_ctx *client_ctx(const struct px_san_match *san, bool cert)
{
	struct px_tls_cfg c = {.trusted_ca = pem("ca.crt"), .alpn = alpn, .nalpn = 1};
	struct px_tls_ctx *t = NULL;
	char err[PX_TLS_ERR_MAX];

	if (san) {
		c.sans = san;
		c.nsans = 1;
	}
	if (cert) {
		c.cert_chain = pem("client.crt");
		c.private_key = pem("client.key");
	}
	if (px_tls_ctx_new(&c, &t, err, sizeof(err)))
		tap_diag("client context: %s", err);
	return t;
}

struct pair {
	int fd[2];
	struct tlsio s, c; /* s on fd[0], c on fd[1] */
	enum tlsio_hs shs, chs;
};

/* Both ends step their handshakes in turn, as two event loops would; the client offers its
 * context's ALPN list, or offer instead. */
static int pair_open_offer(struct pair *p, struct px_tls_ctx *srv, struct px_tls_ctx *cli,
			   const char *offer)
{
	memset(p, 0, sizeof(*p));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fd))
		return -1;
	if (tlsio_start(&p->s, srv, p->fd[0], NULL) ||
	    tlsio_start(&p->c, cli, p->fd[1], "server.test"))
		return -1;
	if (offer && tlsio_offer(&p->c, offer))
		return -1;
	p->shs = p->chs = TLSIO_HS_AGAIN;
	for (int i = 0; i < 50 && (p->shs == TLSIO_HS_AGAIN || p->chs == TLSIO_HS_AGAIN); i++) {
		if (p->chs == TLSIO_HS_AGAIN)
			p->chs = tlsio_handshake(&p->c);
		if (p->shs == TLSIO_HS_AGAIN)
			p->shs = tlsio_handshake(&p->s);
	}
	return p->shs == TLSIO_HS_DONE && p->chs == TLSIO_HS_DONE ? 0 : -1;
}

static int pair_open(struct pair *p, struct px_tls_ctx *srv, struct px_tls_ctx *cli)
{
	return pair_open_offer(p, srv, cli, NULL);
}

static void pair_close(struct pair *p)
{
	tlsio_free(&p->s);
	tlsio_free(&p->c);
	close(p->fd[0]);
	if (p->fd[1] >= 0)
		close(p->fd[1]);
}

static void test_plain(void)
{
	struct tlsio t = {0};
	int fd[2];
	char b[8];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd))
		return;
	is_int((int)tlsio_send(&t, fd[0], "abc", 3), 3, "plain: send is send");
	is_int((int)tlsio_recv(&t, fd[1], b, sizeof(b)), 3, "plain: recv is recv");
	ok(tlsio_recv(&t, fd[1], b, sizeof(b)) == -1 && errno == EAGAIN,
	   "plain: an empty socket is EAGAIN");
	ok(tlsio_drained(&t, 3, 8, false, false), "plain: a short read drains the socket");
	close(fd[0]);
	close(fd[1]);
}

static void test_data(void)
{
	struct px_tls_ctx *srv = server_ctx(false), *cli = client_ctx(&want_server, false);
	static char big[1 << 20], got[1 << 20];
	size_t sent = 0, recvd = 0;
	int shorts = 0, stalls = 0, sz = 4096;
	struct pair p;
	char a[16];

	if (!srv || !cli || pair_open(&p, srv, cli)) {
		ok(0, "handshake over a socketpair");
		return;
	}
	ok(1, "handshake over a socketpair, SAN checked");
	is_str(tlsio_alpn(&p.s, a, sizeof(a)), "h2", "the server selected h2 by ALPN");
	ok(!tlsio_drained(&p.s, 3, 8, false, false), "TLS: a short read never counts as drained");

	/* Small socket buffers: writes come back short or EAGAIN and resume where they were. */
	setsockopt(p.fd[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(p.fd[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + (i >> 9));
	for (int i = 0; i < 100000 && recvd < sizeof(big); i++) {
		if (sent < sizeof(big)) {
			ssize_t n = tlsio_send(&p.c, p.fd[1], big + sent, sizeof(big) - sent);

			if (n > 0 && (size_t)n < sizeof(big) - sent)
				shorts++;
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno == EAGAIN)
				stalls++;
			else if (n < 0)
				break;
		}
		ssize_t n = tlsio_recv(&p.s, p.fd[0], got + recvd, sizeof(got) - recvd);

		if (n > 0)
			recvd += (size_t)n;
		else if (n == 0 || errno != EAGAIN)
			break;
	}
	ok(recvd == sizeof(big) && !memcmp(big, got, sizeof(big)),
	   "1 MiB crosses intact through short writes and EAGAIN (%zu bytes)", recvd);
	ok(shorts + stalls > 0, "the writer saw short writes or EAGAIN (%d, %d)", shorts, stalls);

	/* close_notify is an orderly end: the reader gets 0. */
	tlsio_shutdown(&p.c);
	char b[8];
	ssize_t n = tlsio_recv(&p.s, p.fd[0], b, sizeof(b));

	is_int((int)n, 0, "close_notify reads as end of stream");

	/* Then the client's socket goes: a write is an error, never 0 (a caller's write loop
	 * took 0 as progress and spun). OpenSSL reports it as ZERO_RETURN once close_notify came. */
	close(p.fd[1]);
	p.fd[1] = -1;
	n = -2;
	for (int i = 0; i < 4 && n != -1; i++)
		n = tlsio_send(&p.s, p.fd[0], "after", 5);
	ok(n == -1 && errno == EPIPE, "a write after the peer closed fails with EPIPE (%zd, %s)", n,
	   strerror(errno));
	pair_close(&p);
	px_tls_ctx_put(srv);
	px_tls_ctx_put(cli);
}

/* A read that has to write: a TLS 1.2 server asks for renegotiation (HelloRequest) while the
 * client's send buffer is full. The client refuses, as Envoy does; OpenSSL 3 queues its
 * no_renegotiation alert for the next write instead of failing the read, so the read is a plain
 * EAGAIN. Where OpenSSL does ask for the socket to be writable during a read (WANT_WRITE), the
 * funnel must resume the read on EPOLLOUT: that mapping is checked on the flag itself. */
/* A connection offers the protocol its codec speaks instead of its context's list. */
static void test_offer(void)
{
	struct px_tls_ctx *srv = server_ctx(false), *cli = client_ctx(&want_server, false);
	struct pair p;
	char a[16];

	if (!srv || !cli) {
		ok(0, "contexts for the ALPN offer");
		return;
	}
	ok(!pair_open_offer(&p, srv, cli, "http/1.1"),
	   "handshake with a per-connection ALPN offer");
	is_str(tlsio_alpn(&p.s, a, sizeof(a)), "http/1.1",
	       "the server chose the offered http/1.1 over the context's h2");
	pair_close(&p);
	ok(!pair_open_offer(&p, srv, cli, "h2"), "and offering h2");
	is_str(tlsio_alpn(&p.c, a, sizeof(a)), "h2", "the client sees h2 chosen");
	is_int(tlsio_offer(&p.c, ""), -EINVAL, "an empty protocol is refused");
	pair_close(&p);
	px_tls_ctx_put(srv);
	px_tls_ctx_put(cli);
}

static void test_read_wants_write(void)
{
	struct px_tls_ctx *srv = server_ctx(false), *cli = client_ctx(NULL, false);
	bool readable = false, writable = false;
	static char fill[128];
	int sz = 4096, rounds = 0;
	struct pair p;
	char b[64];
	ssize_t n;

	if (!srv || !cli) {
		ok(0, "contexts for the renegotiation case");
		return;
	}
	SSL_CTX_set_max_proto_version(srv->ssl_ctx, TLS1_2_VERSION);
	if (pair_open(&p, srv, cli)) {
		ok(0, "TLS 1.2 handshake for the renegotiation case");
		return;
	}
	setsockopt(p.fd[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	while (rounds < 100000 && tlsio_send(&p.c, p.fd[1], fill, sizeof(fill)) > 0)
		rounds++;
	ok(rounds < 100000 && errno == EAGAIN, "the client's send buffer is full (%d records)",
	   rounds);
	SSL_clear_options(p.s.ssl, SSL_OP_NO_RENEGOTIATION); /* the test server's own choice */
	ok(SSL_renegotiate(p.s.ssl) == 1, "the server asks for renegotiation");
	SSL_do_handshake(p.s.ssl);
	n = tlsio_recv(&p.c, p.fd[1], b, sizeof(b));
	ok(n == -1 && errno == EAGAIN && !p.c.err[0],
	   "the client's read neither fails nor renegotiates: EAGAIN (%zd, %d)", n, errno);
	p.c.rd_wants_write = true;
	tlsio_on_events(&p.c, EPOLLIN, &readable, &writable);
	ok(!readable, "a read waiting for WANT_WRITE is not resumed by EPOLLIN");
	tlsio_on_events(&p.c, EPOLLOUT, &readable, &writable);
	ok(readable, "it is by EPOLLOUT");
	p.c.wr_wants_read = true;
	writable = false;
	tlsio_on_events(&p.c, EPOLLIN, &readable, &writable);
	ok(writable, "a write waiting for WANT_READ is resumed by EPOLLIN");
	pair_close(&p);
	px_tls_ctx_put(srv);
	px_tls_ctx_put(cli);
}

static void test_failures(void)
{
	struct px_tls_ctx *srv = server_ctx(false), *cli = client_ctx(&want_other, false);
	struct px_tls_ctx *msrv = server_ctx(true), *ncli = client_ctx(NULL, false);
	struct px_tls_ctx *mcli = client_ctx(NULL, true);
	struct pair p;

	ok(pair_open(&p, srv, cli) && p.chs == TLSIO_HS_FAILED &&
		   p.c.fail == TLSIO_FAIL_VERIFY_SAN && !strncmp(p.c.err, "TLS_error:", 10),
	   "a server certificate with the wrong SAN fails the client's handshake: %s", p.c.err);
	ok(!strchr(p.c.err, ' '), "the reason has no spaces (one access-log field)");
	pair_close(&p);

	ok(pair_open(&p, msrv, ncli) && p.shs == TLSIO_HS_FAILED && p.s.fail == TLSIO_FAIL_NO_CERT,
	   "mTLS: a client without a certificate fails the server's handshake: %s", p.s.err);
	pair_close(&p);

	ok(!pair_open(&p, msrv, mcli), "mTLS: a client with a certificate from the CA passes");
	pair_close(&p);

	/* The tlsio keeps its context alive: the snapshot may go first. */
	ok(!pair_open(&p, srv, mcli), "a connection is open");
	is_int(atomic_load(&srv->refs), 2, "it holds a reference to the server context");
	pair_close(&p);
	is_int(atomic_load(&srv->refs), 1, "and drops it when freed");

	/* Contexts sharing one SSL_CTX each check their own SANs, and outlive the creator. */
	struct px_tls_ctx *base = client_ctx(&want_server, false), *good = NULL, *bad = NULL;

	ok(base && !px_tls_ctx_share(base, &want_server, 1, &good) &&
		   !px_tls_ctx_share(base, &want_other, 1, &bad) && good->ssl_ctx == base->ssl_ctx,
	   "two contexts share the creator's SSL_CTX");
	px_tls_ctx_put(base);
	ok(good && !pair_open(&p, srv, good),
	   "the creator gone, a sharer with the right SAN passes");
	pair_close(&p);
	ok(bad && pair_open(&p, srv, bad) && p.c.fail == TLSIO_FAIL_VERIFY_SAN,
	   "a sharer with another SAN fails on its own matcher: %s", p.c.err);
	pair_close(&p);
	is_int(px_tls_ctx_share(srv, NULL, 0, &base), -EINVAL,
	       "a server context is not shared (its ALPN callback is its creator's)");
	px_tls_ctx_put(good);
	px_tls_ctx_put(bad);

	px_tls_ctx_put(srv);
	px_tls_ctx_put(cli);
	px_tls_ctx_put(msrv);
	px_tls_ctx_put(ncli);
	px_tls_ctx_put(mcli);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as shuntd does: a write to a closed socket is EPIPE */
	if (!mkdtemp(dir) || make_pki()) {
		ok(0, "the test certificates are made in %s (openssl)", dir);
		pki_remove(dir);
		return done_testing();
	}
	test_plain();
	test_data();
	test_offer();
	test_read_wants_write();
	test_failures();
	pki_remove(dir);
	return done_testing();
}
