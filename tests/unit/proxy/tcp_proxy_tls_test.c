/* Tests TLS termination in proxy/tcp_proxy.c through real sockets on loopback: a tcp_proxy chain
 * with a server context completes a handshake with an OpenSSL client and carries bytes both ways
 * in the clear to a plain backend; a config swap that drops TLS leaves the open connection (and
 * its context, which the snapshot no longer holds) working while new connections follow the new
 * config; a client that fails the handshake is counted and closed. Certificates are made by the
 * openssl tool in a temporary directory. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/addr.h"
#include "lib/log.h"
#include "proxy/config.h"
#include "proxy/proxy.h"
#include "proxy/tls.h"
#include "tests/lib/loopback.h"
#include "tests/lib/pki.h"
#include "tests/lib/tap.h"

static char dir[] = "/tmp/shunt-tcp-tls-XXXXXX";
static volatile int stopping;
static struct lo_echo backend = {.greeting = 'B', .stopping = &stopping};
static __u16 backend_port;

static struct px_tls_pem pem(const char *name)
{
	return pki_pem(dir, name);
}

/* virtualInbound with one tcp_proxy chain to the backend, terminating TLS with tls (or not). */
static struct px_snapshot *snapshot(struct px_tls_ctx *tls)
{
	struct px_snapshot *s = px_snapshot_new();
	struct px_listener *l;
	struct px_cluster *c;
	const char *err;

	s->clusters = arena_new(&s->arena, struct px_cluster, 1);
	s->nclusters = 1;
	c = &s->clusters[0];
	c->name = "backend";
	c->type = PX_CLUSTER_STATIC;
	c->connect_timeout_ms = 1000;
	c->nendpoints = 1;
	c->endpoints = arena_new(&s->arena, struct px_endpoint, 1);
	addr_parse(&c->endpoints[0].addr, "127.0.0.1");
	c->endpoints[0].port = backend_port;
	c->endpoints[0].healthy = true;
	s->listeners = arena_new(&s->arena, struct px_listener, 1);
	s->nlisteners = 1;
	l = &s->listeners[0];
	l->name = PX_LISTENER_VIRTUAL_INBOUND;
	l->use_original_dst = true;
	l->chains = arena_new(&s->arena, struct px_filter_chain, 1);
	l->nchains = 1;
	l->chains[0].name = "chain";
	l->chains[0].kind = PX_NF_TCP_PROXY;
	l->chains[0].tcp.cluster = "backend";
	if (tls) {
		l->chains[0].transport.tls = tls;
		px_tls_ctx_get(tls);
		px_snapshot_own_tls(s, tls);
	}
	if (px_snapshot_finalize(s, &err)) {
		tap_diag("finalize: %s", err);
		px_snapshot_put(s);
		return NULL;
	}
	return s;
}

/* A blocking TLS client on a new connection; NULL when the handshake fails. */
static SSL *tls_dial(SSL_CTX *ctx, __u16 port, int *fdp)
{
	SSL *ssl = SSL_new(ctx);

	*fdp = lo_dial(port);
	SSL_set_fd(ssl, *fdp);
	if (SSL_connect(ssl) != 1) {
		SSL_free(ssl);
		close(*fdp);
		return NULL;
	}
	return ssl;
}

static bool echo(SSL *ssl, const char *msg)
{
	char buf[64] = "";
	size_t n = strlen(msg);
	int got = 0;

	if (SSL_write(ssl, msg, (int)n) != (int)n)
		return false;
	while (got < (int)n) {
		int r = SSL_read(ssl, buf + got, (int)(sizeof(buf) - 1 - (size_t)got));

		if (r <= 0)
			return false;
		got += r;
	}
	return !memcmp(buf, msg, n);
}

