/* TLS on the proxy's non-blocking sockets with OpenSSL (see tlsio.h). */
#include "proxy/tlsio.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "proxy/tls.h"

int tlsio_start(struct tlsio *t, struct px_tls_ctx *ctx, int fd, const char *sni)
{
	SSL *ssl = SSL_new(ctx->ssl_ctx);

	memset(t, 0, sizeof(*t));
	if (!ssl || SSL_set_fd(ssl, fd) != 1 || !SSL_set_ex_data(ssl, px_tls_ex_index(), ctx)) {
		SSL_free(ssl);
		ERR_clear_error();
		return -ENOMEM;
	}
	/* A peer that closes without close_notify ends the stream like a FIN, and neither side may
	 * renegotiate: both as in Envoy. */
	SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	if (ctx->server) {
		SSL_set_accept_state(ssl);
	} else {
		SSL_set_connect_state(ssl);
		if (sni && *sni)
			SSL_set_tlsext_host_name(ssl, sni);
	}
	px_tls_ctx_get(ctx);
	t->ctx = ctx;
	t->ssl = ssl;
	return 0;
}

int tlsio_offer(struct tlsio *t, const char *proto)
{
	unsigned char wire[1 + 255];
	size_t n = strlen(proto);

	if (!n || n > 255)
		return -EINVAL;
	wire[0] = (unsigned char)n;
	memcpy(wire + 1, proto, n);
	/* OpenSSL's odd convention: 0 is success here. */
	return SSL_set_alpn_protos(t->ssl, wire, (unsigned int)n + 1) ? -ENOMEM : 0;
}

/* Envoy writes TLS failures as TLS_error:<reason>; spaces would split the access-log field. */
static void set_err(struct tlsio *t, const char *reason, const char *detail)
{
	size_t n;

	n = (size_t)snprintf(t->err, sizeof(t->err), "TLS_error:%s%s%s", reason, detail ? ":" : "",
			     detail ? detail : "");
	for (size_t i = 0; i < n && i < sizeof(t->err); i++)
		if (t->err[i] == ' ')
			t->err[i] = '_';
}

/* Why the last operation failed, from OpenSSL's error queue and the verify result. */
static void classify(struct tlsio *t, int ssl_err)
{
	SSL *ssl = t->ssl;
	unsigned long e = ERR_peek_last_error();
	long v = SSL_get_verify_result(ssl);
	const char *reason = e ? ERR_reason_error_string(e) : NULL;

	if (ssl_err == SSL_ERROR_SYSCALL || !e) {
		t->fail = TLSIO_FAIL_CONNECTION;
		set_err(t, errno ? strerror(errno) : "connection closed during handshake", NULL);
	} else if (ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
		t->fail = TLSIO_FAIL_NO_CERT;
		set_err(t, reason ? reason : "peer did not return a certificate", NULL);
	} else if (v == X509_V_ERR_HOSTNAME_MISMATCH) {
		t->fail = TLSIO_FAIL_VERIFY_SAN;
		set_err(t, reason ? reason : "certificate verify failed",
			"no subject alt name matched");
	} else if (v != X509_V_OK) {
		t->fail = TLSIO_FAIL_VERIFY;
		set_err(t, reason ? reason : "certificate verify failed",
			X509_verify_cert_error_string(v));
	} else {
		t->fail = TLSIO_FAIL_CONNECTION;
		set_err(t, reason ? reason : "protocol error", NULL);
	}
	ERR_clear_error();
}

enum tlsio_hs tlsio_handshake(struct tlsio *t)
{
	int r, e;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(t->ssl);
	if (r == 1)
		return TLSIO_HS_DONE;
	e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return TLSIO_HS_AGAIN;
	classify(t, e);
	return TLSIO_HS_FAILED;
}

const char *tlsio_alpn(const struct tlsio *t, char *buf, size_t len)
{
	const unsigned char *p = NULL;
	unsigned int n = 0;

	if (t->ssl)
		SSL_get0_alpn_selected(t->ssl, &p, &n);
	snprintf(buf, len, "%.*s", (int)n, p ? (const char *)p : "");
	return buf;
}

