/* Differential test of proxy/http1.c against Debian's http-parser (2.9): same corpus, same
 * verdicts and fields, except for the cases listed as expected differences with the reason. */
#include <http_parser.h>
#include <stdarg.h>

#include "proxy/http1.h"
#include "tests/lib/tap.h"

enum outcome {
	OUT_ACCEPT,
	OUT_REJECT,
	OUT_INCOMPLETE
};
static const char *const outcome_names[] = {"accept", "reject", "incomplete"};

/* What one parser made of the first message of an input. */
struct side {
	enum outcome outcome;
	char why[64];
	char method[32];
	char target[256];
	int minor;
	int status;
	char headers[2048]; /* "name=value|", values without surrounding whitespace */
	char body[1024];
	size_t body_len;
	bool keep_alive;
	bool upgrade; /* the connection leaves HTTP after this message (CONNECT, Upgrade, 101) */
	size_t used;  /* bytes of the first message */
};

static void cat(char *b, size_t cap, const char *fmt, ...)
{
	size_t k = strlen(b);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b + k, cap - k, fmt, ap);
	va_end(ap);
}

static void add_header(struct side *s, const char *n, size_t nl, const char *v, size_t vl)
{
	while (vl && (v[0] == ' ' || v[0] == '\t'))
		v++, vl--;
	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	cat(s->headers, sizeof(s->headers), "%.*s=%.*s|", (int)nl, n, (int)vl, v);
}

static void add_body(struct side *s, const char *p, size_t n)
{
	if (s->body_len + n <= sizeof(s->body))
		memcpy(s->body + s->body_len, p, n);
	s->body_len += n;
}

/* ---- http-parser side ------------------------------------------------------------------------- */

struct hp_ctx {
	struct side *s;
	bool head_method; /* response to HEAD: no body */
	char field[256], value[1024];
	size_t fl, vl;
	bool in_value, headers_done, complete;
};

static struct hp_ctx *ctx_of(http_parser *p)
{
	return p->data;
}

static void hp_flush(struct hp_ctx *c)
{
	if (c->fl)
		add_header(c->s, c->field, c->fl, c->value, c->vl);
	c->fl = c->vl = 0;
	c->in_value = false;
}

static void append(char *b, size_t *len, size_t cap, const char *p, size_t n)
{
	if (*len + n < cap) {
		memcpy(b + *len, p, n);
		*len += n;
	}
}

static int hp_url(http_parser *p, const char *at, size_t n)
{
	struct side *s = ctx_of(p)->s;
	size_t k = strlen(s->target);

	append(s->target, &k, sizeof(s->target), at, n);
	s->target[k] = '\0';
	return 0;
}

static int hp_field(http_parser *p, const char *at, size_t n)
{
	struct hp_ctx *c = ctx_of(p);

	if (c->in_value)
		hp_flush(c);
	append(c->field, &c->fl, sizeof(c->field), at, n);
	return 0;
}

static int hp_value(http_parser *p, const char *at, size_t n)
{
	struct hp_ctx *c = ctx_of(p);

	c->in_value = true;
	append(c->value, &c->vl, sizeof(c->value), at, n);
	return 0;
}

static int hp_headers_complete(http_parser *p)
{
	struct hp_ctx *c = ctx_of(p);
	struct side *s = c->s;

	hp_flush(c);
	c->headers_done = true;
	if (p->type == HTTP_REQUEST)
		snprintf(s->method, sizeof(s->method), "%s", http_method_str(p->method));
	s->minor = p->http_minor;
	s->status = p->status_code;
	s->keep_alive = http_should_keep_alive(p);
	s->upgrade = p->upgrade;
	return c->head_method ? 1 : 0;
}

static int hp_body(http_parser *p, const char *at, size_t n)
{
	add_body(ctx_of(p)->s, at, n);
	return 0;
}

static int hp_complete(http_parser *p)
{
	/* Trailer fields come through the header callbacks, after the body. */
	hp_flush(ctx_of(p));
	ctx_of(p)->complete = true;
	/* Stop after the first message, so that pipelined input compares message by message. */
	http_parser_pause(p, 1);
	return 0;
}

static void run_http_parser(const char *in, size_t len, bool response, enum http1_method req,
			    struct side *s)
{
	http_parser_settings set = {
		.on_url = hp_url,
		.on_header_field = hp_field,
		.on_header_value = hp_value,
		.on_headers_complete = hp_headers_complete,
		.on_body = hp_body,
		.on_message_complete = hp_complete,
	};
	struct hp_ctx c = {.s = s, .head_method = response && req == HTTP1_METHOD_HEAD};
	http_parser p;
	size_t n;

