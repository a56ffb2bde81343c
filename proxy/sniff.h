/* Listener-filter sniffers: what a connection speaks, read from its first bytes (peeked, never
 * consumed). A TLS ClientHello gives SNI and ALPN; plaintext HTTP gives h2c or HTTP/1.x. */
#ifndef SHUNT_PROXY_SNIFF_H
#define SHUNT_PROXY_SNIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parser results, as elsewhere in the proxy: >0 bytes used, or one of these. */
#define PX_SNIFF_INVALID    -1 /* not this protocol, or malformed */
#define PX_SNIFF_INCOMPLETE -2 /* need more bytes */

/* The largest ClientHello (all of its records) the inspector waits for; Envoy's
 * max_client_hello_size defaults to 64 KiB, real ones are under 2 KiB. */
#define PX_TLS_HELLO_MAX   16384
#define PX_TLS_RECORD_MAX  16384 /* a plaintext record's payload, RFC 8446 5.1 */
#define PX_TLS_ALPN_MAX	   16	 /* offered protocols kept; more are counted, not kept */
#define PX_TLS_SNI_MAX	   255	 /* a DNS name */
#define PX_HTTP_SNIFF_MAX  8192	 /* request line bytes the http inspector waits for */
#define PX_HTTP_METHOD_MAX 32

/* A span of the input (or of the caller's scratch when the hello spans records). */
struct px_span {
	const uint8_t *p;
	uint32_t len;
};

struct px_client_hello {
	struct px_span sni;		      /* len 0: no server_name extension */
	struct px_span alpn[PX_TLS_ALPN_MAX]; /* in offered order */
	uint32_t nalpn;
	uint32_t alpn_dropped; /* offered beyond PX_TLS_ALPN_MAX */
	bool has_alpn;
	uint16_t legacy_version;
};

/* Parses a TLS ClientHello from the start of a connection. Returns the bytes of the records
 * holding it (>0), PX_SNIFF_INCOMPLETE, or PX_SNIFF_INVALID (not TLS or malformed). A hello
 * split over several records is gathered into `scratch` (PX_TLS_HELLO_MAX bytes), and the
 * spans then point there; with a single record they point into `buf`. */
int px_tls_client_hello(const uint8_t *buf, size_t len, uint8_t *scratch,
			struct px_client_hello *ch);

enum px_http_proto {
	PX_HTTP_NONE,
	PX_HTTP_10,
	PX_HTTP_11,
	PX_HTTP_H2C, /* the prior-knowledge preface */
};

/* Recognises the HTTP/2 preface or an HTTP/1.x request line. Returns the bytes looked at (>0)
 * with *proto set, PX_SNIFF_INCOMPLETE, or PX_SNIFF_INVALID (not HTTP). */
int px_http_sniff(const uint8_t *buf, size_t len, enum px_http_proto *proto);
/* Envoy's application protocol names: "http/1.0", "http/1.1", "h2c"; NULL for none. */
const char *px_http_proto_name(enum px_http_proto p);

#endif
