/* Codec-neutral HTTP pieces of the connection manager: outgoing header lists and the rules that
 * build them (hop-by-hop headers, x-forwarded-for, x-request-id, header mutations, server),
 * and Envoy's local replies. */
#ifndef SHUNT_PROXY_HTTP_H
#define SHUNT_PROXY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/strbuf.h"
#include "proxy/route.h"

#define HTTP_HDRS_MAX 256  /* outgoing headers per head (incoming ones are limited below) */
#define HTTP_HDRS_OWN 8192 /* bytes of header values a list creates itself */
#define HTTP_UUID_LEN 36

/* An outgoing head's header list: spans that point into the incoming buffers, the snapshot's
 * config, or `own`, which holds the values this list formatted (fixed size, so pointers into
 * it never move). Reset per use; no allocation. */
struct http_hdrs {
	struct px_hdr v[HTTP_HDRS_MAX];
	uint32_t n;
	size_t own_len;
	bool overflow; /* a header did not fit: the head must be refused, not sent short */
	char own[HTTP_HDRS_OWN];
};

void http_hdrs_reset(struct http_hdrs *h);
/* Appends name: value; the bytes must outlive the list (or use http_hdrs_addf). */
void http_hdrs_add(struct http_hdrs *h, const char *name, size_t nlen, const char *value,
		   size_t vlen);