	memset(s, 0, sizeof(*s));
	http_parser_init(&p, response ? HTTP_RESPONSE : HTTP_REQUEST);
	p.data = &c;
	n = http_parser_execute(&p, &set, in, len);
	enum http_errno e = HTTP_PARSER_ERRNO(&p);

	s->used = n;
	if (e == HPE_PAUSED || (e == HPE_OK && c.complete) ||
	    (e == HPE_OK && c.headers_done && p.upgrade)) {
		s->outcome = OUT_ACCEPT;
		return;
	}
	if (e != HPE_OK) {
		s->outcome = OUT_REJECT;
		snprintf(s->why, sizeof(s->why), "%s", http_errno_name(e));
		return;
	}
	/* A response delimited by the close: tell it the input ended. */
	if (response && c.headers_done) {
		http_parser_execute(&p, &set, NULL, 0);
		if (c.complete) {
			s->outcome = OUT_ACCEPT;
			return;
		}
	}
	s->outcome = OUT_INCOMPLETE;
}

/* ---- shunt side -------------------------------------------------------------------------------- */

static void run_shunt(const char *in, size_t len, bool response, enum http1_method req,
		      struct side *s)
{
	struct http1_header h[64], tr[8];
	struct http1_parser p;
	struct http1_msg m;
	int r;

	memset(s, 0, sizeof(*s));
	if (response) {
		http1_response_begin(&p, NULL, h, 64, req);
		r = http1_parse_response(&p, in, len, &m);
	} else {
		http1_request_begin(&p, NULL, h, 64);
		r = http1_parse_request(&p, in, len, &m);
	}
	if (r == HTTP1_INCOMPLETE) {
		s->outcome = OUT_INCOMPLETE;
		return;
	}
	if (r == HTTP1_INVALID) {
		s->outcome = OUT_REJECT;
		snprintf(s->why, sizeof(s->why), "%s", http1_err_text(p.err));
		return;
	}
	snprintf(s->method, sizeof(s->method), "%.*s", (int)m.method_name.len, m.method_name.p);
	snprintf(s->target, sizeof(s->target), "%.*s", (int)m.target.len, m.target.p);
	s->minor = m.minor;
	s->status = m.status;
	for (size_t i = 0; i < m.nheaders; i++)
		add_header(s, h[i].name.p, h[i].name.len, h[i].value.p, h[i].value.len);
	s->keep_alive = m.keep_alive;
	s->upgrade = response ? m.body == HTTP1_BODY_TUNNEL
			      : m.method == HTTP1_METHOD_CONNECT || m.upgrade_requested;
	s->used = (size_t)r;
	s->outcome = OUT_ACCEPT;

	const char *rest = in + r;
	size_t left = len - (size_t)r;

	switch (m.body) {
	case HTTP1_BODY_NONE:
	case HTTP1_BODY_TUNNEL:
		break;
	case HTTP1_BODY_LENGTH:
		if (left < m.content_length) {
			s->outcome = OUT_INCOMPLETE;
			break;
		}
		add_body(s, rest, m.content_length);
		s->used += m.content_length;
		break;
	case HTTP1_BODY_UNTIL_CLOSE:
		add_body(s, rest, left);
		s->used += left;
		break;
	case HTTP1_BODY_CHUNKED: {
		struct http1_chunked c;
		struct http1_span d;
		ssize_t n;

		http1_chunked_begin(&c, NULL, tr, 8);
		while ((n = http1_chunked_decode(&c, rest, left, &d)) > 0) {
			add_body(s, d.p, d.len);
			rest += n;
			left -= (size_t)n;
			s->used += (size_t)n;
		}
		if (n == HTTP1_INVALID) {
			s->outcome = OUT_REJECT;
			snprintf(s->why, sizeof(s->why), "%s", http1_err_text(c.err));
		} else if (!http1_chunked_done(&c)) {
			s->outcome = OUT_INCOMPLETE;
		}
		/* http-parser lists trailers with the header fields. */
		for (size_t i = 0; i < http1_chunked_ntrailers(&c); i++)
			add_header(s, tr[i].name.p, tr[i].name.len, tr[i].value.p, tr[i].value.len);
		break;
	}
	}
}

