/* Tests proxy/tls.c with certificates made by the openssl tool in a temporary directory:
 * contexts build or fail naming the field, handshakes over a socketpair negotiate ALPN,
 * require client certificates, and accept or refuse peers by URI and DNS SANs. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/tls.h"
#include "tests/lib/pki.h"
#include "tests/lib/tap.h"

static char dir[] = "/tmp/shunt-tls-test-XXXXXX";

/* Two CAs, and leaves signed by the first with the SANs the tests match on. */
static int make_pki(void)
{
	return pki_ca(dir, "ca") || pki_ca(dir, "other-ca") ||
	       pki_leaf(dir, "server", "ca", "DNS:server.test") ||
	       pki_leaf(dir, "client", "ca", "URI:spiffe://cluster.local/ns/default/sa/x") ||
	       pki_leaf(dir, "wrong", "ca", "URI:spiffe://cluster.local/ns/default/sa/y");
}

static struct px_tls_pem pem(const char *name)
{
	return pki_pem(dir, name);
}

/* Runs a handshake between two contexts over a non-blocking socketpair: 0 when both ends
 * finished, -1 when one failed. *alpn gets what the client negotiated. */
static int handshake(struct px_tls_ctx *srv, struct px_tls_ctx *cli, const char *sni, char *alpn)
{
	int sv[2], rc = -1;
	SSL *s, *c;
	bool sdone = false, cdone = false;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
		return -1;
	s = SSL_new(srv->ssl_ctx);
	c = SSL_new(cli->ssl_ctx);
	SSL_set_fd(s, sv[0]);
	SSL_set_fd(c, sv[1]);
	if (sni)
		SSL_set_tlsext_host_name(c, sni);
	for (int i = 0; i < 100 && !(sdone && cdone); i++) {
		int r;

		if (!sdone) {
			r = SSL_accept(s);
			if (r == 1)
				sdone = true;
			else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ &&
				 SSL_get_error(s, r) != SSL_ERROR_WANT_WRITE)
				goto out;
		}
		if (!cdone) {
			r = SSL_connect(c);
			if (r == 1)
				cdone = true;
			else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ &&
				 SSL_get_error(c, r) != SSL_ERROR_WANT_WRITE)
				goto out;
		}
	}
	/* TLS 1.3 servers learn of a refused client certificate only on the first read. */
	char b[1];

	if (SSL_write(c, "x", 1) != 1 || SSL_read(s, b, 1) != 1)
		goto out;
	rc = 0;
	const unsigned char *p;
	unsigned int n;

	SSL_get0_alpn_selected(c, &p, &n);
	snprintf(alpn, 32, "%.*s", (int)n, (const char *)p);
out:
	SSL_free(s);
	SSL_free(c);
	close(sv[0]);
	close(sv[1]);
	return rc;
}

static struct px_tls_ctx *ctx(const struct px_tls_cfg *cfg)
{
	struct px_tls_ctx *t;
	char err[PX_TLS_ERR_MAX];

	if (px_tls_ctx_new(cfg, &t, err, sizeof(err))) {
		tap_diag("  %s", err);
		return NULL;
	}
	return t;
}

static const char *h2_h1[] = {"h2", "http/1.1"};
static const char *h1_only[] = {"http/1.1"};
static const struct px_san_match sa_x = {PX_SAN_URI, PX_SAN_EXACT,
					 "spiffe://cluster.local/ns/default/sa/x"};
static const struct px_san_match ns_default = {PX_SAN_URI, PX_SAN_PREFIX,
					       "spiffe://cluster.local/ns/default/"};
static const struct px_san_match dns_server = {PX_SAN_DNS, PX_SAN_EXACT, "server.test"};

