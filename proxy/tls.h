/* TLS contexts for the proxy's transport sockets: one OpenSSL SSL_CTX per DownstreamTlsContext
 * or UpstreamTlsContext, built when a snapshot is translated (never on the data path) and
 * refcounted so that connections keep theirs across a config swap. */
#ifndef SHUNT_PROXY_TLS_H
#define SHUNT_PROXY_TLS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PX_TLS_ALPN_WIRE_MAX 1024 /* the ALPN list in wire form */
#define PX_TLS_ERR_MAX	     256

enum px_san_type {
	PX_SAN_DNS,
	PX_SAN_URI, /* e.g. spiffe://cluster.local/ns/default/sa/x */
	PX_SAN_EMAIL,
	PX_SAN_IP,
};

enum px_san_kind {
	PX_SAN_EXACT,
	PX_SAN_PREFIX,
	PX_SAN_SUFFIX,
	PX_SAN_CONTAINS,
};

/* One match_typed_subject_alt_names entry; the peer passes when any entry matches. */
struct px_san_match {
	enum px_san_type type;
	enum px_san_kind kind;
	const char *value;
};

/* PEM data (not NUL-terminated necessarily: with lengths). NULL data: absent. */
struct px_tls_pem {
	const char *data;
	size_t len;
};

/* What a context is built from; the translator fills it from the xDS resource. */
struct px_tls_cfg {
	bool server; /* downstream (terminate) or upstream (originate) */
	struct px_tls_pem cert_chain, private_key, trusted_ca;
	const char *const *alpn; /* to offer (client) or to accept, in preference order (server) */
	uint32_t nalpn;
	/* Client: the resource named no protocol, so alpn holds defaults and a connection may offer
	 * the one its codec speaks instead (tlsio_offer), as Envoy's pools do. */
	bool alpn_by_codec;
	bool require_client_certificate;
	const struct px_san_match *sans;
	uint32_t nsans;
	int min_version, max_version; /* TLS1_2_VERSION... 0: OpenSSL's default */
	const char *ciphers;	      /* tls_params.cipher_suites joined by ':' (TLS 1.2); NULL */
};

/* Owned by the snapshot(s) and connections that hold a reference. */
struct px_tls_ctx {
	atomic_int refs;
	void *ssl_ctx; /* SSL_CTX */
	bool server;
	struct px_san_match *sans; /* copies, owned */
	uint32_t nsans;
	uint8_t alpn_wire[PX_TLS_ALPN_WIRE_MAX];
	uint32_t alpn_wire_len;
	bool alpn_by_codec; /* from px_tls_cfg */
};

/* Builds a context; 0, or -EINVAL with err naming the field that was wrong ("private_key:
 * does not match certificate_chain"). */
int px_tls_ctx_new(const struct px_tls_cfg *cfg, struct px_tls_ctx **out, char *err, size_t errlen);
/* A client context with base's SSL_CTX (certificate, CA, ALPN, versions: built once) and its own
 * SAN matchers, which connections find through their SSL's px_tls_ex_index() data (set by
 * tlsio_start). 0, -ENOMEM, or -EINVAL for a server base. */
int px_tls_ctx_share(struct px_tls_ctx *base, const struct px_san_match *sans, uint32_t nsans,
		     struct px_tls_ctx **out);
/* The SSL ex_data index that holds the px_tls_ctx a connection was started with. */
int px_tls_ex_index(void);
void px_tls_ctx_get(struct px_tls_ctx *t);
void px_tls_ctx_put(struct px_tls_ctx *t);
/* Whether a peer certificate (X509 *) has a subject alt name any matcher accepts. */
bool px_tls_san_ok(const struct px_tls_ctx *t, const void *x509);
/* Envoy's TLS protocol enum (0 auto, 1 1.0, 2 1.1, 3 1.2, 4 1.3) to OpenSSL's version. */
int px_tls_version(int envoy_proto);

#endif
