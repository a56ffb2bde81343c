/* TLS contexts: PEM loading with errors that name the field, ALPN, versions, peer verification
 * against trusted CAs and subject-alt-name matchers. */
#include <errno.h>
#include <pthread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/tls.h"

static int ctx_err(char *err, size_t errlen, const char *field, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char ossl[160] = "";

	if (e)
		ERR_error_string_n(e, ossl, sizeof(ossl));
	ERR_clear_error();
	snprintf(err, errlen, "%s: %s%s%s", field, what, e ? " (" : "", e ? ossl : "");
	if (e && strlen(err) + 1 < errlen)
		strcat(err, ")");
	return -EINVAL;
}

static BIO *pem_bio(const struct px_tls_pem *p)
{
	return BIO_new_mem_buf(p->data, (int)p->len);
}

static int load_chain(SSL_CTX *ctx, const struct px_tls_pem *p, char *err, size_t errlen)
{
	BIO *b = pem_bio(p);
	X509 *leaf = b ? PEM_read_bio_X509_AUX(b, NULL, NULL, NULL) : NULL;
	int rc = 0;

	if (!leaf || SSL_CTX_use_certificate(ctx, leaf) != 1) {
		rc = ctx_err(err, errlen, "certificate_chain", "not a PEM certificate");
		goto out;
	}
	for (X509 *ca; (ca = PEM_read_bio_X509(b, NULL, NULL, NULL));) {
		if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
			X509_free(ca);
			rc = ctx_err(err, errlen, "certificate_chain",
				     "cannot add an intermediate");
			goto out;
		}
	}
	ERR_clear_error(); /* the end of the PEM stream is reported as an error */
out:
	X509_free(leaf);
	BIO_free(b);
	return rc;
}