/* Appends a header whose value is formatted into the list's own storage. */
void http_hdrs_addf(struct http_hdrs *h, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Index of the first header with this (lower-case) name, or -1. */
int http_hdrs_find(const struct http_hdrs *h, const char *name);
void http_hdrs_remove(struct http_hdrs *h, const char *name);

/* Hop-by-hop headers (RFC 9110 7.6.1, plus Envoy's list) and the names listed in Connection:
 * none of them is forwarded. te: trailers is the exception callers handle. */
bool http_is_hop_by_hop(const char *name, size_t len);
/* True when the Connection header value lists `name` (comma separated, case-insensitive). */
bool http_connection_lists(const char *conn, size_t clen, const char *name, size_t nlen);

/* Applies add/remove in Envoy's order: route configuration, virtual host, route (the most
 * specific is applied last, so it wins). */
void http_apply_mutation(struct http_hdrs *h, const struct px_header_mutation *m);

/* A well-mixed seed from anything (splitmix64): nearby inputs give unrelated states. */
uint64_t http_seed(uint64_t x);
/* A random UUID v4 (x-request-id) into out[HTTP_UUID_LEN + 1]. */
void http_uuid(char *out, uint64_t *rng);

/* RFC 8441 extended CONNECT (an HTTP/2 CONNECT with :protocol) as Envoy hands it to an
 * HTTP/1.1 upstream: a GET with Connection: upgrade and Upgrade: <protocol>. HTTP/2 WebSocket
 * clients send no Sec-WebSocket-Key (RFC 8441 section 5), which HTTP/1.1 servers require: a
 * websocket one without a key gets a random one (into key) and, if it has none, version 13.
 * Writes the headers to add into out and returns how many; *key_made says whether a key was
 * made (then the upstream's Sec-WebSocket-Accept means nothing to the client). */
#define HTTP_EXT_CONNECT_HDRS 4
#define HTTP_WS_KEY_LEN	      24 /* base64 of 16 bytes */
uint32_t http_ext_connect_to_h1(const char *protocol, size_t plen, bool has_key, bool has_version,
				uint64_t *rng, char key[HTTP_WS_KEY_LEN + 1],
				struct px_hdr out[HTTP_EXT_CONNECT_HDRS], bool *key_made);
/* The status an HTTP/2 client gets for the HTTP/1.1 answer to its extended CONNECT: 101 opens
 * the tunnel and is 200 in HTTP/2 (RFC 8441 section 5); anything else stays as it is. */
int http_ext_connect_status(int h1_status);

/* x-forwarded-for as Envoy builds it: the incoming value, plus the downstream address when
 * use_remote_address. Writes the new value into out; returns false if unchanged. */
bool http_xff(const char *incoming, size_t ilen, bool use_remote_address, bool skip_append,
	      const char *remote_ip, struct strbuf *out);

/* Envoy's header sanitizing. An internal address is RFC 1918's 10/8, 172.16/12 and 192.168/16,
 * the loopback address 127.0.0.1 itself (not the rest of 127/8, as Envoy compares with
 * INADDR_LOOPBACK), fd00::/8 and ::1. */
struct shunt_addr;
bool http_addr_internal(const struct shunt_addr *a);
/* Whether Envoy's HCM calls a request internal, and so trusts the x-envoy-* headers it carries:
 * with use_remote_address, when it has no x-forwarded-for and the peer's address is internal;
 * without, when x-forwarded-for (xff, NULL if absent) is one internal address and no hops are
 * trusted. So a request without x-forwarded-for is external unless use_remote_address. */
bool http_request_internal(bool use_remote_address, uint32_t xff_trusted_hops, const char *xff,
			   size_t xff_len, const struct shunt_addr *remote);
/* The address nth from the right (1: the last) of an x-forwarded-for value of len bytes, blanks
 * around it ignored; false when there is no such entry or it is no address. */
bool http_xff_addr(const char *xff, size_t len, uint32_t nth, struct shunt_addr *out);
/* Response code details are one token in the access log, as Envoy makes them: each blank
 * (Envoy's " \t\f\v\n\r") becomes '_', in place. */
void http_details_token(char *details);
/* Whether an incoming request header stays off the upstream request: the x-envoy-* ones the
 * router consumes, those the HCM strips from external requests (!internal) and, from edge
 * requests (external and use_remote_address), the ones only a trusted proxy may set. */
bool http_envoy_header_dropped(const char *name, size_t len, bool internal, bool edge);

/* Envoy's local replies: the status and the exact body text users see. */
enum http_local_reply {
	HTTP_LR_NO_ROUTE,	   /* 404 NR */
	HTTP_LR_NO_CLUSTER,	   /* 503 NC */
	HTTP_LR_NO_HEALTHY,	   /* 503 UH: "no healthy upstream" */
	HTTP_LR_CONNECT_FAILURE,   /* 503 UF */
	HTTP_LR_UPSTREAM_RESET,	   /* 503 UC/UR */
	HTTP_LR_TIMEOUT,	   /* 504 UT: "upstream request timeout" */
	HTTP_LR_TIMEOUT_ALT,	   /* 204 UT, empty: x-envoy-upstream-rq-timeout-alt-response */
	HTTP_LR_OVERFLOW,	   /* 503 UO */
	HTTP_LR_BAD_REQUEST,	   /* 400 */
	HTTP_LR_HEADERS_TOO_LARGE, /* 431 */
	HTTP_LR_URI_TOO_LONG,	   /* 414 */
	HTTP_LR_VERSION,	   /* 505 */
	HTTP_LR_STREAM_IDLE,	   /* 408 SI */
	HTTP_LR_UPGRADE_FAILED,	   /* 403, empty: an upgrade no upgrade_configs allows */
	HTTP_LR_RBAC_DENIED,	   /* 403 RBAC: "RBAC: access denied" */
};

int http_local_reply_status(enum http_local_reply r);
/* The body. For resets and connect failures, reason is what follows Envoy's "before headers.":
 * "reset reason: connection failure, transport failure reason: ..." (NULL: the plain body). */
void http_local_reply_body(enum http_local_reply r, const char *reason, struct strbuf *out);
/* Envoy's response flag for a local reply. */
const char *http_local_reply_flag(enum http_local_reply r);
const char *http_reason_phrase(int status);

/* gRPC over HTTP. A request is gRPC when its content-type is application/grpc or starts with
 * application/grpc+ or application/grpc; (the gRPC spec's forms). */
bool http_is_grpc(const char *content_type, size_t len);
/* The grpc-timeout header: 1 to 8 digits and a unit (H M S m u n), in milliseconds, rounded up
 * so that a deadline under a millisecond is not "none". 0, or -EINVAL for anything else (then
 * the header is ignored, as gRPC servers and Envoy do). */
#define HTTP_GRPC_TIMEOUT_DIGITS 8
int http_grpc_timeout_parse(const char *v, size_t len, uint64_t *ms);
/* A deadline as a grpc-timeout value, as Envoy writes it: milliseconds, or the smallest larger
 * unit (S, M, H; rounded down) that fits the 8 digits, clipped at 99999999H. Returns the length. */
#define HTTP_GRPC_TIMEOUT_MAX 99999999ULL
size_t http_grpc_timeout_format(uint64_t ms, char out[HTTP_GRPC_TIMEOUT_DIGITS + 2]);
/* Envoy's (and the gRPC project's) mapping of an HTTP status to a gRPC status code, used when a
 * local reply answers a gRPC request. */
int http_grpc_status_of(int http_status);
/* A grpc-status value: its code (0 to HTTP_GRPC_STATUS_MAX), or -1 when it is no status code
 * (then no gRPC retry condition matches it). */
#define HTTP_GRPC_STATUS_MAX 16 /* UNAUTHENTICATED, the last one the spec defines */
int http_grpc_status_parse(const char *v, size_t len);
/* grpc-message: the text percent-encoded as the gRPC spec asks (bytes outside 0x20..0x7e, and
 * '%'). Appends to out. */
void http_grpc_message(const char *text, struct strbuf *out);

#endif
