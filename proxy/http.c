/* Outgoing header lists, hop-by-hop rules, x-forwarded-for, request ids, local replies. */
#include "proxy/http.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/addr.h"

void http_hdrs_reset(struct http_hdrs *h)
{
	h->n = 0;
	h->own_len = 0;
	h->overflow = false;
}

void http_hdrs_add(struct http_hdrs *h, const char *name, size_t nlen, const char *value,
		   size_t vlen)
{
	if (h->n >= HTTP_HDRS_MAX) {
		h->overflow = true;
		return;
	}
	h->v[h->n++] = (struct px_hdr){name, (uint32_t)nlen, value, (uint32_t)vlen};
}

void http_hdrs_addf(struct http_hdrs *h, const char *name, const char *fmt, ...)
{
	size_t room = HTTP_HDRS_OWN - h->own_len;
	char *dst = h->own + h->own_len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(dst, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room) {
		h->overflow = true;
		return;
	}
	h->own_len += (size_t)n + 1;
	http_hdrs_add(h, name, strlen(name), dst, (size_t)n);
}

int http_hdrs_find(const struct http_hdrs *h, const char *name)
{
	size_t nl = strlen(name);

	for (uint32_t i = 0; i < h->n; i++)
		if (h->v[i].name_len == nl && strncasecmp(h->v[i].name, name, nl) == 0)
			return (int)i;
	return -1;
}

void http_hdrs_remove(struct http_hdrs *h, const char *name)
{
	size_t nl = strlen(name);
	uint32_t k = 0;

	for (uint32_t i = 0; i < h->n; i++)
		if (!(h->v[i].name_len == nl && strncasecmp(h->v[i].name, name, nl) == 0))
			h->v[k++] = h->v[i];
	h->n = k;
}

bool http_is_hop_by_hop(const char *name, size_t len)
{
	static const char *const hop[] = {
		"connection", "keep-alive", "proxy-connection", "transfer-encoding",
		"upgrade",    "te",	    "trailer",		"proxy-authenticate"};

	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (strlen(hop[i]) == len && strncasecmp(hop[i], name, len) == 0)
			return true;
	return false;
}

bool http_connection_lists(const char *conn, size_t clen, const char *name, size_t nlen)
{
	size_t i = 0;

	while (i < clen) {
		size_t s, e;

		while (i < clen && (conn[i] == ' ' || conn[i] == '\t' || conn[i] == ','))
			i++;
		s = i;
		while (i < clen && conn[i] != ',')
			i++;
		e = i;
		while (e > s && (conn[e - 1] == ' ' || conn[e - 1] == '\t'))
			e--;
		if (e - s == nlen && strncasecmp(conn + s, name, nlen) == 0)
			return true;
	}
	return false;
}

void http_apply_mutation(struct http_hdrs *h, const struct px_header_mutation *m)
{
	for (uint32_t i = 0; i < m->nremove; i++)
		http_hdrs_remove(h, m->remove[i]);
	for (uint32_t i = 0; i < m->nadd; i++) {
		const struct px_header_value *v = &m->add[i];
		int at = http_hdrs_find(h, v->name);

		if (v->append == PX_ADD_IF_ABSENT && at >= 0)
			continue;
		if (v->append == PX_OVERWRITE_IF_EXISTS_OR_ADD)
			http_hdrs_remove(h, v->name);
		http_hdrs_add(h, v->name, strlen(v->name), v->value, strlen(v->value));
	}
}

uint64_t http_seed(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	x ^= x >> 31;
	return x ? x : 1;
}

/* 16 bytes from the xorshift64* stream rng. */
static void random16(uint8_t b[16], uint64_t *rng)
{
	for (int i = 0; i < 16; i += 8) {
		uint64_t x;

		*rng ^= *rng >> 12;
		*rng ^= *rng << 25;
		*rng ^= *rng >> 27;
		x = *rng * 0x2545F4914F6CDD1DULL;
		memcpy(b + i, &x, 8);
	}
}

void http_uuid(char *out, uint64_t *rng)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[16];

	random16(b, rng);
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	for (int i = 0, o = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[HTTP_UUID_LEN] = '\0';
}