static int load_key(SSL_CTX *ctx, const struct px_tls_pem *p, char *err, size_t errlen)
{
	BIO *b = pem_bio(p);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	int rc = 0;

	if (!k)
		rc = ctx_err(err, errlen, "private_key", "not a PEM private key");
	else if (SSL_CTX_use_PrivateKey(ctx, k) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		rc = ctx_err(err, errlen, "private_key", "does not match certificate_chain");
	EVP_PKEY_free(k);
	BIO_free(b);
	return rc;
}

static int load_ca(SSL_CTX *ctx, const struct px_tls_pem *p, char *err, size_t errlen)
{
	BIO *b = pem_bio(p);
	X509_STORE *st = SSL_CTX_get_cert_store(ctx);
	int n = 0;

	for (X509 *ca; b && (ca = PEM_read_bio_X509(b, NULL, NULL, NULL)); n++) {
		X509_STORE_add_cert(st, ca);
		X509_free(ca);
	}
	BIO_free(b);
	if (!n)
		return ctx_err(err, errlen, "validation_context.trusted_ca",
			       "no PEM certificate in it");
	ERR_clear_error();
	return 0;
}

static bool str_match(const struct px_san_match *m, const char *s, size_t n)
{
	size_t vl = strlen(m->value);

	switch (m->kind) {
	case PX_SAN_EXACT:
		return n == vl && !memcmp(s, m->value, n);
	case PX_SAN_PREFIX:
		return n >= vl && !memcmp(s, m->value, vl);
	case PX_SAN_SUFFIX:
		return n >= vl && !memcmp(s + n - vl, m->value, vl);
	case PX_SAN_CONTAINS:
		for (size_t i = 0; i + vl <= n; i++)
			if (!memcmp(s + i, m->value, vl))
				return true;
		return false;
	}
	return false;
}

static int gen_type(enum px_san_type t)
{
	switch (t) {
	case PX_SAN_URI:
		return GEN_URI;
	case PX_SAN_EMAIL:
		return GEN_EMAIL;
	case PX_SAN_IP:
		return GEN_IPADD;
	default:
		return GEN_DNS;
	}
}

bool px_tls_san_ok(const struct px_tls_ctx *t, const void *x509)
{
	GENERAL_NAMES *names;
	bool ok = false;

	if (!t->nsans)
		return true;
	if (!x509)
		return false;
	names = X509_get_ext_d2i(x509, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && !ok; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		char ip[64];
		const char *s;
		size_t n;

		if (g->type == GEN_IPADD) {
			/* IP SANs are compared in their text form, as Envoy does. */
			const ASN1_OCTET_STRING *o = g->d.iPAddress;

			if (o->length != 4)
				continue; /* IPv6 text form is left for when it is needed */
			n = (size_t)snprintf(ip, sizeof(ip), "%u.%u.%u.%u", o->data[0], o->data[1],
					     o->data[2], o->data[3]);
			s = ip;
		} else if (g->type == GEN_DNS || g->type == GEN_URI || g->type == GEN_EMAIL) {
			s = (const char *)ASN1_STRING_get0_data(g->d.ia5);
			n = (size_t)ASN1_STRING_length(g->d.ia5);
		} else {
			continue;
		}
		for (uint32_t k = 0; k < t->nsans && !ok; k++)
			ok = gen_type(t->sans[k].type) == g->type && str_match(&t->sans[k], s, n);
	}
	GENERAL_NAMES_free(names);
	return ok;
}

static int ex_index = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void ex_index_init(void)
{
	ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int px_tls_ex_index(void)
{
	pthread_once(&ex_once, ex_index_init);
	return ex_index;
}

/* After the chain verified against trusted_ca, the leaf must also pass the SAN matchers: those
 * of the context the connection was started with (several share one SSL_CTX), else those of
 * the SSL_CTX's creator. */
static int verify_cb(int preverify, X509_STORE_CTX *sctx)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(sctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	const struct px_tls_ctx *t = SSL_get_ex_data(ssl, px_tls_ex_index());

	if (!t)
		t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	if (!preverify || X509_STORE_CTX_get_error_depth(sctx) != 0)
		return preverify;
	if (!t)
		return 0; /* nobody to say which names pass: fail closed */
	if (px_tls_san_ok(t, X509_STORE_CTX_get_current_cert(sctx)))
		return 1;
	X509_STORE_CTX_set_error(sctx, X509_V_ERR_HOSTNAME_MISMATCH);
	return 0;
}

/* The server picks the first of its own protocols the client offered. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	const struct px_tls_ctx *t = arg;

	(void)ssl;
	if (SSL_select_next_proto((unsigned char **)out, outlen, t->alpn_wire, t->alpn_wire_len, in,
				  inlen) == OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_OK;
	return SSL_TLSEXT_ERR_NOACK; /* no overlap: continue without ALPN, like Envoy */
}

static int alpn_wire(struct px_tls_ctx *t, const struct px_tls_cfg *cfg, char *err, size_t errlen)
{
	for (uint32_t i = 0; i < cfg->nalpn; i++) {
		size_t n = strlen(cfg->alpn[i]);

		if (!n || n > 255 || t->alpn_wire_len + 1 + n > sizeof(t->alpn_wire)) {
			snprintf(err, errlen, "alpn_protocols[%u]: empty or too long", i);
			return -EINVAL;
		}
		t->alpn_wire[t->alpn_wire_len++] = (uint8_t)n;
		memcpy(t->alpn_wire + t->alpn_wire_len, cfg->alpn[i], n);
		t->alpn_wire_len += (uint32_t)n;
	}
	return 0;
}

static int ctx_setup(struct px_tls_ctx *t, const struct px_tls_cfg *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx = t->ssl_ctx;
	int rc;

	SSL_CTX_set_app_data(ctx, t);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_min_proto_version(ctx, cfg->min_version ? cfg->min_version : TLS1_2_VERSION);
	if (cfg->max_version)
		SSL_CTX_set_max_proto_version(ctx, cfg->max_version);
	if (cfg->ciphers && SSL_CTX_set_cipher_list(ctx, cfg->ciphers) != 1)
		return ctx_err(err, errlen, "tls_params.cipher_suites", "no cipher OpenSSL knows");
	if (cfg->server && !cfg->cert_chain.data)
		return ctx_err(err, errlen, "tls_certificates", "a server needs a certificate");
	if (!cfg->cert_chain.data != !cfg->private_key.data)
		return ctx_err(err, errlen,
			       cfg->cert_chain.data ? "private_key" : "certificate_chain",
			       "missing (certificate_chain and private_key go together)");
	if (cfg->cert_chain.data) {
		rc = load_chain(ctx, &cfg->cert_chain, err, errlen);
		if (!rc)
			rc = load_key(ctx, &cfg->private_key, err, errlen);
		if (rc)
			return rc;
	}
	if (cfg->trusted_ca.data) {
		int mode = SSL_VERIFY_PEER;

		rc = load_ca(ctx, &cfg->trusted_ca, err, errlen);
		if (rc)
			return rc;
		if (cfg->server && cfg->require_client_certificate)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, verify_cb);
	} else if (cfg->require_client_certificate) {
		return ctx_err(err, errlen, "require_client_certificate",
			       "needs validation_context.trusted_ca");
	} else if (cfg->nsans) {
		return ctx_err(err, errlen, "match_typed_subject_alt_names",
			       "needs validation_context.trusted_ca");
	}
	rc = alpn_wire(t, cfg, err, errlen);
	if (rc)
		return rc;
	t->alpn_by_codec = !cfg->server && cfg->alpn_by_codec;
	if (cfg->server && t->alpn_wire_len)
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, t);
	else if (t->alpn_wire_len && SSL_CTX_set_alpn_protos(ctx, t->alpn_wire, t->alpn_wire_len))
		return ctx_err(err, errlen, "alpn_protocols", "refused");
	return 0;
}

