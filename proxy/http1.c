/* HTTP/1.1 codec: strict RFC 9112 head parsing, framing semantics, chunked decoding/encoding. */
#include "proxy/http1.h"

#include <string.h>

/* Character classes, one bit each, so that each inner loop is one table lookup per byte. */
#define CC_TCHAR    0x01 /* token: methods, field names, codings */
#define CC_TARGET   0x02 /* request-target: VCHAR */
#define CC_FIELD    0x04 /* field value and reason phrase: VCHAR, obs-text, SP, HTAB */
#define CC_HOST	    0x08 /* authority: unreserved, sub-delims, pct, ':' and IP-literal brackets */
#define CC_HEX	    0x10
#define CC_QDTEXT   0x20 /* inside a quoted-string */

#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_TCHAR(c)                                                                                \
	(IS_ALPHA(c) || IS_DIGIT(c) || (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' ||     \
	 (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' ||      \
	 (c) == '^' || (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
#define IS_VCHAR(c) ((c) >= 0x21 && (c) <= 0x7e)
#define IS_FIELD(c) (IS_VCHAR(c) || (c) >= 0x80 || (c) == ' ' || (c) == '\t')
#define IS_HOST(c)                                                                                 \
	(IS_ALPHA(c) || IS_DIGIT(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~' ||     \
	 (c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' || (c) == ')' ||      \
	 (c) == '*' || (c) == '+' || (c) == ',' || (c) == ';' || (c) == '=' || (c) == '%' ||       \
	 (c) == ':' || (c) == '[' || (c) == ']')
#define IS_HEX(c)    (IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
#define IS_QDTEXT(c) (IS_FIELD(c) && (c) != '"' && (c) != '\\')

#define CC(c)                                                                                      \
	((IS_TCHAR(c) ? CC_TCHAR : 0) | (IS_VCHAR(c) ? CC_TARGET : 0) |                            \
	 (IS_FIELD(c) ? CC_FIELD : 0) | (IS_HOST(c) ? CC_HOST : 0) | (IS_HEX(c) ? CC_HEX : 0) |    \
	 (IS_QDTEXT(c) ? CC_QDTEXT : 0))
#define CC4(c)	CC(c), CC((c) + 1), CC((c) + 2), CC((c) + 3)
#define CC16(c) CC4(c), CC4((c) + 4), CC4((c) + 8), CC4((c) + 12)
#define CC64(c) CC16(c), CC16((c) + 16), CC16((c) + 32), CC16((c) + 48)

static const uint8_t cclass[256] = {CC64(0), CC64(64), CC64(128), CC64(192)};

static inline bool is(char c, uint8_t cls)
{
	return cclass[(uint8_t)c] & cls;
}

static inline bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Head parser stages. */
enum {
	ST_START,
	ST_FIELDS,
	ST_DONE,
	ST_FAILED
};

/* What field lines said, gathered in http1_parser.flags. */
#define F_CL		  0x0001
#define F_TE		  0x0002
#define F_TE_CHUNKED	  0x0004 /* chunked appeared in Transfer-Encoding */
#define F_TE_LAST_CHUNKED 0x0008 /* ... and is the final coding so far */
#define F_CONN_CLOSE	  0x0010
#define F_CONN_KEEPALIVE  0x0020
#define F_CONN_UPGRADE	  0x0040
#define F_UPGRADE	  0x0080
#define F_HOST		  0x0100
#define F_EXPECT_CONTINUE 0x0200

static const struct {
	short status;
	bool smuggling;
	const char *text;
} err_info[HTTP1_E__COUNT] = {
	[HTTP1_OK] = {200, false, "ok"},
	[HTTP1_E_REQUEST_LINE] = {400, false, "malformed request line"},
	[HTTP1_E_METHOD] = {400, false, "invalid method"},
	[HTTP1_E_TARGET] = {400, false, "invalid request target"},
	[HTTP1_E_TARGET_FORM] = {400, false, "request target form not allowed for this method"},
	[HTTP1_E_VERSION] = {400, false, "malformed HTTP version"},
	[HTTP1_E_VERSION_UNSUPPORTED] = {505, false, "HTTP version not supported"},
	[HTTP1_E_STATUS_LINE] = {400, false, "malformed status line"},
	[HTTP1_E_STATUS] = {400, false, "invalid status code"},
	[HTTP1_E_BARE_CR] = {400, true, "CR not followed by LF"},
	[HTTP1_E_OBS_FOLD] = {400, true, "obsolete line folding"},
	[HTTP1_E_HEADER_NAME] = {400, false, "invalid header name"},
	[HTTP1_E_HEADER_NAME_SPACE] = {400, true, "whitespace between header name and colon"},
	[HTTP1_E_HEADER_NO_COLON] = {400, false, "header line without colon"},
	[HTTP1_E_HEADER_VALUE] = {400, false, "invalid character in header value"},
	[HTTP1_E_HOST_MISSING] = {400, false, "missing Host header"},
	[HTTP1_E_HOST_REPEATED] = {400, true, "more than one Host header"},
	[HTTP1_E_HOST_INVALID] = {400, false, "invalid Host header"},
	[HTTP1_E_CONTENT_LENGTH] = {400, true, "invalid Content-Length"},
	[HTTP1_E_CL_CONFLICT] = {400, true, "conflicting Content-Length values"},
	[HTTP1_E_TE_CL] = {400, true, "both Transfer-Encoding and Content-Length"},
	[HTTP1_E_TE_HTTP10] = {400, true, "Transfer-Encoding in an HTTP/1.0 message"},
	[HTTP1_E_TE_NOT_CHUNKED] = {400, true, "Transfer-Encoding does not end in chunked"},
	[HTTP1_E_TE_INVALID] = {400, true, "malformed Transfer-Encoding"},
	[HTTP1_E_CONNECT_BODY] = {400, true, "CONNECT request with a body"},
	[HTTP1_E_URI_TOO_LONG] = {414, false, "request line too long"},
	[HTTP1_E_HEAD_TOO_LARGE] = {431, false, "header section too large"},
	[HTTP1_E_TOO_MANY_HEADERS] = {431, false, "too many header fields"},
	[HTTP1_E_CHUNK_SIZE] = {400, true, "invalid chunk size"},
	[HTTP1_E_CHUNK_EXT] = {400, true, "invalid chunk extension"},
	[HTTP1_E_CHUNK_LINE_TOO_LONG] = {400, false, "chunk size line too long"},
	[HTTP1_E_CHUNK_DATA_END] = {400, true, "chunk data not followed by CRLF"},
};

int http1_err_status(enum http1_err err)
{
	return (unsigned)err < HTTP1_E__COUNT ? err_info[err].status : 400;
}

const char *http1_err_text(enum http1_err err)
{
	return (unsigned)err < HTTP1_E__COUNT ? err_info[err].text : "?";
}

bool http1_err_is_smuggling(enum http1_err err)
{
	return (unsigned)err < HTTP1_E__COUNT && err_info[err].smuggling;
}

static const struct {
	uint8_t len;
	char name[8];
} methods[] = {
	[HTTP1_METHOD_OTHER] = {0, ""},		 [HTTP1_METHOD_GET] = {3, "GET"},
	[HTTP1_METHOD_HEAD] = {4, "HEAD"},	 [HTTP1_METHOD_POST] = {4, "POST"},
	[HTTP1_METHOD_PUT] = {3, "PUT"},	 [HTTP1_METHOD_DELETE] = {6, "DELETE"},
	[HTTP1_METHOD_CONNECT] = {7, "CONNECT"}, [HTTP1_METHOD_OPTIONS] = {7, "OPTIONS"},
	[HTTP1_METHOD_TRACE] = {5, "TRACE"},	 [HTTP1_METHOD_PATCH] = {5, "PATCH"},
};

const char *http1_method_name(enum http1_method m)
{
	return (unsigned)m <= HTTP1_METHOD_PATCH ? methods[m].name : "";
}

static enum http1_method method_lookup(const char *s, size_t n)
{
	for (unsigned m = HTTP1_METHOD_GET; m <= HTTP1_METHOD_PATCH; m++)
		if (methods[m].len == n && memcmp(methods[m].name, s, n) == 0)
			return m;
	return HTTP1_METHOD_OTHER;
}

static inline char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static bool mem_ieq(const char *s, size_t n, const char *low)
{
	for (size_t i = 0; i < n; i++)
		if (lower(s[i]) != low[i] || !low[i])
			return false;
	return low[n] == '\0';
}

bool http1_span_ieq(struct http1_span s, const char *low)
{
	return mem_ieq(s.p, s.len, low);
}

void http1_limits_resolve(struct http1_limits *out, const struct http1_limits *lim)
{
	static const struct http1_limits none;

	if (!lim)
		lim = &none;
	out->max_head_bytes = lim->max_head_bytes ? lim->max_head_bytes : HTTP1_MAX_HEAD_BYTES_DEF;
	if (out->max_head_bytes > HTTP1_MAX_HEAD_BYTES_CAP)
		out->max_head_bytes = HTTP1_MAX_HEAD_BYTES_CAP;
	out->max_headers = lim->max_headers ? lim->max_headers : HTTP1_MAX_HEADERS_DEF;
	out->max_request_line =
		lim->max_request_line ? lim->max_request_line : HTTP1_MAX_REQUEST_LINE_DEF;
	if (out->max_request_line > HTTP1_MAX_HEAD_BYTES_CAP)
		out->max_request_line = HTTP1_MAX_HEAD_BYTES_CAP;
}

static void parser_begin(struct http1_parser *p, const struct http1_limits *lim,
			 struct http1_header *hdrs, size_t cap)
{
	memset(p, 0, sizeof(*p));
	http1_limits_resolve(&p->lim, lim);
	p->hdrs = hdrs;
	p->hdr_cap = cap < p->lim.max_headers ? (uint32_t)cap : p->lim.max_headers;
}

void http1_request_begin(struct http1_parser *p, const struct http1_limits *lim,
			 struct http1_header *hdrs, size_t cap)
{
	parser_begin(p, lim, hdrs, cap);
}

void http1_response_begin(struct http1_parser *p, const struct http1_limits *lim,
			  struct http1_header *hdrs, size_t cap, enum http1_method req_method)
{
	parser_begin(p, lim, hdrs, cap);
	p->response = true;
	p->req_method = req_method;
}

static int fail(struct http1_parser *p, enum http1_err err, size_t off)
{
	p->err = err;
	p->err_off = (uint32_t)off;
	p->stage = ST_FAILED;
	return HTTP1_INVALID;
}

/* Word-at-a-time tests for the long runs (values, targets): does any byte of w lie below n
 * (n <= 128), or equal the byte b? Exact as to whether one exists, which is all we ask. */
#define ONES	       0x0101010101010101ULL
#define HIGHS	       0x8080808080808080ULL
#define HAS_LESS(w, n) (((w)-ONES * (n)) & ~(w)&HIGHS)
#define HAS_BYTE(w, b) HAS_LESS((w) ^ (ONES * (b)), 1)

/* First byte of [s, e) that is not field content, or e. Words with a control byte or DEL are
 * finished byte by byte (HTAB is allowed, and it is where the error is). */
static const char *skip_field(const char *s, const char *e)
{
	while (e - s >= 8) {
		uint64_t w;

		memcpy(&w, s, 8);
		if (HAS_LESS(w, 0x20) | HAS_BYTE(w, 0x7f))
			break;
		s += 8;
	}
	while (s < e && is(*s, CC_FIELD))
		s++;
	return s;
}

/* First byte of [s, e) that is not VCHAR: the SP ending a request-target, or an error. */
static const char *skip_target(const char *s, const char *e)
{
	while (e - s >= 8) {
		uint64_t w;

		memcpy(&w, s, 8);
		if ((w & HIGHS) | HAS_LESS(w, 0x21) | HAS_BYTE(w, 0x7f))
			break;
		s += 8;
	}
	while (s < e && is(*s, CC_TARGET))
		s++;
	return s;
}

static const char *skip_class(const char *s, const char *e, uint8_t cls)
{
	while (s < e && is(*s, cls))
		s++;
	return s;
}

/* The error for a byte that broke the grammar: a stray CR is worth naming on its own. */
static enum http1_err bad_byte(const char *at, const char *e, enum http1_err otherwise)
{
	return at < e && *at == '\r' ? HTTP1_E_BARE_CR : otherwise;
}

/* "HTTP/" DIGIT "." DIGIT at s; needs 8 bytes. */
static enum http1_err parse_version(const char *s, uint8_t *minor)
{
	if (memcmp(s, "HTTP/", 5) != 0 || !IS_DIGIT(s[5]) || s[6] != '.' || !IS_DIGIT(s[7]))
		return HTTP1_E_VERSION;
	/* Only major version 1 speaks this grammar; 0.9 and 2+ get a 505. */
	if (s[5] != '1')
		return HTTP1_E_VERSION_UNSUPPORTED;
	*minor = (uint8_t)(s[7] - '0');
	return HTTP1_OK;
}

/* host [":" port], as in authority-form and the authority of absolute-form; userinfo ('@') is
 * refused as RFC 9110 section 4.2.4 asks. With need_port, the port must be there. */
static bool authority_ok(const char *s, size_t n, bool need_port)
{
	const char *e = s + n, *colon = NULL;

	if (n == 0 || skip_class(s, e, CC_HOST) != e)
		return false;
	for (const char *q = e; q > s; q--) {
		if (q[-1] == ':') {
			colon = q - 1;
			break;
		}
		if (!IS_DIGIT(q[-1]))
			break;
	}
	const char *host_end = colon ? colon : e;

	/* Brackets only around an IP literal, colons outside them only before the port. */
	if (*s == '[') {
		const char *rb = memchr(s, ']', n);

		if (!rb || rb + 1 != host_end)
			return false;
	} else {
		for (const char *q = s; q < host_end; q++)
			if (*q == ':' || *q == '[' || *q == ']')
				return false;
	}
	if (!need_port)
		return true;
	if (!colon || colon == s || e - colon - 1 < 1 || e - colon - 1 > 5)
		return false;
	unsigned port = 0;

	for (const char *q = colon + 1; q < e; q++)
		port = port * 10 + (unsigned)(*q - '0');
	return port <= 65535;
}

/* Classifies the request-target [t, t + n) and checks it suits the method. */
static enum http1_err target_form(struct http1_parser *p, const char *buf, uint32_t t, uint32_t n)
{
	const char *s = buf + t, *e = s + n;

	if (n == 1 && *s == '*') {
		p->form = HTTP1_FORM_ASTERISK;
		return p->method == HTTP1_METHOD_OPTIONS ? HTTP1_OK : HTTP1_E_TARGET_FORM;
	}
	if (*s == '/') {
		p->form = HTTP1_FORM_ORIGIN;
		p->path_off = t;
		p->path_len = n;
		return p->method == HTTP1_METHOD_CONNECT ? HTTP1_E_TARGET_FORM : HTTP1_OK;
	}
	if (p->method == HTTP1_METHOD_CONNECT) {
		p->form = HTTP1_FORM_AUTHORITY;
		p->auth_off = t;
		p->auth_len = n;
		return authority_ok(s, n, true) ? HTTP1_OK : HTTP1_E_TARGET;
	}
	/* absolute-form: scheme "://" authority [path-abempty] ["?" query] */
	const char *q = s;

	if (!IS_ALPHA(*q))
		return HTTP1_E_TARGET;
	while (q < e && (IS_ALPHA(*q) || IS_DIGIT(*q) || *q == '+' || *q == '-' || *q == '.'))
		q++;
	if (q == e || *q != ':')
		return HTTP1_E_TARGET;
	/* "host:port" with another method: authority-form where it is not allowed. */
	if (e - q < 3 || q[1] != '/' || q[2] != '/')
		return HTTP1_E_TARGET_FORM;
	const char *a = q + 3, *ae = a;

	while (ae < e && *ae != '/' && *ae != '?')
		ae++;
	if (!authority_ok(a, (size_t)(ae - a), false))
		return HTTP1_E_TARGET;
	p->form = HTTP1_FORM_ABSOLUTE;
	p->auth_off = (uint32_t)(a - buf);
	p->auth_len = (uint32_t)(ae - a);
	p->path_off = (uint32_t)(ae - buf);
	p->path_len = (uint32_t)(e - ae);
	return HTTP1_OK;
}

/* method SP request-target SP HTTP-version, in [ls, le) (line terminator excluded). */
static int request_line(struct http1_parser *p, const char *buf, uint32_t ls, uint32_t le)
{
	const char *s = buf + ls, *e = buf + le, *q, *t;
	enum http1_err err;

	if (le - ls > p->lim.max_request_line)
		return fail(p, HTTP1_E_URI_TOO_LONG, ls);
	q = skip_class(s, e, CC_TCHAR);
	if (q == e)
		return fail(p, HTTP1_E_REQUEST_LINE, q - buf);
	if (q == s && *q == ' ')
		return fail(p, HTTP1_E_REQUEST_LINE, q - buf);
	if (q == s || *q != ' ')
		return fail(p, bad_byte(q, e, HTTP1_E_METHOD), q - buf);
	p->sl_a_off = ls;
	p->sl_a_len = (uint32_t)(q - s);
	p->method = method_lookup(s, p->sl_a_len);

	t = q + 1;
	q = skip_target(t, e);
	if (q == e)
		return fail(p, HTTP1_E_REQUEST_LINE, q - buf);
	if (*q != ' ')
		return fail(p, bad_byte(q, e, HTTP1_E_TARGET), q - buf);
	if (q == t)
		return fail(p, HTTP1_E_REQUEST_LINE, q - buf);
	p->sl_b_off = (uint32_t)(t - buf);
	p->sl_b_len = (uint32_t)(q - t);

	q++;
	if (e - q < 8)
		return fail(p, bad_byte(skip_class(q, e, CC_TARGET), e, HTTP1_E_VERSION), q - buf);
	err = parse_version(q, &p->minor);
	if (err == HTTP1_OK && e - q > 8)
		err = bad_byte(q + 8, e, HTTP1_E_VERSION);
	if (err)
		return fail(p, err, q - buf);

	err = target_form(p, buf, p->sl_b_off, p->sl_b_len);
	if (err)
		return fail(p, err, p->sl_b_off);
	p->stage = ST_FIELDS;
	return 0;
}

/* HTTP-version SP 3DIGIT [SP reason-phrase]; the SP before an empty reason is often left out by
 * servers, and nothing depends on it, so either is accepted. */
static int status_line(struct http1_parser *p, const char *buf, uint32_t ls, uint32_t le)
{
	const char *s = buf + ls, *e = buf + le, *q;
	enum http1_err err;

	if (e - s < 8)
		return fail(p, bad_byte(skip_class(s, e, CC_TARGET), e, HTTP1_E_VERSION), ls);
	err = parse_version(s, &p->minor);
	if (err)
		return fail(p, err, ls);
	if (e - s < 12 || s[8] != ' ')
		return fail(p, bad_byte(s + 8, e, HTTP1_E_STATUS_LINE), ls + 8);
	q = s + 9;
	if (!IS_DIGIT(q[0]) || !IS_DIGIT(q[1]) || !IS_DIGIT(q[2]))
		return fail(p, bad_byte(q, e, HTTP1_E_STATUS), q - buf);
	p->status = (uint16_t)((q[0] - '0') * 100 + (q[1] - '0') * 10 + (q[2] - '0'));
	/* RFC 9110 section 15: values outside 100..599 are invalid. */
	if (p->status < 100 || p->status > 599)
		return fail(p, HTTP1_E_STATUS, q - buf);
	q += 3;
	if (q < e && *q != ' ')
		return fail(p, bad_byte(q, e, IS_DIGIT(*q) ? HTTP1_E_STATUS : HTTP1_E_STATUS_LINE),
			    q - buf);
	if (q < e)
		q++;
	const char *r = skip_field(q, e);

	if (r != e)
		return fail(p, bad_byte(r, e, HTTP1_E_STATUS_LINE), r - buf);
	p->sl_a_off = (uint32_t)(q - buf);
	p->sl_a_len = (uint32_t)(e - q);
	p->stage = ST_FIELDS;
	return 0;
}

/* Splits a field line [ls, le) into name [ls, *ne) and OWS-trimmed value [*vs, *ve). */
static enum http1_err field_split(const char *buf, uint32_t ls, uint32_t le, uint32_t *ne,
				  uint32_t *vs, uint32_t *ve, uint32_t *at)
{
	const char *s = buf + ls, *e = buf + le, *q, *v, *w;

	/* A line starting with whitespace continues the previous one (obs-fold, RFC 9112
	 * section 5.2); refused, so that nobody downstream can splice it differently. */
	if (is_ows(*s)) {
		*at = ls;
		return HTTP1_E_OBS_FOLD;
	}
	q = skip_class(s, e, CC_TCHAR);
	*at = (uint32_t)(q - buf);
	if (q == e)
		return HTTP1_E_HEADER_NO_COLON;
	if (*q != ':') {
		if (q > s && is_ows(*q)) {
			w = q;
			while (w < e && is_ows(*w))
				w++;
			if (w < e && *w == ':')
				return HTTP1_E_HEADER_NAME_SPACE;
		}
		return bad_byte(q, e, HTTP1_E_HEADER_NAME);
	}
	if (q == s)
		return HTTP1_E_HEADER_NAME;
	*ne = (uint32_t)(q - buf);
	v = q + 1;
	while (v < e && is_ows(*v))
		v++;
	while (e > v && is_ows(e[-1]))
		e--;
	w = skip_field(v, e);
	if (w != e) {
		*at = (uint32_t)(w - buf);
		return bad_byte(w, e, HTTP1_E_HEADER_VALUE);
	}
	*vs = (uint32_t)(v - buf);
	*ve = (uint32_t)(e - buf);
	return HTTP1_OK;
}

/* Calls fn for each element of a comma-separated list, OWS trimmed; empty elements included so
 * that the caller decides whether they are tolerable. Stops at the first non-zero result. */
static enum http1_err list_each(const char *s, const char *e,
				enum http1_err (*fn)(struct http1_parser *, const char *,
						     const char *),
				struct http1_parser *p)
{
	for (;;) {
		const char *c = memchr(s, ',', (size_t)(e - s)), *x = c ? c : e, *y = x;
		enum http1_err err;

		while (s < y && is_ows(*s))
			s++;
		while (y > s && is_ows(y[-1]))
			y--;
		err = fn(p, s, y);
		if (err || !c)
			return err;
		s = c + 1;
	}
}

/* Content-Length = 1*DIGIT; a list of identical values is one value (RFC 9110 section 8.6). */
static enum http1_err content_length_elem(struct http1_parser *p, const char *s, const char *e)
{
	uint64_t n = 0;

	if (s == e)
		return HTTP1_E_CONTENT_LENGTH;
	for (; s < e; s++) {
		if (!IS_DIGIT(*s))
			return HTTP1_E_CONTENT_LENGTH;
		unsigned d = (unsigned)(*s - '0');

		if (n > ((uint64_t)HTTP1_MAX_BODY_LENGTH - d) / 10)
			return HTTP1_E_CONTENT_LENGTH;
		n = n * 10 + d;
	}
	if ((p->flags & F_CL) && p->content_length != n)
		return HTTP1_E_CL_CONFLICT;
	p->flags |= F_CL;
	p->content_length = n;
	return HTTP1_OK;
}

/* Transfer-Encoding: plain tokens only (no parameters, no empty elements), chunked at most once.
 * Anything fancier is a framing shape some other parser may read differently. */
static enum http1_err transfer_coding_elem(struct http1_parser *p, const char *s, const char *e)
{
	if (s == e || skip_class(s, e, CC_TCHAR) != e)
		return HTTP1_E_TE_INVALID;
	p->flags |= F_TE;
	if (mem_ieq(s, (size_t)(e - s), "chunked")) {
		if (p->flags & F_TE_CHUNKED)
			return HTTP1_E_TE_INVALID;
		p->flags |= F_TE_CHUNKED | F_TE_LAST_CHUNKED;
	} else {
		p->flags &= ~F_TE_LAST_CHUNKED;
	}
	return HTTP1_OK;
}

static enum http1_err connection_elem(struct http1_parser *p, const char *s, const char *e)
{
	size_t n = (size_t)(e - s);

	if (mem_ieq(s, n, "close"))
		p->flags |= F_CONN_CLOSE;
	else if (mem_ieq(s, n, "keep-alive"))
		p->flags |= F_CONN_KEEPALIVE;
	else if (mem_ieq(s, n, "upgrade"))
		p->flags |= F_CONN_UPGRADE;
	return HTTP1_OK;
}

/* Records what the proxy needs to know from one field line. */
static enum http1_err field_meaning(struct http1_parser *p, const char *buf, uint32_t ns,
				    uint32_t ne, uint32_t vs, uint32_t ve)
{
	const char *n = buf + ns, *v = buf + vs;
	size_t nlen = ne - ns;

	switch (nlen) {
	case 4:
		if (!p->response && mem_ieq(n, nlen, "host")) {
			if (p->flags & F_HOST)
				return HTTP1_E_HOST_REPEATED;
			/* Empty is allowed: RFC 9112 section 3.2, a target without authority. */
			if (ve > vs && !authority_ok(v, ve - vs, false))
				return HTTP1_E_HOST_INVALID;
			p->flags |= F_HOST;
			p->host_off = vs;
			p->host_len = ve - vs;
		}
		break;
	case 6:
		if (!p->response && mem_ieq(n, nlen, "expect") &&
		    mem_ieq(v, ve - vs, "100-continue"))
			p->flags |= F_EXPECT_CONTINUE;
		break;
	case 7:
		if (mem_ieq(n, nlen, "upgrade") && ve > vs && !(p->flags & F_UPGRADE)) {
			p->flags |= F_UPGRADE;
			p->upgrade_off = vs;
			p->upgrade_len = ve - vs;
		}
		break;
	case 10:
		if (mem_ieq(n, nlen, "connection"))
			return list_each(v, buf + ve, connection_elem, p);
		break;
	case 14:
		if (mem_ieq(n, nlen, "content-length"))
			return list_each(v, buf + ve, content_length_elem, p);
		break;
	case 17:
		if (mem_ieq(n, nlen, "transfer-encoding"))
			return list_each(v, buf + ve, transfer_coding_elem, p);
		break;
	}
	return HTTP1_OK;
}

/* Until the head is complete the header array holds offsets, because the caller may move its
 * buffer between calls; they become pointers into the final buffer here. */
static inline struct http1_span span_off(uint32_t off, uint32_t len)
{
	return (struct http1_span){(const char *)(uintptr_t)off, len};
}

static inline struct http1_span span_at(const char *buf, uint32_t off, uint32_t len)
{
	return (struct http1_span){buf + off, len};
}

static void rebase(struct http1_header *h, size_t n, const char *buf)
{
	for (size_t i = 0; i < n; i++) {
		h[i].name.p = buf + (uintptr_t)h[i].name.p;
		h[i].value.p = buf + (uintptr_t)h[i].value.p;
	}
}

static int field_store(struct http1_parser *p, const char *buf, uint32_t ls, uint32_t ne,
		       uint32_t vs, uint32_t ve)
{
	enum http1_err err;

	if (p->nhdrs >= p->hdr_cap)
		return fail(p, HTTP1_E_TOO_MANY_HEADERS, ls);
	p->hdrs[p->nhdrs].name = span_off(ls, ne - ls);
	p->hdrs[p->nhdrs].value = span_off(vs, ve - vs);
	p->nhdrs++;
	err = field_meaning(p, buf, ls, ne, vs, ve);
	return err ? fail(p, err, vs) : 0;
}

static int field_line(struct http1_parser *p, const char *buf, uint32_t ls, uint32_t le)
{
	uint32_t ne = 0, vs = 0, ve = 0, at = 0;
	enum http1_err err = field_split(buf, ls, le, &ne, &vs, &ve, &at);

	return err ? fail(p, err, at) : field_store(p, buf, ls, ne, vs, ve);
}

/* The common case, a whole valid field line already in the buffer, in one pass: the value scan
 * stops at the first control byte, which is then the line end. Returns 1 when it took a line,
 * 0 to leave anything else (partial lines, errors, the blank line) to the line-based path, which
 * then reaches the same verdict; or an error from the line's meaning. */
static int field_line_fast(struct http1_parser *p, const char *buf, size_t avail)
{
	const char *s = buf + p->line, *e = buf + avail, *q, *v, *w, *ve;
	uint32_t next;
	int r;

	q = skip_class(s, e, CC_TCHAR);
	if (q == s || q == e || *q != ':')
		return 0;
	v = q + 1;
	while (v < e && is_ows(*v))
		v++;
	w = skip_field(v, e);
	if (w < e && *w == '\n')
		next = (uint32_t)(w + 1 - buf);
	else if (e - w >= 2 && w[0] == '\r' && w[1] == '\n')
		next = (uint32_t)(w + 2 - buf);
	else
		return 0;
	ve = w;
	while (ve > v && is_ows(ve[-1]))
		ve--;
	r = field_store(p, buf, p->line, (uint32_t)(q - buf), (uint32_t)(v - buf),
			(uint32_t)(ve - buf));
	if (r)
		return r;
	p->line = p->scan = next;
	return 1;
}

/* Framing rules shared by both directions (RFC 9112 section 6). */
static enum http1_err framing_check(const struct http1_parser *p)
{
	if (!(p->flags & F_TE))
		return HTTP1_OK;
	/* HTTP/1.0 has no chunked coding; RFC 9112 section 6.1 calls this faulty framing. */
	if (p->minor == 0)
		return HTTP1_E_TE_HTTP10;
	/* RFC 9112 lets TE override CL, but the pair is the classic smuggling shape; Envoy
	 * refuses it too unless allow_chunked_length is set. */
	if (p->flags & F_CL)
		return HTTP1_E_TE_CL;
	return HTTP1_OK;
}

static void msg_common(const struct http1_parser *p, const char *buf, struct http1_msg *msg)
{
	memset(msg, 0, sizeof(*msg));
	rebase(p->hdrs, p->nhdrs, buf);
	msg->headers = p->hdrs;
	msg->nheaders = p->nhdrs;
	msg->minor = p->minor;
	msg->content_length = p->content_length;
	if (p->flags & F_UPGRADE)
		msg->upgrade = span_at(buf, p->upgrade_off, p->upgrade_len);
	if (p->minor >= 1)
		msg->keep_alive = !(p->flags & F_CONN_CLOSE);
	else
		msg->keep_alive = (p->flags & F_CONN_KEEPALIVE) && !(p->flags & F_CONN_CLOSE);
}

static int finish_request(struct http1_parser *p, const char *buf, uint32_t end,
			  struct http1_msg *msg)
{
	enum http1_err err = framing_check(p);

	if (!err && (p->flags & F_TE) && !(p->flags & F_TE_LAST_CHUNKED))
		err = HTTP1_E_TE_NOT_CHUNKED;
	if (!err && p->method == HTTP1_METHOD_CONNECT &&
	    ((p->flags & F_TE) || p->content_length > 0))
		err = HTTP1_E_CONNECT_BODY;
	/* RFC 9112 section 3.2: a 1.1 request without Host gets a 400. */
	if (!err && p->minor >= 1 && !(p->flags & F_HOST))
		err = HTTP1_E_HOST_MISSING;
	if (err)
		return fail(p, err, end);
	p->stage = ST_DONE;
	msg_common(p, buf, msg);
	msg->method = p->method;
	msg->method_name = span_at(buf, p->sl_a_off, p->sl_a_len);
	msg->target = span_at(buf, p->sl_b_off, p->sl_b_len);
	msg->form = p->form;
	if (p->auth_len)
		msg->authority = span_at(buf, p->auth_off, p->auth_len);
	if (p->form == HTTP1_FORM_ORIGIN || p->form == HTTP1_FORM_ABSOLUTE)
		msg->path = span_at(buf, p->path_off, p->path_len);
	if (p->flags & F_HOST)
		msg->host = span_at(buf, p->host_off, p->host_len);
	if (p->flags & F_TE)
		msg->body = HTTP1_BODY_CHUNKED;
	else if (p->content_length > 0)
		msg->body = HTTP1_BODY_LENGTH;
	/* RFC 9110 sections 7.8 and 10.1.1: both are ignored in an HTTP/1.0 request. */
	if (p->minor >= 1) {
		msg->upgrade_requested =
			(p->flags & (F_UPGRADE | F_CONN_UPGRADE)) == (F_UPGRADE | F_CONN_UPGRADE);
		msg->expect_continue = p->flags & F_EXPECT_CONTINUE;
	}
	return (int)end;
}

static int finish_response(struct http1_parser *p, const char *buf, uint32_t end,
			   struct http1_msg *msg)
{
	enum http1_err err = framing_check(p);
	int st = p->status;

	if (err)
		return fail(p, err, end);
	p->stage = ST_DONE;
	msg_common(p, buf, msg);
	msg->status = st;
	msg->reason = span_at(buf, p->sl_a_off, p->sl_a_len);
	if (st == 101 || (p->req_method == HTTP1_METHOD_CONNECT && st >= 200 && st < 300))
		msg->body = HTTP1_BODY_TUNNEL;
	else if (p->req_method == HTTP1_METHOD_HEAD || st < 200 || st == 204 || st == 304)
		msg->body = HTTP1_BODY_NONE;
	else if (p->flags & F_TE)
		/* A final coding other than chunked leaves only the close to end the body. */
		msg->body = (p->flags & F_TE_LAST_CHUNKED) ? HTTP1_BODY_CHUNKED
							   : HTTP1_BODY_UNTIL_CLOSE;
	else if (p->flags & F_CL)
		msg->body = p->content_length ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE;
	else
		msg->body = HTTP1_BODY_UNTIL_CLOSE;
	if (msg->body != HTTP1_BODY_LENGTH)
		msg->content_length = 0;
	if (msg->body == HTTP1_BODY_UNTIL_CLOSE || msg->body == HTTP1_BODY_TUNNEL)
		msg->keep_alive = false;
	return (int)end;
}

/* The line-by-line loop both heads share. However the input is split across calls, each byte is
 * looked at a bounded number of times: by the fast path, by memchr, by the line's grammar. */
static int parse_head(struct http1_parser *p, const char *buf, size_t len, struct http1_msg *msg)
{
	/* Bytes beyond the limit are never examined: a head must end within it. */
	size_t avail = len < p->lim.max_head_bytes ? len : p->lim.max_head_bytes;

	if (p->stage == ST_FAILED)
		return HTTP1_INVALID;
	if (p->stage == ST_DONE)
		return (int)p->scan;
	if (len < p->scan)
		return HTTP1_INCOMPLETE;
	while (p->scan < avail) {
		if (p->stage == ST_FIELDS && p->scan == p->line) {
			int r = field_line_fast(p, buf, avail);

			if (r > 0)
				continue;
			if (r < 0)
				return r;
		}
		const char *lf = memchr(buf + p->scan, '\n', avail - p->scan);

		if (!lf) {
			p->scan = (uint32_t)avail;
			break;
		}
		uint32_t end = (uint32_t)(lf - buf), ls = p->line;
		uint32_t le = end > ls && buf[end - 1] == '\r' ? end - 1 : end;
		int r;

		p->scan = p->line = end + 1;
		if (p->stage == ST_FIELDS) {
			if (le == ls)
				return p->response ? finish_response(p, buf, end + 1, msg)
						   : finish_request(p, buf, end + 1, msg);
			r = field_line(p, buf, ls, le);
		} else if (le == ls) {
			/* RFC 9112 section 2.2: empty lines before the start line are ignored. */
			continue;
		} else {
			r = p->response ? status_line(p, buf, ls, le)
					: request_line(p, buf, ls, le);
		}
		if (r)
			return r;
	}
	/* +1: the line may still end in CR before its LF. */
	if (p->stage == ST_START && !p->response && avail - p->line > p->lim.max_request_line + 1)
		return fail(p, HTTP1_E_URI_TOO_LONG, p->line);
	if (len >= p->lim.max_head_bytes)
		return fail(p, HTTP1_E_HEAD_TOO_LARGE, p->lim.max_head_bytes);
	return HTTP1_INCOMPLETE;
}

int http1_parse_request(struct http1_parser *p, const char *buf, size_t len, struct http1_msg *msg)
{
	return p->response ? fail(p, HTTP1_E_REQUEST_LINE, 0) : parse_head(p, buf, len, msg);
}

int http1_parse_response(struct http1_parser *p, const char *buf, size_t len, struct http1_msg *msg)
{
	return p->response ? parse_head(p, buf, len, msg) : fail(p, HTTP1_E_STATUS_LINE, 0);
}

/* ---- chunked body -------------------------------------------------------------------------- */

/* Decoder states. The size line is
 *   chunk-size [ BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] ]* CRLF
 * and is consumed one byte at a time, so no state points into an old buffer. */
enum {
	CH_SIZE_FIRST, /* first hex digit */
	CH_SIZE,       /* more hex digits */
	CH_SIZE_WS,    /* BWS after the size: only ';' may follow */
	CH_EXT_SEMI,   /* after ';': BWS, then a name */
	CH_EXT_NAME,
	CH_EXT_NAME_WS, /* BWS after a name: '=' or ';' */
	CH_EXT_EQ,	/* after '=': BWS, then a token or a quoted-string */
	CH_EXT_VAL,	/* token value, or just after a closing quote */
	CH_EXT_VAL_WS,	/* BWS after a value: only ';' may follow */
	CH_EXT_QUOTED,
	CH_EXT_QUOTED_ESC,
	CH_SIZE_LF, /* CR seen; LF must follow */
	CH_DATA,
	CH_DATA_END, /* CRLF (or LF) after data */
	CH_DATA_LF,
	CH_TRAILER,
	CH_DONE,
	CH_FAILED,
};

void http1_chunked_begin(struct http1_chunked *c, const struct http1_limits *lim,
			 struct http1_header *trailers, size_t cap)
{
	memset(c, 0, sizeof(*c));
	http1_limits_resolve(&c->lim, lim);
	c->trailers = trailers;
	c->trailer_cap = cap < c->lim.max_headers ? (uint32_t)cap : c->lim.max_headers;
}

bool http1_chunked_done(const struct http1_chunked *c)
{
	return c->state == CH_DONE;
}

size_t http1_chunked_ntrailers(const struct http1_chunked *c)
{
	return c->ntrailers;
}

static ssize_t chunk_fail(struct http1_chunked *c, enum http1_err err)
{
	c->err = err;
	c->state = CH_FAILED;
	return HTTP1_INVALID;
}

/* End of a size line: data follows, or for size 0 the trailer section. */
static void size_line_done(struct http1_chunked *c)
{
	c->state = c->left ? CH_DATA : CH_TRAILER;
	c->line_len = 0;
}

/* One byte of a size line; returns an error or HTTP1_OK. */
static enum http1_err size_line_byte(struct http1_chunked *c, char ch)
{
	bool ws = is_ows(ch);

	/* The limit is on the line's content, whichever line end it has. */
	if (ch != '\r' && ch != '\n' && ++c->line_len > HTTP1_MAX_CHUNK_LINE)
		return HTTP1_E_CHUNK_LINE_TOO_LONG;
	switch (c->state) {
	case CH_SIZE_FIRST:
	case CH_SIZE:
		if (is(ch, CC_HEX)) {
			unsigned d = IS_DIGIT(ch) ? (unsigned)(ch - '0')
						  : (unsigned)(lower(ch) - 'a' + 10);

			if (c->left > ((uint64_t)HTTP1_MAX_BODY_LENGTH - d) / 16)
				return HTTP1_E_CHUNK_SIZE;
			c->left = c->left * 16 + d;
			c->state = CH_SIZE;
			return HTTP1_OK;
		}
		if (c->state == CH_SIZE_FIRST)
			return ch == '\r' ? HTTP1_E_BARE_CR : HTTP1_E_CHUNK_SIZE;
		if (ws)
			c->state = CH_SIZE_WS;
		else if (ch == ';')
			c->state = CH_EXT_SEMI;
		else
			goto line_end;
		return HTTP1_OK;
	case CH_SIZE_WS:
	case CH_EXT_VAL_WS:
		if (ch == ';')
			c->state = CH_EXT_SEMI;
		else if (!ws)
			return HTTP1_E_CHUNK_EXT;
		return HTTP1_OK;
	case CH_EXT_SEMI:
		if (is(ch, CC_TCHAR))
			c->state = CH_EXT_NAME;
		else if (!ws)
			return HTTP1_E_CHUNK_EXT;
		return HTTP1_OK;
	case CH_EXT_NAME:
		if (is(ch, CC_TCHAR))
			return HTTP1_OK;
		if (ws)
			c->state = CH_EXT_NAME_WS;
		else if (ch == '=')
			c->state = CH_EXT_EQ;
		else if (ch == ';')
			c->state = CH_EXT_SEMI;
		else
			goto line_end;
		return HTTP1_OK;
	case CH_EXT_NAME_WS:
		if (ch == '=')
			c->state = CH_EXT_EQ;
		else if (ch == ';')
			c->state = CH_EXT_SEMI;
		else if (!ws)
			return HTTP1_E_CHUNK_EXT;
		return HTTP1_OK;
	case CH_EXT_EQ:
		if (is(ch, CC_TCHAR))
			c->state = CH_EXT_VAL;
		else if (ch == '"')
			c->state = CH_EXT_QUOTED;
		else if (!ws)
			return HTTP1_E_CHUNK_EXT;
		return HTTP1_OK;
	case CH_EXT_VAL:
		if (is(ch, CC_TCHAR) && !c->quoted)
			return HTTP1_OK;
		c->quoted = 0;
		if (ws)
			c->state = CH_EXT_VAL_WS;
		else if (ch == ';')
			c->state = CH_EXT_SEMI;
		else
			goto line_end;
		return HTTP1_OK;
	case CH_EXT_QUOTED:
		if (ch == '"') {
			c->state = CH_EXT_VAL;
			c->quoted = 1;
		} else if (ch == '\\') {
			c->state = CH_EXT_QUOTED_ESC;
		} else if (!is(ch, CC_QDTEXT)) {
			return ch == '\r' ? HTTP1_E_BARE_CR : HTTP1_E_CHUNK_EXT;
		}
		return HTTP1_OK;
	case CH_EXT_QUOTED_ESC:
		if (!is(ch, CC_FIELD))
			return ch == '\r' ? HTTP1_E_BARE_CR : HTTP1_E_CHUNK_EXT;
		c->state = CH_EXT_QUOTED;
		return HTTP1_OK;
	case CH_SIZE_LF:
		if (ch != '\n')
			return HTTP1_E_BARE_CR;
		size_line_done(c);
		return HTTP1_OK;
	}
	return HTTP1_E_CHUNK_SIZE;
line_end:
	/* Only a line end may follow a complete size, name or value. */
	if (ch == '\r') {
		c->state = CH_SIZE_LF;
		return HTTP1_OK;
	}
	if (ch == '\n') {
		size_line_done(c);
		return HTTP1_OK;
	}
	return c->state == CH_SIZE ? HTTP1_E_CHUNK_SIZE : HTTP1_E_CHUNK_EXT;
}

/* The trailer section at buf[0..len): field lines then an empty line, collected whole like a
 * head. Returns its length, HTTP1_INCOMPLETE or HTTP1_INVALID. */
static ssize_t trailer_section(struct http1_chunked *c, const char *buf, size_t len)
{
	size_t avail = len < c->lim.max_head_bytes ? len : c->lim.max_head_bytes;

	if (len < c->scan)
		return HTTP1_INCOMPLETE;
	while (c->scan < avail) {
		const char *lf = memchr(buf + c->scan, '\n', avail - c->scan);

		if (!lf) {
			c->scan = (uint32_t)avail;
			break;
		}
		uint32_t end = (uint32_t)(lf - buf), ls = c->line;
		uint32_t le = end > ls && buf[end - 1] == '\r' ? end - 1 : end;
		uint32_t ne = 0, vs = 0, ve = 0, at = 0;
		enum http1_err err;

		c->scan = c->line = end + 1;
		if (le == ls) {
			rebase(c->trailers, c->ntrailers, buf);
			c->state = CH_DONE;
			return end + 1;
		}
		err = field_split(buf, ls, le, &ne, &vs, &ve, &at);
		if (err)
			return chunk_fail(c, err);
		if (c->ntrailers >= c->trailer_cap)
			return chunk_fail(c, HTTP1_E_TOO_MANY_HEADERS);
		c->trailers[c->ntrailers].name = span_off(ls, ne - ls);
		c->trailers[c->ntrailers].value = span_off(vs, ve - vs);
		c->ntrailers++;
	}
	if (len >= c->lim.max_head_bytes)
		return chunk_fail(c, HTTP1_E_HEAD_TOO_LARGE);
	return HTTP1_INCOMPLETE;
}

ssize_t http1_chunked_decode(struct http1_chunked *c, const char *buf, size_t len,
			     struct http1_span *data)
{
	size_t i = 0;

	data->p = buf;
	data->len = 0;
	if (c->state == CH_FAILED)
		return HTTP1_INVALID;
	if (c->state == CH_DONE)
		return 0;
	while (i < len) {
		enum http1_err err;
		ssize_t r;

		switch (c->state) {
		case CH_DATA: {
			size_t take = len - i < c->left ? len - i : (size_t)c->left;

			data->p = buf + i;
			data->len = take;
			c->left -= take;
			if (!c->left)
				c->state = CH_DATA_END;
			return (ssize_t)(i + take);
		}
		case CH_DATA_END:
			if (buf[i] == '\r')
				c->state = CH_DATA_LF;
			else if (buf[i] == '\n')
				c->state = CH_SIZE_FIRST;
			else
				return chunk_fail(c, HTTP1_E_CHUNK_DATA_END);
			i++;
			break;
		case CH_DATA_LF:
			if (buf[i] != '\n')
				return chunk_fail(c, HTTP1_E_CHUNK_DATA_END);
			c->state = CH_SIZE_FIRST;
			i++;
			break;
		case CH_TRAILER:
			r = trailer_section(c, buf + i, len - i);
			if (r == HTTP1_INCOMPLETE)
				goto out;
			if (r < 0)
				return r;
			i += (size_t)r;
			data->p = buf + i;
			return (ssize_t)i;
		default:
			err = size_line_byte(c, buf[i]);
			if (err)
				return chunk_fail(c, err);
			i++;
			break;
		}
	}
out:
	data->p = buf + i;
	return i ? (ssize_t)i : HTTP1_INCOMPLETE;
}

size_t http1_chunk_header(char *out, uint64_t size)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[16];
	size_t n = 0, k = 0;

	if (!size)
		return 0;
	while (size) {
		tmp[n++] = hex[size & 0xf];
		size >>= 4;
	}
	while (n)
		out[k++] = tmp[--n];
	out[k++] = '\r';
	out[k++] = '\n';
	return k;
}

ssize_t http1_chunk_last(char *out, size_t cap, const struct http1_header *trailers, size_t n)
{
	size_t need = 5, k = 0;

	for (size_t i = 0; i < n; i++)
		need += trailers[i].name.len + 2 + trailers[i].value.len + 2;
	if (need > cap)
		return -1;
	memcpy(out, "0\r\n", 3);
	k = 3;
	for (size_t i = 0; i < n; i++) {
		memcpy(out + k, trailers[i].name.p, trailers[i].name.len);
		k += trailers[i].name.len;
		memcpy(out + k, ": ", 2);
		k += 2;
		memcpy(out + k, trailers[i].value.p, trailers[i].value.len);
		k += trailers[i].value.len;
		memcpy(out + k, "\r\n", 2);
		k += 2;
	}
	memcpy(out + k, "\r\n", 2);
	return (ssize_t)(k + 2);
}