static void base64(const uint8_t *in, size_t n, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	out[o] = '\0';
}

static struct px_hdr hdr_lit(const char *name, const char *value, size_t vlen)
{
	return (struct px_hdr){name, (uint32_t)strlen(name), value, (uint32_t)vlen};
}

uint32_t http_ext_connect_to_h1(const char *protocol, size_t plen, bool has_key, bool has_version,
				uint64_t *rng, char key[HTTP_WS_KEY_LEN + 1],
				struct px_hdr out[HTTP_EXT_CONNECT_HDRS], bool *key_made)
{
	uint32_t n = 0;

	out[n++] = hdr_lit("connection", "upgrade", 7);
	out[n++] = hdr_lit("upgrade", protocol, plen);
	*key_made = false;
	if (plen != 9 || strncasecmp(protocol, "websocket", 9))
		return n;
	if (!has_key) {
		uint8_t b[16];

		random16(b, rng);
		base64(b, sizeof(b), key);
		out[n++] = hdr_lit("sec-websocket-key", key, HTTP_WS_KEY_LEN);
		*key_made = true;
	}
	if (!has_version)
		out[n++] = hdr_lit("sec-websocket-version", "13", 2);
	return n;
}

int http_ext_connect_status(int h1_status)
{
	return h1_status == 101 ? 200 : h1_status;
}

bool http_xff(const char *incoming, size_t ilen, bool use_remote_address, bool skip_append,
	      const char *remote_ip, struct strbuf *out)
{
	if (!use_remote_address || skip_append || !remote_ip || !*remote_ip)
		return false;
	strbuf_reset(out);
	if (incoming && ilen) {
		strbuf_add(out, incoming, ilen);
		strbuf_adds(out, ",");
	}
	strbuf_adds(out, remote_ip);
	return true;
}

bool http_addr_internal(const struct shunt_addr *a)
{
	static const uint8_t loopback6[16] = {[15] = 1};
	const uint8_t *b = (const uint8_t *)a->ip;

	if (addr_is_v4(a)) {
		b += 12;
		return b[0] == 10 || (b[0] == 192 && b[1] == 168) ||
		       (b[0] == 172 && b[1] >= 16 && b[1] <= 31) ||
		       (b[0] == 127 && b[1] == 0 && b[2] == 0 && b[3] == 1);
	}
	return b[0] == 0xfd || !memcmp(b, loopback6, sizeof(loopback6));
}

bool http_xff_addr(const char *xff, size_t len, uint32_t nth, struct shunt_addr *out)
{
	const char *end;
	uint32_t i = 0;

	if (!xff)
		return false;
	for (end = xff + len; nth && end > xff;) {
		const char *p = end;

		while (p > xff && p[-1] != ',')
			p--;
		if (++i == nth) {
			const char *b = p, *e = end;
			char buf[ADDR_STRLEN];

			while (b < e && (*b == ' ' || *b == '\t'))
				b++;
			while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			if ((size_t)(e - b) >= sizeof(buf))
				return false;
			memcpy(buf, b, (size_t)(e - b));
			buf[e - b] = '\0';
			return addr_parse(out, buf) == 0;
		}
		end = p > xff ? p - 1 : xff;
	}
	return false;
}

bool http_request_internal(bool use_remote_address, uint32_t xff_trusted_hops, const char *xff,
			   size_t xff_len, const struct shunt_addr *remote)
{
	struct shunt_addr a;

	/* Our peer is the client, unless it says it forwards for someone: then there is more
	 * than one address in the chain, and Envoy calls that external. */
	if (use_remote_address)
		return !xff && http_addr_internal(remote);
	/* Otherwise the client is the one address x-forwarded-for holds; with trusted hops to
	 * skip, a single address leaves nothing to trust. */
	if (!xff || xff_trusted_hops || memchr(xff, ',', xff_len))
		return false;
	return http_xff_addr(xff, xff_len, 1, &a) && http_addr_internal(&a);
}

void http_details_token(char *details)
{
	for (char *p = details; *p; p++)
		if (isspace((unsigned char)*p))
			*p = '_';
}