int main(void)
{
	struct proxy_config cfg = {.workers = 1,
				   .orig_dst_map_fd = -1,
				   .sock_pairs_fd = -1,
				   .msg_fallback_fd = -1,
				   .access_log_fd = -1};
	struct proxy_workload_desc d = {.name = "test", .listen_fds = {-1, -1, -1, -1}};
	struct px_tls_cfg scfg = {.server = true};
	struct px_tls_ctx *srv = NULL;
	struct proxy_stats st;
	struct proxy_workload *w;
	struct proxy *p;
	pthread_t bt;
	char err[PX_TLS_ERR_MAX], c = 0;
	__u16 port;
	int fd, fd2;
	SSL *ssl, *ssl2;

	if (geteuid())
		skip_all("needs root (the proxy enters the workload's netns with setns)");
	if (!mkdtemp(dir))
		skip_all("no temporary directory");
	if (pki_ca(dir, "ca") || pki_leaf(dir, "srv", "ca", "DNS:srv.test")) {
		ok(0, "the test certificate is made in %s (openssl)", dir);
		pki_remove(dir);
		return done_testing();
	}
	log_threshold = L_ERROR;
	scfg.cert_chain = pem("srv.crt");
	scfg.private_key = pem("srv.key");
	ok(!px_tls_ctx_new(&scfg, &srv, err, sizeof(err)), "a server context: %s", err);
	backend.lfd = lo_listen(&backend_port);
	pthread_create(&bt, NULL, lo_echo_main, &backend);
	d.listen_fds[0] = lo_listen(&port);
	fcntl(d.listen_fds[0], F_SETFL, O_NONBLOCK);
	d.kinds[0] = PROXY_LISTENER_INBOUND;
	d.netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	p = proxy_start(&cfg);
	w = p ? proxy_workload_add(p, &d) : NULL;
	ok(p && w, "proxy starts and takes the listener");

	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());

	SSL_CTX_load_verify_locations(cctx, NULL, NULL);
	{
		char path[300];

		snprintf(path, sizeof(path), "%s/ca.crt", dir);
		SSL_CTX_load_verify_locations(cctx, path, NULL);
		SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	}
	proxy_config_set(p, snapshot(srv));
	usleep(30 * 1000);
	ssl = tls_dial(cctx, port, &fd);
	ok(ssl != NULL, "a TLS client completes a verified handshake with the chain's certificate");
	ok(ssl && SSL_read(ssl, &c, 1) == 1 && c == 'B', "the plain backend's greeting arrives");
	ok(ssl && echo(ssl, "hello through TLS"), "bytes go both ways through the tcp_proxy");

	/* A new config without TLS: the open connection keeps its context. */
	proxy_config_set(p, snapshot(NULL));
	usleep(50 * 1000);
	is_int(atomic_load(&srv->refs), 3,
	       "after the swap: ours, the old snapshot's (its connection holds it) and the "
	       "connection's");
	ok(ssl && echo(ssl, "after the swap"),
	   "the open TLS connection still works after the swap");
	fd2 = lo_dial(port);
	ok(fd2 >= 0 && read(fd2, &c, 1) == 1 && c == 'B',
	   "a new connection follows the new config (plaintext)");
	close(fd2);
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
		close(fd);
	}
	for (int i = 0; i < 50 && atomic_load(&srv->refs) != 1; i++)
		usleep(10 * 1000);
	is_int(atomic_load(&srv->refs), 1, "once it closes, the old snapshot and the context go");

	/* A client that does not trust the certificate: the server side counts a failure. */
	proxy_config_set(p, snapshot(srv));
	usleep(30 * 1000);
	proxy_stats_get(p, &st);
	uint64_t before = st.ssl_connection_error, hs = st.ssl_handshake;
	SSL_CTX *bad = SSL_CTX_new(TLS_client_method());

	SSL_CTX_set_verify(bad, SSL_VERIFY_PEER, NULL); /* no CA: the chain fails verification */
	ssl2 = tls_dial(bad, port, &fd2);
	ok(!ssl2, "a client that rejects the certificate fails its handshake");
	usleep(50 * 1000);
	proxy_stats_get(p, &st);
	ok(st.ssl_connection_error == before + 1 && st.ssl_handshake == hs,
	   "the proxy counts ssl_connection_error for it (%llu -> %llu)",
	   (unsigned long long)before, (unsigned long long)st.ssl_connection_error);
	cmp_ge(st.ssl_handshake, 1, "ssl_handshake counted the good one");

	proxy_workload_remove(p, w);
	proxy_stop(p, 1000);
	stopping = 1;
	pthread_join(bt, NULL);
	px_tls_ctx_put(srv);
	SSL_CTX_free(cctx);
	SSL_CTX_free(bad);
	pki_remove(dir);
	return done_testing();
}