/* ---- corpus ------------------------------------------------------------------------------------ */

/* How the two are expected to relate on a case. */
enum expect {
	SAME,	    /* same verdict; if accepted, same fields, body and framing */
	STRICTER,   /* shunt rejects what http-parser accepts */
	LENIENT,    /* shunt accepts what http-parser rejects */
	DIFF_FIELDS /* both accept, but read it differently */
};

struct diff_case {
	const char *name;
	const char *in;
	size_t len;
	bool response;
	enum http1_method req;
	enum expect expect;
	const char *why; /* for expected differences: the reason, as the test's description */
};

#define Q(name, in)                                                                                \
	{                                                                                          \
		name, in, sizeof(in) - 1, false, 0, SAME, NULL                                     \
	}
#define QX(name, in, x, why)                                                                       \
	{                                                                                          \
		name, in, sizeof(in) - 1, false, 0, x, why                                         \
	}
#define R(name, req, in)                                                                           \
	{                                                                                          \
		name, in, sizeof(in) - 1, true, HTTP1_METHOD_##req, SAME, NULL                     \
	}
#define RX(name, req, in, x, why)                                                                  \
	{                                                                                          \
		name, in, sizeof(in) - 1, true, HTTP1_METHOD_##req, x, why                         \
	}

#define H   "Host: a\r\n"
#define P11 "POST / HTTP/1.1\r\n" H
#define TE  "Transfer-Encoding: "
#define CL  "Content-Length: "
#define CH  P11 TE "chunked\r\n\r\n"