/* The x-envoy-* request headers Envoy's HCM and router act on: consumed (the router takes them
 * off every request it forwards), sanitized (the HCM strips them from external requests), edge
 * (stripped only when the external request came straight from the client). */
enum {
	XE_CONSUMED = 1,
	XE_SANITIZED = 2,
	XE_EDGE = 4,
	XE_ALWAYS = 8
};

static const struct {
	const char *name;
	unsigned how;
} envoy_request_headers[] = {
	{"x-envoy-internal", XE_ALWAYS}, /* the HCM's own verdict replaces it */
	{"x-envoy-retry-on", XE_CONSUMED | XE_SANITIZED},
	{"x-envoy-retry-grpc-on", XE_CONSUMED | XE_SANITIZED},
	{"x-envoy-max-retries", XE_CONSUMED | XE_SANITIZED},
	{"x-envoy-retriable-status-codes", XE_CONSUMED | XE_SANITIZED},
	{"x-envoy-retriable-header-names", XE_CONSUMED | XE_SANITIZED},
	{"x-envoy-upstream-rq-timeout-ms", XE_CONSUMED | XE_SANITIZED},
	{"x-envoy-upstream-rq-per-try-timeout-ms", XE_CONSUMED | XE_SANITIZED},
	{"x-envoy-upstream-rq-timeout-alt-response", XE_CONSUMED | XE_SANITIZED},
	{"x-envoy-hedge-on-per-try-timeout", XE_CONSUMED | XE_SANITIZED},
	{"x-envoy-upstream-alt-stat-name", XE_CONSUMED | XE_SANITIZED},
	{"x-envoy-expected-rq-timeout-ms", XE_SANITIZED},
	{"x-envoy-force-trace", XE_SANITIZED},
	{"x-envoy-ip-tags", XE_SANITIZED},
	{"x-envoy-original-url", XE_SANITIZED},
	{"x-envoy-decorator-operation", XE_EDGE},
	{"x-envoy-downstream-service-cluster", XE_EDGE},
	{"x-envoy-downstream-service-node", XE_EDGE},
};

bool http_envoy_header_dropped(const char *name, size_t len, bool internal, bool edge)
{
	if (len < 8 || strncasecmp(name, "x-envoy-", 8))
		return false;
	for (size_t i = 0; i < sizeof(envoy_request_headers) / sizeof(envoy_request_headers[0]);
	     i++) {
		unsigned how = envoy_request_headers[i].how;

		if (strlen(envoy_request_headers[i].name) != len ||
		    strncasecmp(name, envoy_request_headers[i].name, len))
			continue;
		return (how & (XE_ALWAYS | XE_CONSUMED)) || (!internal && (how & XE_SANITIZED)) ||
		       (edge && (how & XE_EDGE));
	}
	return false;
}

static const struct {
	int status;
	const char *flag;
	const char *body;
} replies[] = {
	[HTTP_LR_NO_ROUTE] = {404, "NR", ""},
	[HTTP_LR_NO_CLUSTER] = {503, "NC", ""},
	[HTTP_LR_NO_HEALTHY] = {503, "UH", "no healthy upstream"},
	[HTTP_LR_CONNECT_FAILURE] = {503, "UF",
				     "upstream connect error or disconnect/reset before headers. "
				     "reset reason: connection failure"},
	[HTTP_LR_UPSTREAM_RESET] = {503, "UC",
				    "upstream connect error or disconnect/reset before headers. "
				    "reset reason: connection termination"},
	[HTTP_LR_TIMEOUT] = {504, "UT", "upstream request timeout"},
	[HTTP_LR_TIMEOUT_ALT] = {204, "UT", ""},
	[HTTP_LR_OVERFLOW] = {503, "UO",
			      "upstream connect error or disconnect/reset before "
			      "headers. reset reason: overflow"},
	[HTTP_LR_BAD_REQUEST] = {400, "DPE", "Bad Request"},
	[HTTP_LR_HEADERS_TOO_LARGE] = {431, "DPE", "Request Header Fields Too Large"},
	[HTTP_LR_URI_TOO_LONG] = {414, "DPE", "URI Too Long"},
	[HTTP_LR_VERSION] = {505, "DPE", "HTTP Version Not Supported"},
	[HTTP_LR_STREAM_IDLE] = {408, "SI", "stream timeout"},
	[HTTP_LR_UPGRADE_FAILED] = {403, "-", ""},
	[HTTP_LR_RBAC_DENIED] = {403, "RBAC", "RBAC: access denied"},
};