static void test_handshakes(void)
{
	struct px_tls_cfg scfg = {.server = true,
				  .cert_chain = pem("server.crt"),
				  .private_key = pem("server.key"),
				  .alpn = h2_h1,
				  .nalpn = 2};
	struct px_tls_cfg ccfg = {.trusted_ca = pem("ca.crt"),
				  .alpn = h2_h1,
				  .nalpn = 2,
				  .sans = &dns_server,
				  .nsans = 1};
	struct px_tls_ctx *srv = ctx(&scfg), *cli = ctx(&ccfg), *t;
	char alpn[32] = "";

	ok(srv && cli, "server and client contexts build");
	if (!srv || !cli)
		return;
	is_int(handshake(srv, cli, "server.test", alpn), 0, "handshake, server SAN verified");
	is_str(alpn, "h2", "ALPN h2 negotiated (the server's first the client offers)");
	ccfg.alpn = h1_only;
	ccfg.nalpn = 1;
	t = ctx(&ccfg);
	is_int(t ? handshake(srv, t, NULL, alpn) : -1, 0, "a client offering only http/1.1");
	is_str(alpn, "http/1.1", "gets http/1.1");
	px_tls_ctx_put(t);
	ccfg.trusted_ca = pem("other-ca.crt");
	t = ctx(&ccfg);
	is_int(t ? handshake(srv, t, NULL, alpn) : 0, -1, "a client trusting another CA refuses");
	px_tls_ctx_put(t);
	ccfg.trusted_ca = pem("ca.crt");
	struct px_san_match wrong_dns = {PX_SAN_DNS, PX_SAN_EXACT, "other.test"};

	ccfg.sans = &wrong_dns;
	t = ctx(&ccfg);
	is_int(t ? handshake(srv, t, NULL, alpn) : 0, -1, "a client wanting another SAN refuses");
	px_tls_ctx_put(t);
	px_tls_ctx_put(srv);
	px_tls_ctx_put(cli);

	/* mTLS: the server requires a client certificate from the CA with a SPIFFE URI SAN. */
	scfg.trusted_ca = pem("ca.crt");
	scfg.require_client_certificate = true;
	scfg.sans = &sa_x;
	scfg.nsans = 1;
	srv = ctx(&scfg);
	struct px_tls_cfg anon = {.trusted_ca = pem("ca.crt")};
	struct px_tls_cfg good = {.trusted_ca = pem("ca.crt"),
				  .cert_chain = pem("client.crt"),
				  .private_key = pem("client.key")};
	struct px_tls_cfg wrong = {.trusted_ca = pem("ca.crt"),
				   .cert_chain = pem("wrong.crt"),
				   .private_key = pem("wrong.key")};
	struct px_tls_ctx *ca = ctx(&anon), *cg = ctx(&good), *cw = ctx(&wrong);

	ok(srv && ca && cg && cw, "mTLS contexts build");
	if (srv && ca && cg && cw) {
		is_int(handshake(srv, ca, NULL, alpn), -1, "mTLS: no client certificate, refused");
		is_int(handshake(srv, cg, NULL, alpn), 0, "mTLS: sa/x's certificate accepted");
		is_int(handshake(srv, cw, NULL, alpn), -1, "mTLS: sa/y's certificate refused");
	}
	px_tls_ctx_put(srv);
	scfg.sans = &ns_default;
	srv = ctx(&scfg);
	is_int(srv && cw ? handshake(srv, cw, NULL, alpn) : -1, 0,
	       "mTLS: a prefix matcher for the namespace accepts sa/y");
	px_tls_ctx_put(srv);
	px_tls_ctx_put(ca);
	px_tls_ctx_put(cg);
	px_tls_ctx_put(cw);
}

static void test_errors(void)
{
	static const char garbage[] =
		"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n";
	static const struct {
		const char *name, *cert, *key, *ca;
		bool server, require;
		const char *want;
	} cases[] = {
		{"key of another certificate", "server.crt", "client.key", NULL, true, false,
		 "private_key: does not match certificate_chain"},
		{"garbage certificate", "-", "server.key", NULL, true, false,
		 "certificate_chain: not a PEM certificate"},
		{"a key that is a certificate", "server.crt", "server.crt", NULL, true, false,
		 "private_key: not a PEM private key"},
		{"no certificate on a server", NULL, NULL, NULL, true, false,
		 "tls_certificates: a server needs a certificate"},
		{"certificate without key", "server.crt", NULL, NULL, false, false,
		 "private_key: missing"},
		{"client certificate required without CA", "server.crt", "server.key", NULL, true,
		 true, "require_client_certificate: needs validation_context.trusted_ca"},
		{"garbage CA", "server.crt", "server.key", "-", true, false,
		 "validation_context.trusted_ca: no PEM certificate in it"},
	};
	struct px_tls_pem g = {garbage, sizeof(garbage) - 1};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct px_tls_cfg cfg = {.server = cases[i].server,
					 .require_client_certificate = cases[i].require};
		struct px_tls_ctx *t = NULL;
		char err[PX_TLS_ERR_MAX] = "";

		if (cases[i].cert)
			cfg.cert_chain = strcmp(cases[i].cert, "-") ? pem(cases[i].cert) : g;
		if (cases[i].key)
			cfg.private_key = pem(cases[i].key);
		if (cases[i].ca)
			cfg.trusted_ca = strcmp(cases[i].ca, "-") ? pem(cases[i].ca) : g;
		is_int(px_tls_ctx_new(&cfg, &t, err, sizeof(err)), -EINVAL, "%s: refused",
		       cases[i].name);
		ok(!t && !strncmp(err, cases[i].want, strlen(cases[i].want)), "%s: \"%s\"",
		   cases[i].name, err);
	}
	is_int(px_tls_version(3), TLS1_2_VERSION, "Envoy TLSv1_2 is OpenSSL's 1.2");
	is_int(px_tls_version(4), TLS1_3_VERSION, "Envoy TLSv1_3 is OpenSSL's 1.3");
	is_int(px_tls_version(9), -1, "an unknown version is refused");
}

int main(void)
{
	if (!mkdtemp(dir) || make_pki()) {
		ok(0, "the test certificates are made in %s (openssl)", dir);
		pki_remove(dir);
		return done_testing();
	}
	test_handshakes();
	test_errors();
	pki_remove(dir);
	return done_testing();
}