static int copy_sans(struct px_tls_ctx *t, const struct px_san_match *sans, uint32_t nsans)
{
	if (!nsans)
		return 0;
	t->sans = calloc(nsans, sizeof(*t->sans));
	if (!t->sans)
		return -ENOMEM;
	t->nsans = nsans;
	for (uint32_t i = 0; i < nsans; i++) {
		t->sans[i] = sans[i];
		t->sans[i].value = strdup(sans[i].value);
		if (!t->sans[i].value)
			return -ENOMEM;
	}
	return 0;
}

int px_tls_ctx_share(struct px_tls_ctx *base, const struct px_san_match *sans, uint32_t nsans,
		     struct px_tls_ctx **out)
{
	struct px_tls_ctx *t;

	*out = NULL;
	if (base->server)
		return -EINVAL; /* its ALPN callback is the creator's */
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	atomic_init(&t->refs, 1);
	SSL_CTX_up_ref(base->ssl_ctx);
	t->ssl_ctx = base->ssl_ctx;
	memcpy(t->alpn_wire, base->alpn_wire, base->alpn_wire_len);
	t->alpn_wire_len = base->alpn_wire_len;
	t->alpn_by_codec = base->alpn_by_codec;
	if (copy_sans(t, sans, nsans)) {
		px_tls_ctx_put(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

int px_tls_ctx_new(const struct px_tls_cfg *cfg, struct px_tls_ctx **out, char *err, size_t errlen)
{
	struct px_tls_ctx *t = calloc(1, sizeof(*t));
	int rc;

	*out = NULL;
	if (!t)
		return -ENOMEM;
	atomic_init(&t->refs, 1);
	t->server = cfg->server;
	t->ssl_ctx = SSL_CTX_new(cfg->server ? TLS_server_method() : TLS_client_method());
	if (!t->ssl_ctx) {
		free(t);
		return ctx_err(err, errlen, "tls_context", "cannot create an SSL_CTX");
	}
	if (copy_sans(t, cfg->sans, cfg->nsans)) {
		px_tls_ctx_put(t);
		return -ENOMEM;
	}
	rc = ctx_setup(t, cfg, err, errlen);
	if (rc) {
		px_tls_ctx_put(t);
		return rc;
	}
	*out = t;
	return 0;
}

void px_tls_ctx_get(struct px_tls_ctx *t)
{
	atomic_fetch_add(&t->refs, 1);
}

void px_tls_ctx_put(struct px_tls_ctx *t)
{
	if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	/* Contexts sharing this SSL_CTX may outlive its creator. */
	if (t->ssl_ctx && SSL_CTX_get_app_data(t->ssl_ctx) == t)
		SSL_CTX_set_app_data(t->ssl_ctx, NULL);
	SSL_CTX_free(t->ssl_ctx);
	for (uint32_t i = 0; i < t->nsans; i++)
		free((char *)t->sans[i].value);
	free(t->sans);
	free(t);
}

int px_tls_version(int envoy_proto)
{
	static const int v[] = {0, TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION};

	return envoy_proto >= 0 && envoy_proto < (int)(sizeof(v) / sizeof(v[0])) ? v[envoy_proto]
										 : -1;
}