int http_local_reply_status(enum http_local_reply r)
{
	return replies[r].status;
}

const char *http_local_reply_flag(enum http_local_reply r)
{
	return replies[r].flag;
}

void http_local_reply_body(enum http_local_reply r, const char *reason, struct strbuf *out)
{
	if ((r == HTTP_LR_CONNECT_FAILURE || r == HTTP_LR_UPSTREAM_RESET) && reason && *reason) {
		strbuf_addf(out, "upstream connect error or disconnect/reset before headers. %s",
			    reason);
		return;
	}
	strbuf_adds(out, replies[r].body);
}

const char *http_reason_phrase(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 206:
		return "Partial Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 307:
		return "Temporary Redirect";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Payload Too Large";
	case 414:
		return "URI Too Long";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return status < 200   ? "Informational"
		       : status < 300 ? "Success"
		       : status < 400 ? "Redirection"
		       : status < 500 ? "Client Error"
				      : "Server Error";
	}
}

bool http_is_grpc(const char *ct, size_t len)
{
	static const char base[] = "application/grpc";
	size_t n = sizeof(base) - 1;

	if (!ct || len < n || strncasecmp(ct, base, n))
		return false;
	return len == n || ct[n] == '+' || ct[n] == ';';
}

int http_grpc_timeout_parse(const char *v, size_t len, uint64_t *ms)
{
	uint64_t n = 0;

	if (!v || len < 2 || len > HTTP_GRPC_TIMEOUT_DIGITS + 1)
		return -EINVAL;
	for (size_t i = 0; i + 1 < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -EINVAL;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	switch (v[len - 1]) {
	case 'H':
		*ms = n * 3600000;
		return 0;
	case 'M':
		*ms = n * 60000;
		return 0;
	case 'S':
		*ms = n * 1000;
		return 0;
	case 'm':
		*ms = n;
		return 0;
	case 'u':
		*ms = (n + 999) / 1000;
		return 0;
	case 'n':
		*ms = (n + 999999) / 1000000;
		return 0;
	default:
		return -EINVAL;
	}
}

size_t http_grpc_timeout_format(uint64_t ms, char out[HTTP_GRPC_TIMEOUT_DIGITS + 2])
{
	static const char units[] = "mSMH";
	static const uint64_t per_next[] = {1000, 60, 60};
	uint64_t t = ms;
	size_t u = 0;

	while (t > HTTP_GRPC_TIMEOUT_MAX) {
		if (u == 3) {
			t = HTTP_GRPC_TIMEOUT_MAX;
			break;
		}
		t /= per_next[u++];
	}
	return (size_t)snprintf(out, HTTP_GRPC_TIMEOUT_DIGITS + 2, "%llu%c", (unsigned long long)t,
				units[u]);
}

int http_grpc_status_of(int http_status)
{
	switch (http_status) {
	case 400:
		return 13; /* INTERNAL */
	case 401:
		return 16; /* UNAUTHENTICATED */
	case 403:
		return 7; /* PERMISSION_DENIED */
	case 404:
		return 12; /* UNIMPLEMENTED */
	case 429:
	case 502:
	case 503:
	case 504:
		return 14; /* UNAVAILABLE */
	default:
		return 2; /* UNKNOWN */
	}
}

int http_grpc_status_parse(const char *v, size_t len)
{
	int code = 0;

	if (!v || !len || len > 9) /* nine digits cannot overflow an int */
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		code = code * 10 + (v[i] - '0');
	}
	return code <= HTTP_GRPC_STATUS_MAX ? code : -1;
}

void http_grpc_message(const char *text, struct strbuf *out)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p < 0x20 || *p > 0x7e || *p == '%') {
			char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};

			strbuf_add(out, e, 3);
		} else {
			strbuf_addc(out, (char)*p);
		}
	}
}