static bool first_san(const GENERAL_NAMES *names, int type, char *buf, size_t len)
{
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);

		if (g->type != type)
			continue;
		snprintf(buf, len, "%.*s", ASN1_STRING_length(g->d.ia5),
			 (const char *)ASN1_STRING_get0_data(g->d.ia5));
		return true;
	}
	return false;
}

bool tlsio_peer_principal(const struct tlsio *t, char *buf, size_t len)
{
	X509 *peer;
	GENERAL_NAMES *names;
	bool named;

	if (!t->ssl || !len)
		return false;
	peer = SSL_get_peer_certificate(t->ssl);
	if (!peer)
		return false;
	/* Only a chain that verified authenticates anyone (a server context that asks for no
	 * certificate never gets one). */
	if (SSL_get_verify_result(t->ssl) != X509_V_OK) {
		X509_free(peer);
		return false;
	}
	names = X509_get_ext_d2i(peer, NID_subject_alt_name, NULL, NULL);
	named = first_san(names, GEN_URI, buf, len) || first_san(names, GEN_DNS, buf, len);
	GENERAL_NAMES_free(names);
	if (!named) {
		BIO *b = BIO_new(BIO_s_mem());
		int n = b ? X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253)
			  : -1;
		int got = n >= 0 && len > 1 ? BIO_read(b, buf, (int)len - 1) : 0;

		buf[got > 0 ? got : 0] = '\0';
		BIO_free(b);
	}
	X509_free(peer);
	return true;
}

const char *tlsio_sni(const struct tlsio *t)
{
	return t->ssl ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

/* What SSL_read/SSL_write's failure means to a caller that speaks recv/send. */
static ssize_t io_result(struct tlsio *t, int r, bool reading)
{
	int e = SSL_get_error(t->ssl, r);

	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		if (reading)
			t->rd_wants_write = e == SSL_ERROR_WANT_WRITE;
		else
			t->wr_wants_read = e == SSL_ERROR_WANT_READ;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (!errno)
			return 0; /* EOF without close_notify */
		return -1;
	default:
		classify(t, e);
		errno = EPROTO;
		return -1;
	}
}

ssize_t tlsio_ssl_recv(struct tlsio *t, void *buf, size_t len)
{
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_read(t->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (r > 0) {
		t->rd_wants_write = false;
		return r;
	}
	return io_result(t, r, true);
}

ssize_t tlsio_ssl_send(struct tlsio *t, const void *buf, size_t len)
{
	int r;

	if (!len)
		return 0;
	ERR_clear_error();
	errno = 0;
	/* SSL_MODE_ENABLE_PARTIAL_WRITE (set on every context): like send, r may be short. */
	r = SSL_write(t->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (r > 0) {
		t->wr_wants_read = false;
		return r;
	}
	/* A closed session or socket is an EOF to a read but an error to a write: like send,
	 * never 0 for bytes given (a caller's write loop would spin on it). */
	if (io_result(t, r, false) == 0)
		errno = EPIPE;
	return -1;
}

void tlsio_count(struct worker *wk, const struct tlsio *t, enum tlsio_hs r)
{
	if (r == TLSIO_HS_DONE) {
		STAT_INC(wk, ssl_handshake);
		return;
	}
	switch (t->fail) {
	case TLSIO_FAIL_VERIFY_SAN:
		STAT_INC(wk, ssl_fail_verify_san);
		break;
	case TLSIO_FAIL_NO_CERT:
		STAT_INC(wk, ssl_fail_verify_no_cert);
		break;
	case TLSIO_FAIL_VERIFY:
		STAT_INC(wk, ssl_fail_verify_error);
		break;
	default:
		STAT_INC(wk, ssl_connection_error);
	}
}

void tlsio_shutdown(struct tlsio *t)
{
	if (!t->ssl || !SSL_is_init_finished(t->ssl) ||
	    (SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN))
		return;
	ERR_clear_error();
	SSL_shutdown(t->ssl);
	ERR_clear_error();
}

void tlsio_free(struct tlsio *t)
{
	if (!t->ssl)
		return;
	SSL_free(t->ssl);
	px_tls_ctx_put(t->ctx);
	t->ssl = NULL;
	t->ctx = NULL;
}