static const struct diff_case corpus[] = {
	/* Requests both accept. */
	Q("simple GET", "GET / HTTP/1.1\r\n" H "\r\n"),
	Q("browser GET", "GET /index.html?q=1&r=%20 HTTP/1.1\r\nHost: www.example.com\r\n"
			 "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0)\r\n"
			 "Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n"
			 "Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
			 "Cookie: a=b; c=d\r\nConnection: keep-alive\r\n\r\n"),
	Q("HTTP/1.0", "GET / HTTP/1.0\r\n\r\n"),
	Q("HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
	Q("HTTP/1.1 close", "GET / HTTP/1.1\r\n" H "Connection: close\r\n\r\n"),
	Q("HEAD", "HEAD /x HTTP/1.1\r\n" H "\r\n"),
	Q("DELETE", "DELETE /x HTTP/1.1\r\n" H "\r\n"),
	Q("PUT with body", "PUT /x HTTP/1.1\r\n" H CL "3\r\n\r\nabc"),
	Q("PATCH", "PATCH /x HTTP/1.1\r\n" H CL "2\r\n\r\n{}"),
	Q("PURGE", "PURGE /x HTTP/1.1\r\n" H "\r\n"),
	Q("POST Content-Length", P11 CL "5\r\n\r\nhello"),
	Q("POST Content-Length 0", P11 CL "0\r\n\r\n"),
	Q("Content-Length with OWS", P11 CL "  5 \r\n\r\nhello"),
	Q("Content-Length leading zeros", P11 CL "005\r\n\r\nhello"),
	Q("Content-Length body incomplete", P11 CL "10\r\n\r\nhello"),
	Q("chunked", CH "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
	Q("chunked, upper-case hex", CH "A\r\n0123456789\r\n0\r\n\r\n"),
	Q("chunked with extensions", CH "5;a=b;c=\"d e\"\r\nhello\r\n0\r\n\r\n"),
	Q("chunked with trailers", CH "5\r\nhello\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n"),
	Q("chunked incomplete", CH "5\r\nhel"),
	Q("gzip, chunked", P11 TE "gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
	Q("Chunked in any case", P11 TE "CHUNKED\r\n\r\n0\r\n\r\n"),
	Q("absolute-form", "GET http://example.com:8080/a?b HTTP/1.1\r\nHost: example.com\r\n\r\n"),
	Q("CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
	Q("OPTIONS *", "OPTIONS * HTTP/1.1\r\n" H "\r\n"),
	Q("WebSocket upgrade",
	  "GET /chat HTTP/1.1\r\n" H "Upgrade: websocket\r\n"
	  "Connection: Upgrade\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
	  "Sec-WebSocket-Version: 13\r\n\r\n"),
	Q("Expect: 100-continue", P11 "Expect: 100-continue\r\n" CL "3\r\n\r\nabc"),
	Q("bare LF line endings", "GET / HTTP/1.1\nHost: a\nX: y\n\n"),
	Q("empty lines before the request", "\r\n\r\nGET / HTTP/1.1\r\n" H "\r\n"),
	Q("pipelined, first of two", "GET /a HTTP/1.1\r\n" H "\r\nGET /b HTTP/1.1\r\n" H "\r\n"),
	Q("pipelined after a body", P11 CL "2\r\n\r\nabGET / HTTP/1.1\r\n" H "\r\n"),
	Q("trailing whitespace in values", "GET / HTTP/1.1\r\n" H "X:  a b \t\r\n\r\n"),
	Q("empty value", "GET / HTTP/1.1\r\n" H "X:\r\n\r\n"),
	Q("obs-text in a value", "GET / HTTP/1.1\r\n" H "X: caf\xc3\xa9\r\n\r\n"),
	Q("head incomplete", "GET / HTTP/1.1\r\nHost: a\r\n"),
	Q("Transfer_Encoding is another field", P11 "Transfer_Encoding: chunked\r\n\r\n"),

	/* Requests both refuse. */
	Q("CL and TE", P11 CL "5\r\n" TE "chunked\r\n\r\n0\r\n\r\n"),
	Q("TE and CL", P11 TE "chunked\r\n" CL "5\r\n\r\n0\r\n\r\n"),
	Q("TE chunked, identity", P11 TE "chunked, identity\r\n\r\n"),
	Q("TE identity", P11 TE "identity\r\n\r\nabc"),
	Q("TE xchunked", P11 TE "xchunked\r\n\r\nabc"),
	Q("TE chunked with trailing comma", P11 TE "chunked ,\r\n\r\n0\r\n\r\n"),
	Q("differing Content-Length", P11 CL "5\r\n" CL "6\r\n\r\nhello!"),
	Q("Content-Length with sign", P11 CL "+5\r\n\r\nhello"),
	Q("Content-Length not a number", P11 CL "abc\r\n\r\n"),
	Q("Content-Length with inner space", P11 CL "5 5\r\n\r\n"),
	Q("bare CR in a value", "GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n"),
	Q("NUL in a value", "GET / HTTP/1.1\r\n" H "X: a\0b\r\n\r\n"),
	Q("control byte in a value", "GET / HTTP/1.1\r\n" H "X: a\x01\r\n\r\n"),
	Q("DEL in a value", "GET / HTTP/1.1\r\n" H "X: a\x7f\r\n\r\n"),
	Q("separator in a name", "GET / HTTP/1.1\r\n" H "X(y): a\r\n\r\n"),
	Q("method with a separator", "G(T / HTTP/1.1\r\n" H "\r\n"),
	Q("DEL in the target", "GET /\x7f HTTP/1.1\r\n" H "\r\n"),
	Q("malformed version", "GET / HTTP/1.x\r\n" H "\r\n"),
	Q("chunk size not hex", CH "x\r\nhello\r\n0\r\n\r\n"),
	Q("chunk size overflow", CH "fffffffffffffffff\r\n"),
	Q("chunked twice", P11 TE "chunked, chunked\r\n\r\n0\r\n\r\n"),
	Q("CR CR LF ends a header line", "GET / HTTP/1.1\r\n" H "X: a\r\r\n\r\n"),

	/* Expected differences: shunt is stricter. */
	QX("TE in HTTP/1.0", "POST / HTTP/1.0\r\n" TE "chunked\r\n\r\n0\r\n\r\n", STRICTER,
	   "RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing"),
	QX("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", STRICTER,
	   "RFC 9112 5.1: whitespace between field name and colon MUST be rejected"),
	QX("space before colon, TE", P11 "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", STRICTER,
	   "RFC 9112 5.1; http-parser would read the body as empty, not chunked"),
	QX("obs-fold", "GET / HTTP/1.1\r\n" H "X: a\r\n b\r\n\r\n", STRICTER,
	   "RFC 9112 5.2: obs-fold rejected so nobody splices it differently"),
	QX("missing Host", "GET / HTTP/1.1\r\n\r\n", STRICTER,
	   "RFC 9112 3.2: an HTTP/1.1 request without Host gets 400"),
	QX("two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", STRICTER,
	   "RFC 9112 3.2: more than one Host gets 400 (routing ambiguity)"),
	QX("invalid Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", STRICTER,
	   "RFC 9112 3.2: an invalid Host value gets 400"),
	QX("double space in request line", "GET  / HTTP/1.1\r\n" H "\r\n", STRICTER,
	   "RFC 9112 3: exactly one SP between parts"),
	QX("HTTP/2.0 request line", "GET / HTTP/2.0\r\n" H "\r\n", STRICTER,
	   "only major version 1 speaks this grammar: 505"),
	QX("asterisk with GET", "GET * HTTP/1.1\r\n" H "\r\n", STRICTER,
	   "RFC 9112 3.2.4: asterisk-form only with OPTIONS"),
	QX("userinfo in absolute-form", "GET http://u@a/ HTTP/1.1\r\n" H "\r\n", STRICTER,
	   "RFC 9110 4.2.4: userinfo in an http URI is an error"),
	QX("CONNECT with a body", "CONNECT a:443 HTTP/1.1\r\n" H CL "3\r\n\r\nabc", STRICTER,
	   "RFC 9110 9.3.6: CONNECT has no content; bytes would go into the tunnel"),
	QX("chunked twice over two lines", P11 TE "chunked\r\n" TE "chunked\r\n\r\n0\r\n\r\n",
	   STRICTER, "RFC 9112 6.1: chunked MUST NOT be applied more than once"),
	QX("space after chunk size", CH "5 \r\nhello\r\n0\r\n\r\n", STRICTER,
	   "RFC 9112 7.1.1: BWS only before ';' of an extension"),
	QX("empty chunk extension", CH "5;\r\nhello\r\n0\r\n\r\n", STRICTER,
	   "RFC 9112 7.1.1: an extension needs a name"),
	QX("chunk data not followed by CRLF", CH "5\r\nhelloXX0\r\n\r\n", STRICTER,
	   "RFC 9112 7.1: http-parser skips any two bytes after chunk data (smuggling)"),
	QX("space before colon in a trailer", CH "0\r\nX : y\r\n\r\n", STRICTER,
	   "RFC 9112 5.1 applies to trailer fields too"),

	/* Expected differences: shunt is more lenient, as the RFC allows. */
	QX("identical Content-Length lines", P11 CL "5\r\n" CL "5\r\n\r\nhello", LENIENT,
	   "RFC 9110 8.6: identical Content-Length values may be accepted as one"),
	QX("identical Content-Length list", P11 CL "5, 5\r\n\r\nhello", LENIENT,
	   "RFC 9110 8.6: a list of identical values may be accepted as one"),
	QX("extension method", "FOO /x HTTP/1.1\r\n" H "\r\n", LENIENT,
	   "RFC 9110 9.1: a method is any token; http-parser knows a fixed list"),
	QX("lower-case method", "get /x HTTP/1.1\r\n" H "\r\n", LENIENT,
	   "RFC 9110 9.1: methods are case-sensitive tokens, 'get' is a valid unknown method"),

	/* Responses. */
	R("200 with length", GET, "HTTP/1.1 200 OK\r\n" CL "2\r\n\r\nok"),
	R("200 chunked", GET, "HTTP/1.1 200 OK\r\n" TE "chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
	R("200 until close", GET, "HTTP/1.1 200 OK\r\n\r\nall of this"),
	R("HTTP/1.0 until close", GET, "HTTP/1.0 200 OK\r\n\r\nall of this"),
	R("HTTP/1.0 keep-alive", GET,
	  "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n" CL "1\r\n\r\nx"),
	R("HEAD response", HEAD, "HTTP/1.1 200 OK\r\n" CL "100\r\n\r\n"),
	R("204", GET, "HTTP/1.1 204 No Content\r\n\r\n"),
	R("304", GET, "HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n"),
	R("100 Continue", POST, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"),
	RX("101 Switching Protocols", GET,
	   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	   DIFF_FIELDS, "after 101 no HTTP/1.1 message follows: shunt says no keep-alive"),
	R("gzip response reads to close", GET, "HTTP/1.1 200 OK\r\n" TE "gzip\r\n\r\nzzz"),
	R("no reason phrase", GET, "HTTP/1.1 404\r\n" CL "0\r\n\r\n"),
	R("TE and CL", GET, "HTTP/1.1 200 OK\r\n" TE "chunked\r\n" CL "5\r\n\r\n0\r\n\r\n"),
	R("differing Content-Length", GET, "HTTP/1.1 200 OK\r\n" CL "1\r\n" CL "2\r\n\r\nab"),
	R("malformed status", GET, "HTTP/1.1 2x0 OK\r\n\r\n"),
	RX("status 600", GET, "HTTP/1.1 600 X\r\n" CL "0\r\n\r\n", STRICTER,
	   "RFC 9110 15: status codes outside 100..599 are invalid"),
	RX("TE in an HTTP/1.0 response", GET, "HTTP/1.0 200 OK\r\n" TE "chunked\r\n\r\n0\r\n\r\n",
	   STRICTER, "RFC 9112 6.1: faulty framing"),
	RX("2xx to CONNECT", CONNECT, "HTTP/1.1 200 Connection Established\r\n\r\n", DIFF_FIELDS,
	   "http-parser cannot know the request was CONNECT: it reads to close, shunt tunnels"),
};

#define NCORPUS (sizeof(corpus) / sizeof(corpus[0]))

/* "accept", "incomplete" or "reject (why)"; two buffers so that both sides fit in one line. */
static const char *verdict(const struct side *s)
{
	static char b[2][96];
	static int k;

	k ^= 1;
	if (s->outcome == OUT_REJECT)
		snprintf(b[k], sizeof(b[k]), "reject (%s)", s->why);
	else
		snprintf(b[k], sizeof(b[k]), "%s", outcome_names[s->outcome]);
	return b[k];
}

static bool same_fields(const struct side *a, const struct side *b, char *what, size_t cap)
{
#define DIFF(cond, ...)                                                                            \
	do {                                                                                       \
		if (cond) {                                                                        \
			snprintf(what, cap, __VA_ARGS__);                                          \
			return false;                                                              \
		}                                                                                  \
	} while (0)
	DIFF(strcmp(a->method, b->method), "method %s vs %s", a->method, b->method);
	DIFF(strcmp(a->target, b->target), "target %s vs %s", a->target, b->target);
	DIFF(a->minor != b->minor, "minor %d vs %d", a->minor, b->minor);
	DIFF(a->status != b->status, "status %d vs %d", a->status, b->status);
	DIFF(strcmp(a->headers, b->headers), "headers %s vs %s", a->headers, b->headers);
	DIFF(a->body_len != b->body_len || memcmp(a->body, b->body, a->body_len),
	     "body %zu vs %zu bytes", a->body_len, b->body_len);
	DIFF(a->keep_alive != b->keep_alive, "keep-alive %d vs %d", a->keep_alive, b->keep_alive);
	DIFF(a->upgrade != b->upgrade, "upgrade %d vs %d", a->upgrade, b->upgrade);
	DIFF(a->used != b->used, "message length %zu vs %zu", a->used, b->used);
	return true;
#undef DIFF
}

int main(void)
{
	size_t agreed = 0, expected = 0;

	for (size_t i = 0; i < NCORPUS; i++) {
		const struct diff_case *c = &corpus[i];
		struct side us, hp;
		char what[8192] = "";

		run_shunt(c->in, c->len, c->response, c->req, &us);
		run_http_parser(c->in, c->len, c->response, c->req, &hp);
		bool fields = us.outcome == OUT_ACCEPT && hp.outcome == OUT_ACCEPT
				      ? same_fields(&us, &hp, what, sizeof(what))
				      : true;

		switch (c->expect) {
		case SAME:
			if (ok(us.outcome == hp.outcome && fields, "%s: both %s", c->name,
			       outcome_names[us.outcome]))
				agreed++;
			else
				tap_diag("shunt %s, http-parser %s %s", verdict(&us), verdict(&hp),
					 what);
			break;
		case STRICTER:
		case LENIENT: {
			enum outcome want_us = c->expect == STRICTER ? OUT_REJECT : OUT_ACCEPT;
			enum outcome want_hp = c->expect == STRICTER ? OUT_ACCEPT : OUT_REJECT;

			if (ok(us.outcome == want_us && hp.outcome == want_hp,
			       "%s: expected difference, shunt %s, http-parser %s: %s", c->name,
			       verdict(&us), verdict(&hp), c->why))
				expected++;
			break;
		}
		case DIFF_FIELDS:
			if (ok(us.outcome == OUT_ACCEPT && hp.outcome == OUT_ACCEPT && !fields,
			       "%s: expected difference in %s: %s", c->name, what, c->why))
				expected++;
			break;
		}
	}
	tap_diag("%zu cases agree with http-parser, %zu differ as expected", agreed, expected);
	return done_testing();
}
