/* Tests proxy/http1.c: request and response heads, smuggling shapes, limits, split feeding,
 * page-boundary input, the chunked decoder and chunk framing. */
#include <stdarg.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proxy/http1.h"
#include "tests/lib/tap.h"

#define NHDR 128

/* ---- summaries: one string per parsed head, so that a table row can say what it expects ---- */

static const char *const form_names[] = {"origin", "absolute", "authority", "asterisk"};

static void cat(char *b, size_t cap, const char *fmt, ...)
{
	size_t k = strlen(b);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b + k, cap - k, fmt, ap);
	va_end(ap);
}

static void body_summary(char *b, size_t cap, const struct http1_msg *m)
{
	switch (m->body) {
	case HTTP1_BODY_NONE:
		cat(b, cap, " none");
		break;
	case HTTP1_BODY_LENGTH:
		cat(b, cap, " len=%llu", (unsigned long long)m->content_length);
		break;
	case HTTP1_BODY_CHUNKED:
		cat(b, cap, " chunked");
		break;
	case HTTP1_BODY_UNTIL_CLOSE:
		cat(b, cap, " until-close");
		break;
	case HTTP1_BODY_TUNNEL:
		cat(b, cap, " tunnel");
		break;
	}
	cat(b, cap, m->keep_alive ? " ka" : " noka");
}

/* "GET / origin 1.1 h1 host=a none ka", plus auth=, path=, upgrade=, 100c when they apply. */
static const char *req_summary(const struct http1_msg *m)
{
	static char b[1024];

	b[0] = '\0';
	if (m->method == HTTP1_METHOD_OTHER)
		cat(b, sizeof(b), "other:%.*s", (int)m->method_name.len, m->method_name.p);
	else
		cat(b, sizeof(b), "%s", http1_method_name(m->method));
	cat(b, sizeof(b), " %.*s %s 1.%d h%zu", (int)m->target.len, m->target.p,
	    form_names[m->form], m->minor, m->nheaders);
	if (m->host.p)
		cat(b, sizeof(b), " host=%.*s", (int)m->host.len, m->host.p);
	if (m->form == HTTP1_FORM_ABSOLUTE || m->form == HTTP1_FORM_AUTHORITY)
		cat(b, sizeof(b), " auth=%.*s", (int)m->authority.len, m->authority.p);
	if (m->form == HTTP1_FORM_ABSOLUTE)
		cat(b, sizeof(b), " path=%.*s", (int)m->path.len, m->path.p);
	body_summary(b, sizeof(b), m);
	if (m->upgrade_requested)
		cat(b, sizeof(b), " upgrade=%.*s", (int)m->upgrade.len, m->upgrade.p);
	if (m->expect_continue)
		cat(b, sizeof(b), " 100c");
	return b;
}

/* `200 "OK" 1.1 h1 len=5 ka` */
static const char *resp_summary(const struct http1_msg *m)
{
	static char b[1024];

	b[0] = '\0';
	cat(b, sizeof(b), "%d \"%.*s\" 1.%d h%zu", m->status, (int)m->reason.len, m->reason.p,
	    m->minor, m->nheaders);
	body_summary(b, sizeof(b), m);
	return b;
}

/* Every span of a parsed head must lie inside the buffer it was parsed from. */
static bool spans_inside(const struct http1_msg *m, const char *buf, size_t n)
{
#define IN(s) (!(s).p || ((s).p >= buf && (s).p + (s).len <= buf + n))
	bool ok = IN(m->method_name) && IN(m->target) && IN(m->authority) && IN(m->path) &&
		  IN(m->reason) && IN(m->host) && IN(m->upgrade);

	for (size_t i = 0; i < m->nheaders; i++)
		ok = ok && IN(m->headers[i].name) && IN(m->headers[i].value);
	return ok;
#undef IN
}

/* ---- head tables ---------------------------------------------------------------------------- */

struct head_case {
	const char *name;
	const char *in;
	size_t len;
	enum http1_err err; /* HTTP1_OK: valid, and want is its summary */
	const char *want;
	enum http1_method req; /* responses: the request's method */
};

#define OK(name, in, want)                                                                         \
	{                                                                                          \
		name, in, sizeof(in) - 1, HTTP1_OK, want, HTTP1_METHOD_GET                         \
	}
#define BAD(name, in, e)                                                                           \
	{                                                                                          \
		name, in, sizeof(in) - 1, HTTP1_E_##e, NULL, HTTP1_METHOD_GET                      \
	}
#define ROK(name, req, in, want)                                                                   \
	{                                                                                          \
		name, in, sizeof(in) - 1, HTTP1_OK, want, HTTP1_METHOD_##req                       \
	}
#define RBAD(name, in, e)                                                                          \
	{                                                                                          \
		name, in, sizeof(in) - 1, HTTP1_E_##e, NULL, HTTP1_METHOD_GET                      \
	}

#define H   "Host: a\r\n"
#define G11 "GET / HTTP/1.1\r\n"
#define P11 "POST / HTTP/1.1\r\n" H
#define END "\r\n"
#define TE  "Transfer-Encoding: "
#define CL  "Content-Length: "

static const struct head_case requests[] = {
	/* Shapes that must work. */
	OK("simple GET", G11 H END, "GET / origin 1.1 h1 host=a none ka"),
	OK("HTTP/1.0 needs no Host, closes", "GET / HTTP/1.0\r\n\r\n",
	   "GET / origin 1.0 h0 none noka"),
	OK("HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	   "GET / origin 1.0 h1 none ka"),
	OK("HTTP/1.0 keep-alive then close",
	   "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
	   "GET / origin 1.0 h1 none noka"),
	OK("HTTP/1.1 close", G11 H "Connection: close\r\n\r\n",
	   "GET / origin 1.1 h2 host=a none noka"),
	OK("Connection list, any case", G11 H "Connection: foo, ClOsE\r\n\r\n",
	   "GET / origin 1.1 h2 host=a none noka"),
	OK("HTTP/1.2 is read as 1.1", "GET / HTTP/1.2\r\n" H END,
	   "GET / origin 1.2 h1 host=a none ka"),
	OK("query and odd but legal target bytes", "GET /a/b?c=d&e=%20|{}^ HTTP/1.1\r\n" H END,
	   "GET /a/b?c=d&e=%20|{}^ origin 1.1 h1 host=a none ka"),
	OK("POST Content-Length", P11 CL "5\r\n\r\n", "POST / origin 1.1 h2 host=a len=5 ka"),
	OK("Content-Length 0 is no body", P11 CL "0\r\n\r\n",
	   "POST / origin 1.1 h2 host=a none ka"),
	OK("Content-Length leading zeros", P11 CL "007\r\n\r\n",
	   "POST / origin 1.1 h2 host=a len=7 ka"),
	OK("Content-Length max", P11 CL "9223372036854775807\r\n\r\n",
	   "POST / origin 1.1 h2 host=a len=9223372036854775807 ka"),
	OK("identical Content-Length lines", P11 CL "5\r\n" CL "5\r\n\r\n",
	   "POST / origin 1.1 h3 host=a len=5 ka"),
	OK("identical Content-Length list", P11 CL "5, 5,5\r\n\r\n",
	   "POST / origin 1.1 h2 host=a len=5 ka"),
	OK("chunked", P11 TE "chunked\r\n\r\n", "POST / origin 1.1 h2 host=a chunked ka"),
	OK("chunked, any case", P11 TE "ChUnKeD\r\n\r\n", "POST / origin 1.1 h2 host=a chunked ka"),
	OK("gzip then chunked", P11 TE "gzip, chunked\r\n\r\n",
	   "POST / origin 1.1 h2 host=a chunked ka"),
	OK("codings over two lines", P11 TE "gzip\r\n" TE "chunked\r\n\r\n",
	   "POST / origin 1.1 h3 host=a chunked ka"),
	OK("Transfer_Encoding is just another field", P11 "Transfer_Encoding: chunked\r\n\r\n",
	   "POST / origin 1.1 h2 host=a none ka"),
	OK("absolute-form", "GET http://example.com:8080/a?b HTTP/1.1\r\nHost: x\r\n\r\n",
	   "GET http://example.com:8080/a?b absolute 1.1 h1 host=x auth=example.com:8080 "
	   "path=/a?b none ka"),
	OK("absolute-form without path", "GET https://example.com HTTP/1.1\r\n" H END,
	   "GET https://example.com absolute 1.1 h1 host=a auth=example.com path= none ka"),
	OK("absolute-form query only", "GET http://[::1]?q HTTP/1.1\r\n" H END,
	   "GET http://[::1]?q absolute 1.1 h1 host=a auth=[::1] path=?q none ka"),
	OK("CONNECT authority-form",
	   "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
	   "CONNECT example.com:443 authority 1.1 h1 host=example.com:443 auth=example.com:443 "
	   "none "
	   "ka"),
	OK("CONNECT IPv6", "CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n" H END,
	   "CONNECT [2001:db8::1]:8443 authority 1.1 h1 host=a auth=[2001:db8::1]:8443 none ka"),
	OK("CONNECT Content-Length 0", "CONNECT a:1 HTTP/1.1\r\n" H CL "0\r\n\r\n",
	   "CONNECT a:1 authority 1.1 h2 host=a auth=a:1 none ka"),
	OK("OPTIONS *", "OPTIONS * HTTP/1.1\r\n" H END, "OPTIONS * asterisk 1.1 h1 host=a none ka"),
	OK("WebSocket upgrade",
	   "GET /chat HTTP/1.1\r\n" H "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	   "GET /chat origin 1.1 h3 host=a none ka upgrade=websocket"),
	OK("Upgrade without Connection: upgrade", G11 H "Upgrade: websocket\r\n\r\n",
	   "GET / origin 1.1 h2 host=a none ka"),
	OK("Upgrade in HTTP/1.0 is ignored",
	   "GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
	   "GET / origin 1.0 h2 none noka"),
	OK("Expect: 100-continue", P11 CL "3\r\nExpect: 100-Continue\r\n\r\n",
	   "POST / origin 1.1 h3 host=a len=3 ka 100c"),
	OK("Expect in HTTP/1.0 is ignored", "POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
	   "POST / origin 1.0 h1 none noka"),
	OK("other Expect values are left to the caller", G11 H "Expect: foo\r\n\r\n",
	   "GET / origin 1.1 h2 host=a none ka"),
	OK("bare LF line endings", "GET / HTTP/1.1\nHost: a\n\n",
	   "GET / origin 1.1 h1 host=a none ka"),
	OK("mixed line endings", "GET / HTTP/1.1\r\nHost: a\n\r\n",
	   "GET / origin 1.1 h1 host=a none ka"),
	OK("empty lines before the request line", "\r\n\n\r\n" G11 H END,
	   "GET / origin 1.1 h1 host=a none ka"),
	OK("OWS around values", G11 "Host: \t a \t \r\n\r\n", "GET / origin 1.1 h1 host=a none ka"),
	OK("empty Host", G11 "Host:\r\n\r\n", "GET / origin 1.1 h1 host= none ka"),
	OK("Host with port and IPv6", G11 "Host: [::1]:8080\r\n\r\n",
	   "GET / origin 1.1 h1 host=[::1]:8080 none ka"),
	OK("Host IPv6 without port", G11 "Host: [fe80::1%25eth0]\r\n\r\n",
	   "GET / origin 1.1 h1 host=[fe80::1%25eth0] none ka"),
	OK("Host with empty port", G11 "Host: a:\r\n\r\n", "GET / origin 1.1 h1 host=a: none ka"),
	OK("Host name with sub-delims", G11 "Host: a-b_c.d~e!f\r\n\r\n",
	   "GET / origin 1.1 h1 host=a-b_c.d~e!f none ka"),
	OK("empty value", G11 H "X-Empty:\r\n\r\n", "GET / origin 1.1 h2 host=a none ka"),
	OK("obs-text in a value", G11 H "X: caf\xc3\xa9\r\n\r\n",
	   "GET / origin 1.1 h2 host=a none ka"),
	OK("extension method", "PURGE /x HTTP/1.1\r\n" H END,
	   "other:PURGE /x origin 1.1 h1 host=a none ka"),
	OK("methods are case-sensitive", "get / HTTP/1.1\r\n" H END,
	   "other:get / origin 1.1 h1 host=a none ka"),
	OK("token characters in a method", "M-1.x_!#$%&'*+^`|~ / HTTP/1.1\r\n" H END,
	   "other:M-1.x_!#$%&'*+^`|~ / origin 1.1 h1 host=a none ka"),
	OK("HEAD", "HEAD / HTTP/1.1\r\n" H END, "HEAD / origin 1.1 h1 host=a none ka"),
	OK("DELETE", "DELETE /r HTTP/1.1\r\n" H END, "DELETE /r origin 1.1 h1 host=a none ka"),

	/* Request line. */
	BAD("double space after method", "GET  / HTTP/1.1\r\n" H END, REQUEST_LINE),
	BAD("double space after target", "GET /  HTTP/1.1\r\n" H END, VERSION),
	BAD("leading space", " GET / HTTP/1.1\r\n" H END, REQUEST_LINE),
	BAD("trailing space", "GET / HTTP/1.1 \r\n" H END, VERSION),
	BAD("tab as separator", "GET\t/ HTTP/1.1\r\n" H END, METHOD),
	BAD("non-token method", "G(T / HTTP/1.1\r\n" H END, METHOD),
	BAD("HTTP/0.9 request", "GET /\r\n\r\n", REQUEST_LINE),
	BAD("method only", "GET\r\n\r\n", REQUEST_LINE),
	BAD("space in target", "GET /a b HTTP/1.1\r\n" H END, VERSION),
	BAD("DEL in target", "GET /\x7f HTTP/1.1\r\n" H END, TARGET),
	BAD("high byte in target", "GET /\x80 HTTP/1.1\r\n" H END, TARGET),
	BAD("NUL in target", "GET /\0 HTTP/1.1\r\n" H END, TARGET),
	BAD("NUL in method", "G\0T / HTTP/1.1\r\n" H END, METHOD),
	BAD("lower-case version", "GET / http/1.1\r\n" H END, VERSION),
	BAD("two-digit minor", "GET / HTTP/1.10\r\n" H END, VERSION),
	BAD("short version", "GET / HTTP/1\r\n" H END, VERSION),
	BAD("HTTP/2.0", "GET / HTTP/2.0\r\n" H END, VERSION_UNSUPPORTED),
	BAD("HTTP/0.9 version", "GET / HTTP/0.9\r\n" H END, VERSION_UNSUPPORTED),
	BAD("h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", VERSION_UNSUPPORTED),
	BAD("asterisk with GET", "GET * HTTP/1.1\r\n" H END, TARGET_FORM),
	BAD("authority-form with GET", "GET example.com:80 HTTP/1.1\r\n" H END, TARGET_FORM),
	BAD("origin-form with CONNECT", "CONNECT / HTTP/1.1\r\n" H END, TARGET_FORM),
	BAD("CONNECT without port", "CONNECT example.com HTTP/1.1\r\n" H END, TARGET),
	BAD("CONNECT port too big", "CONNECT a:65536 HTTP/1.1\r\n" H END, TARGET),
	BAD("CONNECT empty host", "CONNECT :443 HTTP/1.1\r\n" H END, TARGET),
	BAD("CONNECT with userinfo", "CONNECT u@a:443 HTTP/1.1\r\n" H END, TARGET),
	BAD("CONNECT broken IPv6", "CONNECT [::1:443 HTTP/1.1\r\n" H END, TARGET),
	BAD("CONNECT two colons", "CONNECT a:b:443 HTTP/1.1\r\n" H END, TARGET),
	BAD("CONNECT bracket in name", "CONNECT a]:443 HTTP/1.1\r\n" H END, TARGET),
	BAD("CONNECT empty port", "CONNECT a: HTTP/1.1\r\n" H END, TARGET),
	BAD("absolute-form with userinfo", "GET http://user@a/ HTTP/1.1\r\n" H END, TARGET),
	BAD("absolute-form empty authority", "GET http:///x HTTP/1.1\r\n" H END, TARGET),
	BAD("absolute-form bracket in name", "GET http://a]b/ HTTP/1.1\r\n" H END, TARGET),
	BAD("scheme starting with a digit", "GET 1http://a/ HTTP/1.1\r\n" H END, TARGET),
	BAD("no scheme colon", "GET abc HTTP/1.1\r\n" H END, TARGET),
	BAD("urn is not for proxies", "GET urn:isbn:1 HTTP/1.1\r\n" H END, TARGET_FORM),

	/* Line endings and control bytes. */
	BAD("bare CR in request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", BARE_CR),
	BAD("CR CR LF", "GET / HTTP/1.1\r\r\n" H END, BARE_CR),
	BAD("bare CR in target", "GET /a\rb HTTP/1.1\r\n" H END, BARE_CR),
	BAD("bare CR in value", G11 H "X: a\rb\r\n\r\n", BARE_CR),
	BAD("bare CR ends value", G11 H "X: a\r\r\n\r\n", BARE_CR),
	BAD("bare CR in name", G11 H "X\ry: a\r\n\r\n", BARE_CR),
	BAD("bare CR as blank line", G11 H "\r\r\n", BARE_CR),
	BAD("NUL in value", G11 H "X: a\0b\r\n\r\n", HEADER_VALUE),
	BAD("NUL in name", G11 H "X\0: a\r\n\r\n", HEADER_NAME),
	BAD("DEL in value", G11 H "X: a\x7f\r\n\r\n", HEADER_VALUE),
	BAD("VT in value", G11 H "X: a\x0b\r\n\r\n", HEADER_VALUE),
	BAD("ESC in value", G11 H "X: \x1b[0m\r\n\r\n", HEADER_VALUE),

	/* Field lines. */
	BAD("space before colon", G11 "Host : a\r\n\r\n", HEADER_NAME_SPACE),
	BAD("tab before colon", G11 H "Content-Length\t: 5\r\n\r\n", HEADER_NAME_SPACE),
	BAD("space before colon, TE", P11 "Transfer-Encoding : chunked\r\n\r\n", HEADER_NAME_SPACE),
	BAD("space inside a name", G11 H "X a: b\r\n\r\n", HEADER_NAME),
	BAD("obs-fold", G11 H "X: a\r\n b\r\n\r\n", OBS_FOLD),
	BAD("obs-fold with tab", G11 H "X: a\r\n\tb\r\n\r\n", OBS_FOLD),
	BAD("whitespace before the first field", G11 " Host: a\r\n\r\n", OBS_FOLD),
	BAD("empty name", G11 H ": a\r\n\r\n", HEADER_NAME),
	BAD("no colon", G11 H "X\r\n\r\n", HEADER_NO_COLON),
	BAD("separator in name", G11 H "X(y): a\r\n\r\n", HEADER_NAME),
	BAD("DEL in name", G11 H "X\x7f: a\r\n\r\n", HEADER_NAME),
	BAD("high byte in name", G11 H "X\xc3\xa9: a\r\n\r\n", HEADER_NAME),

	/* Host. */
	BAD("missing Host in HTTP/1.1", G11 END, HOST_MISSING),
	BAD("two Host lines", G11 H "Host: b\r\n\r\n", HOST_REPEATED),
	BAD("two identical Host lines", G11 H H END, HOST_REPEATED),
	BAD("space in Host", G11 "Host: a b\r\n\r\n", HOST_INVALID),
	BAD("userinfo in Host", G11 "Host: u@a\r\n\r\n", HOST_INVALID),
	BAD("path in Host", G11 "Host: a/b\r\n\r\n", HOST_INVALID),
	BAD("two colons in Host", G11 "Host: a:b:80\r\n\r\n", HOST_INVALID),
	BAD("bracket in a Host name", G11 "Host: a]\r\n\r\n", HOST_INVALID),
	BAD("IPv6 Host without brackets closed", G11 "Host: [::1\r\n\r\n", HOST_INVALID),
	BAD("junk after IPv6 Host", G11 "Host: [::1]x\r\n\r\n", HOST_INVALID),
	BAD("non-digit Host port", G11 "Host: a:8x\r\n\r\n", HOST_INVALID),

	/* Content-Length. */
	BAD("Content-Length with plus", P11 CL "+5\r\n\r\n", CONTENT_LENGTH),
	BAD("negative Content-Length", P11 CL "-5\r\n\r\n", CONTENT_LENGTH),
	BAD("Content-Length with inner space", P11 CL "5 5\r\n\r\n", CONTENT_LENGTH),
	BAD("hex Content-Length", P11 CL "0x5\r\n\r\n", CONTENT_LENGTH),
	BAD("empty Content-Length", P11 CL "\r\n\r\n", CONTENT_LENGTH),
	BAD("Content-Length trailing comma", P11 CL "5,\r\n\r\n", CONTENT_LENGTH),
	BAD("Content-Length empty element", P11 CL "5,,5\r\n\r\n", CONTENT_LENGTH),
	BAD("Content-Length overflow", P11 CL "9223372036854775808\r\n\r\n", CONTENT_LENGTH),
	BAD("Content-Length 2^64", P11 CL "18446744073709551616\r\n\r\n", CONTENT_LENGTH),
	BAD("Content-Length fraction", P11 CL "5.0\r\n\r\n", CONTENT_LENGTH),

	/* Request smuggling. */
	BAD("differing Content-Length lines", P11 CL "5\r\n" CL "6\r\n\r\n", CL_CONFLICT),
	BAD("differing Content-Length list", P11 CL "5, 6\r\n\r\n", CL_CONFLICT),
	BAD("CL then TE", P11 CL "5\r\n" TE "chunked\r\n\r\n", TE_CL),
	BAD("TE then CL", P11 TE "chunked\r\n" CL "5\r\n\r\n", TE_CL),
	BAD("TE then CL 0", P11 TE "chunked\r\n" CL "0\r\n\r\n", TE_CL),
	BAD("TE in HTTP/1.0", "POST / HTTP/1.0\r\n" TE "chunked\r\n\r\n", TE_HTTP10),
	BAD("TE chunked, identity", P11 TE "chunked, identity\r\n\r\n", TE_NOT_CHUNKED),
	BAD("TE identity", P11 TE "identity\r\n\r\n", TE_NOT_CHUNKED),
	BAD("TE xchunked", P11 TE "xchunked\r\n\r\n", TE_NOT_CHUNKED),
	BAD("TE chunked then gzip line", P11 TE "chunked\r\n" TE "gzip\r\n\r\n", TE_NOT_CHUNKED),
	BAD("TE chunked trailing comma", P11 TE "chunked ,\r\n\r\n", TE_INVALID),
	BAD("TE leading comma", P11 TE ", chunked\r\n\r\n", TE_INVALID),
	BAD("TE chunked twice", P11 TE "chunked, chunked\r\n\r\n", TE_INVALID),
	BAD("TE chunked twice over two lines", P11 TE "chunked\r\n" TE "chunked\r\n\r\n",
	    TE_INVALID),
	BAD("TE with parameter", P11 TE "chunked;q=1\r\n\r\n", TE_INVALID),
	BAD("TE quoted", P11 TE "\"chunked\"\r\n\r\n", TE_INVALID),
	BAD("TE empty", P11 TE "\r\n\r\n", TE_INVALID),
	BAD("TE chunked with inner space", P11 TE "chun ked\r\n\r\n", TE_INVALID),
	BAD("TE with VT", P11 TE "chunked\x0b\r\n\r\n", HEADER_VALUE),
	BAD("TE with NUL", P11 TE "chunked\0\r\n\r\n", HEADER_VALUE),
	BAD("CONNECT with Content-Length", "CONNECT a:1 HTTP/1.1\r\n" H CL "5\r\n\r\n",
	    CONNECT_BODY),
	BAD("CONNECT with TE", "CONNECT a:1 HTTP/1.1\r\n" H TE "chunked\r\n\r\n", CONNECT_BODY),
};

static const struct head_case responses[] = {
	ROK("200 with length", GET, "HTTP/1.1 200 OK\r\n" CL "5\r\n\r\n",
	    "200 \"OK\" 1.1 h1 len=5 ka"),
	ROK("200 without framing reads to close", GET, "HTTP/1.1 200 OK\r\n\r\n",
	    "200 \"OK\" 1.1 h0 until-close noka"),
	ROK("chunked", GET, "HTTP/1.1 200 OK\r\n" TE "chunked\r\n\r\n",
	    "200 \"OK\" 1.1 h1 chunked ka"),
	ROK("gzip, chunked", GET, "HTTP/1.1 200 OK\r\n" TE "gzip, chunked\r\n\r\n",
	    "200 \"OK\" 1.1 h1 chunked ka"),
	ROK("final coding not chunked reads to close", GET, "HTTP/1.1 200 OK\r\n" TE "gzip\r\n\r\n",
	    "200 \"OK\" 1.1 h1 until-close noka"),
	ROK("Content-Length 0", GET, "HTTP/1.1 200 OK\r\n" CL "0\r\n\r\n",
	    "200 \"OK\" 1.1 h1 none ka"),
	ROK("HEAD response has no body", HEAD, "HTTP/1.1 200 OK\r\n" CL "5\r\n\r\n",
	    "200 \"OK\" 1.1 h1 none ka"),
	ROK("HEAD response, chunked", HEAD, "HTTP/1.1 200 OK\r\n" TE "chunked\r\n\r\n",
	    "200 \"OK\" 1.1 h1 none ka"),
	ROK("204", GET, "HTTP/1.1 204 No Content\r\n\r\n", "204 \"No Content\" 1.1 h0 none ka"),
	ROK("204 ignores Content-Length", GET, "HTTP/1.1 204 No Content\r\n" CL "5\r\n\r\n",
	    "204 \"No Content\" 1.1 h1 none ka"),
	ROK("304", GET, "HTTP/1.1 304 Not Modified\r\n" CL "5\r\n\r\n",
	    "304 \"Not Modified\" 1.1 h1 none ka"),
	ROK("100 Continue", POST, "HTTP/1.1 100 Continue\r\n\r\n",
	    "100 \"Continue\" 1.1 h0 none ka"),
	ROK("103 Early Hints", GET, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
	    "103 \"Early Hints\" 1.1 h1 none ka"),
	ROK("101 Switching Protocols", GET,
	    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	    "101 \"Switching Protocols\" 1.1 h2 tunnel noka"),
	ROK("2xx to CONNECT", CONNECT, "HTTP/1.1 200 Connection Established\r\n\r\n",
	    "200 \"Connection Established\" 1.1 h0 tunnel noka"),
	ROK("407 to CONNECT", CONNECT,
	    "HTTP/1.1 407 Proxy Authentication Required\r\n" CL "2\r\n\r\n",
	    "407 \"Proxy Authentication Required\" 1.1 h1 len=2 ka"),
	ROK("HTTP/1.0 closes", GET, "HTTP/1.0 200 OK\r\n" CL "1\r\n\r\n",
	    "200 \"OK\" 1.0 h1 len=1 noka"),
	ROK("HTTP/1.0 keep-alive", GET,
	    "HTTP/1.0 200 OK\r\n" CL "1\r\nConnection: keep-alive\r\n\r\n",
	    "200 \"OK\" 1.0 h2 len=1 ka"),
	ROK("close", GET, "HTTP/1.1 200 OK\r\n" CL "1\r\nConnection: close\r\n\r\n",
	    "200 \"OK\" 1.1 h2 len=1 noka"),
	ROK("no reason, no space", GET, "HTTP/1.1 200\r\n" CL "0\r\n\r\n",
	    "200 \"\" 1.1 h1 none ka"),
	ROK("empty reason", GET, "HTTP/1.1 200 \r\n" CL "0\r\n\r\n", "200 \"\" 1.1 h1 none ka"),
	ROK("reason with spaces and obs-text", GET, "HTTP/1.1 404 Not \xc3\xa9 Found\r\n\r\n",
	    "404 \"Not \xc3\xa9 Found\" 1.1 h0 until-close noka"),
	ROK("599", GET, "HTTP/1.1 599 X\r\n" CL "0\r\n\r\n", "599 \"X\" 1.1 h1 none ka"),
	ROK("bare LF", GET, "HTTP/1.1 200 OK\n" CL "0\n\n", "200 \"OK\" 1.1 h1 none ka"),
	ROK("responses may repeat Host", GET, "HTTP/1.1 200 OK\r\n" H H CL "0\r\n\r\n",
	    "200 \"OK\" 1.1 h3 none ka"),

	RBAD("two-digit status", "HTTP/1.1 20 OK\r\n\r\n", STATUS),
	RBAD("four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", STATUS),
	RBAD("status below 100", "HTTP/1.1 099 X\r\n\r\n", STATUS),
	RBAD("status above 599", "HTTP/1.1 600 X\r\n\r\n", STATUS),
	RBAD("letters in status", "HTTP/1.1 2x0 X\r\n\r\n", STATUS),
	RBAD("double space", "HTTP/1.1  200 OK\r\n\r\n", STATUS),
	RBAD("tab after version", "HTTP/1.1\t200 OK\r\n\r\n", STATUS_LINE),
	RBAD("version only", "HTTP/1.1\r\n\r\n", STATUS_LINE),
	RBAD("HTTP/2", "HTTP/2 200\r\n\r\n", VERSION),
	RBAD("HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", VERSION_UNSUPPORTED),
	RBAD("ICY", "ICY 200 OK\r\n\r\n", VERSION),
	RBAD("short line", "HTTP/1\r\n\r\n", VERSION),
	RBAD("TE and CL", "HTTP/1.1 200 OK\r\n" TE "chunked\r\n" CL "5\r\n\r\n", TE_CL),
	RBAD("TE in HTTP/1.0", "HTTP/1.0 200 OK\r\n" TE "chunked\r\n\r\n", TE_HTTP10),
	RBAD("TE chunked twice", "HTTP/1.1 200 OK\r\n" TE "chunked, chunked\r\n\r\n", TE_INVALID),
	RBAD("differing CL", "HTTP/1.1 200 OK\r\n" CL "1\r\n" CL "2\r\n\r\n", CL_CONFLICT),
	RBAD("bare CR in reason", "HTTP/1.1 200 O\rK\r\n\r\n", BARE_CR),
	RBAD("bare CR after status", "HTTP/1.1 200\rX\r\n\r\n", BARE_CR),
	RBAD("control byte in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", STATUS_LINE),
	RBAD("obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", OBS_FOLD),
	RBAD("space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n",
	     HEADER_NAME_SPACE),
};

#define NREQ  (sizeof(requests) / sizeof(requests[0]))
#define NRESP (sizeof(responses) / sizeof(responses[0]))

/* ---- running one case ------------------------------------------------------------------------ */

struct outcome {
	int ret;
	enum http1_err err;
	char summary[1024];
	char headers[2048]; /* "name=value|..." */
};

static void begin(struct http1_parser *p, bool response, enum http1_method req,
		  const struct http1_limits *lim, struct http1_header *h, size_t cap)
{
	if (response)
		http1_response_begin(p, lim, h, cap, req);
	else
		http1_request_begin(p, lim, h, cap);
}

static int parse(struct http1_parser *p, bool response, const char *buf, size_t len,
		 struct http1_msg *m)
{
	return response ? http1_parse_response(p, buf, len, m)
			: http1_parse_request(p, buf, len, m);
}

static void record(struct outcome *o, int ret, const struct http1_parser *p,
		   const struct http1_msg *m, bool response)
{
	memset(o, 0, sizeof(*o));
	o->ret = ret;
	o->err = ret == HTTP1_INVALID ? p->err : HTTP1_OK;
	if (ret <= 0)
		return;
	snprintf(o->summary, sizeof(o->summary), "%s", response ? resp_summary(m) : req_summary(m));
	for (size_t i = 0; i < m->nheaders; i++)
		cat(o->headers, sizeof(o->headers), "%.*s=%.*s|", (int)m->headers[i].name.len,
		    m->headers[i].name.p, (int)m->headers[i].value.len, m->headers[i].value.p);
}

/* Feeds in[0..len) in pieces ending at the given cut points, each call from a fresh copy of
 * everything so far, so that a parser keeping pointers into an old buffer would be caught. */
static void run_split(const struct head_case *c, bool response, const size_t *cuts, size_t ncuts,
		      struct outcome *o)
{
	struct http1_header h[NHDR];
	struct http1_parser p;
	struct http1_msg m;
	int ret = HTTP1_INCOMPLETE;
	char *prev = NULL;

	begin(&p, response, c->req, NULL, h, NHDR);
	for (size_t i = 0; i < ncuts && ret == HTTP1_INCOMPLETE; i++) {
		char *b = malloc(cuts[i] ? cuts[i] : 1);

		memcpy(b, c->in, cuts[i]);
		ret = parse(&p, response, b, cuts[i], &m);
		free(prev);
		prev = b;
		if (ret > 0 && !spans_inside(&m, b, cuts[i]))
			ret = -100;
		if (ret != HTTP1_INCOMPLETE)
			record(o, ret, &p, &m, response);
	}
	if (ret == HTTP1_INCOMPLETE)
		record(o, ret, &p, &m, response);
	free(prev);
}

static void check_table(const struct head_case *cases, size_t n, bool response)
{
	const char *dir = response ? "response" : "request";

	for (size_t i = 0; i < n; i++) {
		const struct head_case *c = &cases[i];
		size_t whole = c->len;
		struct outcome one, split;
		bool same = true;

		run_split(c, response, &whole, 1, &one);
		if (c->err == HTTP1_OK) {
			if (ok(one.ret == (int)c->len, "%s %s: consumes the head", dir, c->name))
				is_str(one.summary, c->want, "%s %s: fields", dir, c->name);
			else
				tap_diag("  got %d (%s)", one.ret, http1_err_text(one.err));
		} else {
			if (ok(one.ret == HTTP1_INVALID, "%s %s: invalid", dir, c->name))
				is_str(http1_err_text(one.err), http1_err_text(c->err),
				       "%s %s: reason", dir, c->name);
			else
				tap_diag("  got %d (%s)", one.ret, one.summary);
		}

		/* Every split into two pieces, then one byte at a time, gives the same outcome. */
		for (size_t k = 0; k <= c->len && same; k++) {
			size_t cuts[2] = {k, c->len};

			run_split(c, response, cuts, 2, &split);
			same = split.ret == one.ret && split.err == one.err &&
			       !strcmp(split.summary, one.summary) &&
			       !strcmp(split.headers, one.headers);
			if (!same)
				tap_diag("split at %zu: ret %d err %d (%s)", k, split.ret,
					 split.err, split.summary);
		}
		if (same) {
			size_t *cuts = malloc((c->len + 1) * sizeof(*cuts));

			for (size_t k = 0; k <= c->len; k++)
				cuts[k] = k;
			run_split(c, response, cuts, c->len + 1, &split);
			same = split.ret == one.ret && split.err == one.err &&
			       !strcmp(split.summary, one.summary) &&
			       !strcmp(split.headers, one.headers);
			free(cuts);
		}
		ok(same, "%s %s: same outcome at every split point and byte by byte", dir, c->name);
	}
}

/* ---- header spans ----------------------------------------------------------------------------- */

static void test_header_spans(void)
{
	static const struct {
		const char *line, *name, *value;
	} cases[] = {
		{"X: a", "X", "a"},
		{"X:a", "X", "a"},
		{"X:   a b  ", "X", "a b"},
		{"X:\t a\tb\t ", "X", "a\tb"},
		{"X:", "X", ""},
		{"X:   ", "X", ""},
		{"Some-Long_Name.v2: v", "Some-Long_Name.v2", "v"},
		{"X: \"quoted, with: colon\"", "X", "\"quoted, with: colon\""},
		{"X: 12345678901234567890123456789012345678901234567890", "X",
		 "12345678901234567890123456789012345678901234567890"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char in[256];
		struct http1_header h[4];
		struct http1_parser p;
		struct http1_msg m;
		int n = snprintf(in, sizeof(in), "GET / HTTP/1.0\r\n%s\r\n\r\n", cases[i].line);

		http1_request_begin(&p, NULL, h, 4);
		if (!ok(http1_parse_request(&p, in, (size_t)n, &m) == n, "field line '%s'",
			cases[i].line))
			continue;
		char name[64], value[128];

		snprintf(name, sizeof(name), "%.*s", (int)h[0].name.len, h[0].name.p);
		snprintf(value, sizeof(value), "%.*s", (int)h[0].value.len, h[0].value.p);
		is_str(name, cases[i].name, "name of '%s'", cases[i].line);
		is_str(value, cases[i].value, "value of '%s' trimmed of OWS", cases[i].line);
		ok(h[0].name.p == in + 16, "name points into the input");
	}
}

/* ---- limits ------------------------------------------------------------------------------------ */

/* A request of exactly `total` bytes: request line, Host, one filler field, blank line. */
static char *request_of_size(size_t total)
{
	static const char head[] = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
	size_t fixed = sizeof(head) - 1 + 4;
	char *b = malloc(total + 1);

	memcpy(b, head, sizeof(head) - 1);
	memset(b + sizeof(head) - 1, 'v', total - fixed);
	memcpy(b + total - 4, "\r\n\r\n", 5);
	return b;
}

static int parse_with(const struct http1_limits *lim, const char *in, size_t len, size_t cap,
		      enum http1_err *err)
{
	struct http1_header *h = calloc(cap ? cap : 1, sizeof(*h));
	struct http1_parser p;
	struct http1_msg m;
	int r;

	http1_request_begin(&p, lim, h, cap);
	r = http1_parse_request(&p, in, len, &m);
	*err = p.err;
	free(h);
	return r;
}

/* A request with Host and n-1 more fields. */
static char *request_with_fields(size_t n, size_t *len)
{
	size_t cap = 64 + n * 16, k;
	char *b = malloc(cap);

	k = (size_t)snprintf(b, cap, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (size_t i = 1; i < n; i++)
		k += (size_t)snprintf(b + k, cap - k, "X-%zu: v\r\n", i);
	k += (size_t)snprintf(b + k, cap - k, "\r\n");
	*len = k;
	return b;
}

static void test_limits(void)
{
	static const struct {
		uint32_t limit; /* 0: the default */
	} head_cases[] = {{0}, {64}, {1000}, {4096}};
	enum http1_err err;
	size_t len;
	char *b;

	for (size_t i = 0; i < sizeof(head_cases) / sizeof(head_cases[0]); i++) {
		struct http1_limits lim = {.max_head_bytes = head_cases[i].limit};
		size_t max = lim.max_head_bytes ? lim.max_head_bytes : HTTP1_MAX_HEAD_BYTES_DEF;

		b = request_of_size(max);
		is_int(parse_with(&lim, b, max, NHDR, &err), (int)max, "head of exactly %zu bytes",
		       max);
		free(b);
		b = request_of_size(max + 1);
		is_int(parse_with(&lim, b, max + 1, NHDR, &err), HTTP1_INVALID,
		       "head of %zu bytes refused", max + 1);
		is_int(err, HTTP1_E_HEAD_TOO_LARGE, "... as too large");
		is_int(parse_with(&lim, b, max, NHDR, &err), HTTP1_INVALID,
		       "its first %zu bytes already refused", max);
		is_int(parse_with(&lim, b, max - 1, NHDR, &err), HTTP1_INCOMPLETE,
		       "its first %zu bytes still incomplete", max - 1);
		free(b);
	}
	is_int(http1_err_status(HTTP1_E_HEAD_TOO_LARGE), 431, "head too large is 431");

	static const struct {
		uint32_t limit; /* 0: the default */
		size_t cap;	/* caller's array */
		size_t bound;	/* the one that applies */
	} count_cases[] = {
		{0, NHDR, HTTP1_MAX_HEADERS_DEF},
		{10, NHDR, 10},
		{0, 20, 20},
		{1, NHDR, 1},
	};
	for (size_t i = 0; i < sizeof(count_cases) / sizeof(count_cases[0]); i++) {
		struct http1_limits lim = {.max_headers = count_cases[i].limit};
		size_t n = count_cases[i].bound;

		b = request_with_fields(n, &len);
		is_int(parse_with(&lim, b, len, count_cases[i].cap, &err), (int)len,
		       "%zu fields with limit %u and array %zu", n, count_cases[i].limit,
		       count_cases[i].cap);
		free(b);
		b = request_with_fields(n + 1, &len);
		is_int(parse_with(&lim, b, len, count_cases[i].cap, &err), HTTP1_INVALID,
		       "%zu fields refused", n + 1);
		is_int(err, HTTP1_E_TOO_MANY_HEADERS, "... as too many");
		free(b);
	}
	is_int(http1_err_status(HTTP1_E_TOO_MANY_HEADERS), 431, "too many fields is 431");
	b = request_with_fields(1, &len);
	is_int(parse_with(NULL, b, len, 0, &err), HTTP1_INVALID, "an empty array holds no field");
	free(b);

	/* Request line: "GET /xxx HTTP/1.1" of exactly the limit, and one more. */
	static const struct {
		uint32_t limit;
		const char *eol;
	} line_cases[] = {{64, "\r\n"}, {64, "\n"}, {200, "\r\n"}};
	for (size_t i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
		struct http1_limits lim = {.max_request_line = line_cases[i].limit};
		char in[512];

		for (uint32_t extra = 0; extra <= 1; extra++) {
			size_t line = line_cases[i].limit + extra, path = line - 13;
			int n;

			memset(in, 0, sizeof(in));
			memcpy(in, "GET ", 4);
			memset(in + 4, 'p', path);
			in[4] = '/';
			n = snprintf(in + 4 + path, sizeof(in) - 4 - path, " HTTP/1.1%sHost: a%s%s",
				     line_cases[i].eol, line_cases[i].eol, line_cases[i].eol);
			len = 4 + path + (size_t)n;
			int r = parse_with(&lim, in, len, NHDR, &err);

			if (!extra) {
				is_int(r, (int)len, "request line of %zu bytes, limit %u", line,
				       line_cases[i].limit);
				continue;
			}
			is_int(r, HTTP1_INVALID, "request line of %zu bytes, limit %u", line,
			       line_cases[i].limit);
			is_int(err, HTTP1_E_URI_TOO_LONG, "... is too long");
			/* Without its line end it is already known to be too long. */
			is_int(parse_with(&lim, in, 4 + path + 9 + 1, NHDR, &err), HTTP1_INVALID,
			       "... even before its line end");
		}
	}
	is_int(http1_err_status(HTTP1_E_URI_TOO_LONG), 414, "request line too long is 414");
}

/* ---- page boundary ---------------------------------------------------------------------------- */

/* Two pages, the second inaccessible: input placed flush against it faults on any over-read. */
struct guard {
	char *base;
	size_t page;
};

static bool guard_init(struct guard *g)
{
	g->page = (size_t)sysconf(_SC_PAGESIZE);
	g->base =
		mmap(NULL, 2 * g->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g->base == MAP_FAILED)
		return false;
	return mprotect(g->base + g->page, g->page, PROT_NONE) == 0;
}

static char *guard_place(struct guard *g, const char *in, size_t len)
{
	char *at = g->base + g->page - len;

	memcpy(at, in, len);
	return at;
}

static void test_page_boundary(struct guard *g)
{
	size_t checked = 0, good = 0;

	for (int dir = 0; dir < 2; dir++) {
		const struct head_case *cases = dir ? responses : requests;
		size_t n = dir ? NRESP : NREQ;

		for (size_t i = 0; i < n; i++) {
			struct outcome whole;
			size_t full = cases[i].len;

			run_split(&cases[i], dir, &full, 1, &whole);
			for (size_t k = 0; k <= cases[i].len; k++) {
				struct http1_header h[NHDR];
				struct http1_parser p;
				struct http1_msg m;
				char *at = guard_place(g, cases[i].in, k);
				int r;

				begin(&p, dir, cases[i].req, NULL, h, NHDR);
				r = parse(&p, dir, at, k, &m);
				checked++;
				/* A prefix is incomplete or already as invalid as the whole. */
				if (k == cases[i].len
					    ? r == whole.ret
					    : (r == HTTP1_INCOMPLETE ||
					       (r == HTTP1_INVALID && p.err == whole.err)))
					good++;
				else
					tap_diag("%s prefix %zu: %d", cases[i].name, k, r);
			}
		}
	}
	is_int(good, checked, "%zu heads and prefixes flush against an unmapped page", checked);
}

/* ---- pipelining -------------------------------------------------------------------------------- */

static void test_pipelining(void)
{
	static const char in[] = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
				 "GET /b HTTP/1.1\r\nHost: a\r\n\r\n"
				 "\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n";
	static const char *const want[] = {
		"POST /a origin 1.1 h2 host=a len=3 ka",
		"GET /b origin 1.1 h1 host=a none ka",
		"GET /c origin 1.1 h1 host=a none ka",
	};
	struct http1_header h[8];
	struct http1_parser p;
	struct http1_msg m;
	size_t off = 0;

	for (size_t i = 0; i < 3; i++) {
		int r;

		http1_request_begin(&p, NULL, h, 8);
		r = http1_parse_request(&p, in + off, sizeof(in) - 1 - off, &m);
		if (!ok(r > 0, "pipelined request %zu parses", i + 1))
			return;
		is_str(req_summary(&m), want[i], "pipelined request %zu fields", i + 1);
		off += (size_t)r + (m.body == HTTP1_BODY_LENGTH ? m.content_length : 0);
	}
	is_int(off, sizeof(in) - 1, "three pipelined requests consume the input exactly");

	/* Calling again after success neither re-reads the body nor touches msg. */
	struct http1_msg again = {.status = 7};

	http1_request_begin(&p, NULL, h, 8);
	is_int(http1_parse_request(&p, in, sizeof(in) - 1, &m), 48, "first head");
	is_int(http1_parse_request(&p, in, sizeof(in) - 1, &again), 48, "same count again");
	ok(again.status == 7 && h[0].name.p == in + 18, "msg and headers left alone");
}

/* ---- chunked decoder --------------------------------------------------------------------------- */

struct chunk_case {
	const char *name;
	const char *in;
	size_t len;
	enum http1_err err; /* HTTP1_OK: complete after `used` bytes */
	const char *body;
	size_t body_len;
	const char *trailers;
	size_t rest; /* bytes left after the body (the next message) */
};

#define COK(name, in, body, trailers, rest)                                                        \
	{                                                                                          \
		name, in, sizeof(in) - 1, HTTP1_OK, body, sizeof(body) - 1, trailers, rest         \
	}
#define CBAD(name, in, e)                                                                          \
	{                                                                                          \
		name, in, sizeof(in) - 1, HTTP1_E_##e, NULL, 0, NULL, 0                            \
	}

static const struct chunk_case chunks[] = {
	COK("one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", "", 0),
	COK("two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", "", 0),
	COK("empty body", "0\r\n\r\n", "", "", 0),
	COK("hex digits, both cases", "a\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n",
	    "0123456789abcdefghijk", "", 0),
	COK("leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", "", 0),
	COK("extension", "5;foo=bar\r\nhello\r\n0\r\n\r\n", "hello", "", 0),
	COK("extension without value", "5;foo\r\nhello\r\n0\r\n\r\n", "hello", "", 0),
	COK("extensions with BWS", "5 ;\tfoo = bar ; baz\r\nhello\r\n0\r\n\r\n", "hello", "", 0),
	COK("quoted extension", "5;a=\"q;\\\"x\\\\ \"\r\nhello\r\n0\r\n\r\n", "hello", "", 0),
	COK("extension on the last chunk", "5\r\nhello\r\n0;end=1\r\n\r\n", "hello", "", 0),
	COK("trailers", "5\r\nhello\r\n0\r\nX-Sum: 1 \r\nY:2\r\n\r\n", "hello", "X-Sum=1|Y=2|", 0),
	COK("bare LF everywhere", "5\nhello\n0\nX: y\n\n", "hello", "X=y|", 0),
	COK("CR and LF in data are data", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n", "", 0),
	COK("next message follows", "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "abc", "", 16),
	COK("binary data", "3\r\n\0\xff\n\r\n0\r\n\r\n", "\0\xff\n", "", 0),

	CBAD("not hex", "x\r\n", CHUNK_SIZE),
	CBAD("0x prefix", "0x5\r\nhello\r\n", CHUNK_SIZE),
	CBAD("negative", "-5\r\n", CHUNK_SIZE),
	CBAD("leading space", " 5\r\n", CHUNK_SIZE),
	CBAD("empty size line", "\r\n", BARE_CR),
	CBAD("trailing space", "5 \r\nhello\r\n0\r\n\r\n", CHUNK_EXT),
	CBAD("size overflow 2^63", "8000000000000000\r\n", CHUNK_SIZE),
	CBAD("size overflow 2^64", "10000000000000000\r\n", CHUNK_SIZE),
	CBAD("bare CR after size", "5\rhello\r\n", BARE_CR),
	CBAD("data too long", "5\r\nhelloX\r\n0\r\n\r\n", CHUNK_DATA_END),
	CBAD("data too short", "2\r\nabc\r\n", CHUNK_DATA_END),
	CBAD("CR without LF after data", "5\r\nhello\rX", CHUNK_DATA_END),
	CBAD("CR CR LF after data", "5\r\nhello\r\r\n0\r\n\r\n", CHUNK_DATA_END),
	CBAD("empty extension", "5;\r\nhello\r\n", CHUNK_EXT),
	CBAD("empty extension value", "5;a=\r\nhello\r\n", CHUNK_EXT),
	CBAD("space in extension value", "5;a=b c\r\nhello\r\n", CHUNK_EXT),
	CBAD("token after quoted value", "5;a=\"b\"c\r\nhello\r\n", CHUNK_EXT),
	CBAD("unterminated quote", "5;a=\"b\r\nhello\r\n", BARE_CR),
	CBAD("LF in quoted extension", "5;a=\"b\nc\"\r\nhello\r\n", CHUNK_EXT),
	CBAD("NUL in extension", "5;a\0\r\nhello\r\n", CHUNK_EXT),
	CBAD("bare CR in extension", "5;a\rb\r\nhello\r\n", BARE_CR),
	CBAD("trailer obs-fold", "0\r\nX: a\r\n b\r\n\r\n", OBS_FOLD),
	CBAD("trailer space before colon", "0\r\nX : a\r\n\r\n", HEADER_NAME_SPACE),
	CBAD("trailer bare CR", "0\r\nX: a\rb\r\n\r\n", BARE_CR),
	CBAD("trailer without colon", "0\r\nX\r\n\r\n", HEADER_NO_COLON),
};

#define NCHUNK (sizeof(chunks) / sizeof(chunks[0]))

struct chunk_outcome {
	ssize_t last; /* 0 done, HTTP1_INVALID, or HTTP1_INCOMPLETE at the end of input */
	enum http1_err err;
	size_t used;
	char body[128];
	size_t body_len;
	char trailers[256];
};

/* A caller's loop: consumed bytes are dropped, unconsumed ones kept (in a fresh copy, so that
 * the decoder cannot rely on the old buffer) until more arrive. `step` bytes arrive at a time
 * after the first `first`. */
static void run_chunked(const char *in, size_t len, size_t first, size_t step,
			struct chunk_outcome *o)
{
	struct http1_header tr[8];
	struct http1_chunked c;
	size_t pos = 0, have = first < len ? first : len;

	memset(o, 0, sizeof(*o));
	http1_chunked_begin(&c, NULL, tr, 8);
	for (;;) {
		struct http1_span data;
		char *win = malloc(have - pos + 1);
		ssize_t r;

		memcpy(win, in + pos, have - pos);
		r = http1_chunked_decode(&c, win, have - pos, &data);
		if (r > 0) {
			if (data.len && o->body_len + data.len <= sizeof(o->body))
				memcpy(o->body + o->body_len, data.p, data.len);
			o->body_len += data.len;
			if (data.p + data.len != win + r)
				o->body_len = 9999; /* data must end the consumed bytes */
			pos += (size_t)r;
			if (http1_chunked_done(&c))
				for (size_t i = 0; i < http1_chunked_ntrailers(&c); i++)
					cat(o->trailers, sizeof(o->trailers), "%.*s=%.*s|",
					    (int)tr[i].name.len, tr[i].name.p, (int)tr[i].value.len,
					    tr[i].value.p);
		}
		free(win);
		if (r == 0 || r == HTTP1_INVALID || (r == HTTP1_INCOMPLETE && have == len)) {
			o->last = r;
			o->err = c.err;
			/* How far a failed body got depends on how it was split. */
			o->used = r == HTTP1_INVALID ? 0 : pos;
			return;
		}
		if (r == HTTP1_INCOMPLETE || pos == have)
			have = have + step < len ? have + step : len;
	}
}

static void test_chunked(struct guard *g)
{
	for (size_t i = 0; i < NCHUNK; i++) {
		const struct chunk_case *c = &chunks[i];
		struct chunk_outcome one, split;
		bool same = true;

		run_chunked(c->in, c->len, c->len, 1, &one);
		if (c->err == HTTP1_OK) {
			size_t blen = c->body_len;

			ok(one.last == 0 && one.used == c->len - c->rest, "chunked %s: complete",
			   c->name);
			ok(one.body_len == blen && !memcmp(one.body, c->body, blen),
			   "chunked %s: body", c->name);
			is_str(one.trailers, c->trailers, "chunked %s: trailers", c->name);
		} else {
			is_int(one.last, HTTP1_INVALID, "chunked %s: invalid", c->name);
			is_str(http1_err_text(one.err), http1_err_text(c->err),
			       "chunked %s: reason", c->name);
		}
		for (size_t k = 0; k <= c->len && same; k++) {
			for (size_t step = 1; step <= 3 && same; step++) {
				run_chunked(c->in, c->len, k, step, &split);
				same = split.last == one.last && split.err == one.err &&
				       split.used == one.used && split.body_len == one.body_len &&
				       !memcmp(split.body, one.body, one.body_len) &&
				       !strcmp(split.trailers, one.trailers);
				if (!same)
					tap_diag("first %zu step %zu: last %zd used %zu", k, step,
						 split.last, split.used);
			}
		}
		ok(same, "chunked %s: same outcome however the input is split", c->name);

		/* Flush against an unmapped page, whole and every prefix. */
		bool safe = true;

		for (size_t k = 0; k <= c->len; k++) {
			struct http1_header tr[8];
			struct http1_chunked d;
			struct http1_span data;
			char *at = guard_place(g, c->in, k);
			size_t pos = 0;
			ssize_t r;

			http1_chunked_begin(&d, NULL, tr, 8);
			while ((r = http1_chunked_decode(&d, at + pos, k - pos, &data)) > 0)
				pos += (size_t)r;
			safe = safe && pos <= k;
		}
		ok(safe, "chunked %s: prefixes flush against an unmapped page", c->name);
	}

	/* Chunk-size line length. */
	char line[HTTP1_MAX_CHUNK_LINE + 16];
	struct chunk_outcome o;

	for (size_t extra = 0; extra <= 1; extra++) {
		size_t n = HTTP1_MAX_CHUNK_LINE + 2 + extra; /* with its CRLF */

		memset(line, 'a', n);
		memcpy(line, "1;", 2);
		memcpy(line + n - 2, "\r\n", 2);
		memcpy(line + n, "x\r\n0\r\n\r\n", 8);
		run_chunked(line, n + 8, n + 8, 1, &o);
		if (!extra)
			is_int(o.last, 0, "chunk line of %zu bytes and CRLF", n - 2);
		else
			ok(o.last == HTTP1_INVALID && o.err == HTTP1_E_CHUNK_LINE_TOO_LONG,
			   "chunk line of %zu bytes refused", n - 2);
	}

	/* Trailer count against the caller's array. */
	{
		static const char in[] = "0\r\nA: 1\r\nB: 2\r\n\r\n";
		struct http1_header tr[1];
		struct http1_chunked c;
		struct http1_span data;

		http1_chunked_begin(&c, NULL, tr, 1);
		ok(http1_chunked_decode(&c, in, sizeof(in) - 1, &data) == HTTP1_INVALID &&
			   c.err == HTTP1_E_TOO_MANY_HEADERS,
		   "more trailers than the array holds refused");
		is_int(http1_chunked_decode(&c, in, sizeof(in) - 1, &data), HTTP1_INVALID,
		       "a failed decoder stays failed");
	}
	/* Trailer section size. */
	{
		struct http1_limits lim = {.max_head_bytes = 32};
		char in[64] = "0\r\nX: ";
		struct http1_header tr[4];
		struct http1_chunked c;
		struct http1_span data;
		ssize_t r;

		memset(in + 6, 'v', 40);
		memcpy(in + 46, "\r\n\r\n", 4);
		http1_chunked_begin(&c, &lim, tr, 4);
		r = http1_chunked_decode(&c, in, 50, &data);
		ok(r == HTTP1_INVALID && c.err == HTTP1_E_HEAD_TOO_LARGE,
		   "trailer section over max_head_bytes refused");
		http1_chunked_begin(&c, &lim, tr, 4);
		r = http1_chunked_decode(&c, in, 3 + 31, &data);
		is_int(r, 3, "its first bytes: last chunk consumed, trailers pending");
		r = http1_chunked_decode(&c, in + 3, 31, &data);
		is_int(r, HTTP1_INCOMPLETE, "31 bytes of trailer section are still incomplete");
		r = http1_chunked_decode(&c, in + 3, 32, &data);
		ok(r == HTTP1_INVALID && c.err == HTTP1_E_HEAD_TOO_LARGE, "32 are too many");
	}
	/* A large chunk arrives in pieces without being held. */
	{
		struct http1_chunked c;
		struct http1_span data;
		char piece[4096];
		uint64_t total = 0;
		ssize_t r;

		memset(piece, 'z', sizeof(piece));
		http1_chunked_begin(&c, NULL, NULL, 0);
		r = http1_chunked_decode(&c, "100000\r\n", 8, &data);
		ok(r == 8 && data.len == 0, "size line of a 1 MiB chunk consumed alone");
		for (int i = 0; i < 256; i++) {
			r = http1_chunked_decode(&c, piece, sizeof(piece), &data);
			total += data.len;
			if (r != (ssize_t)sizeof(piece) || data.p != piece)
				break;
		}
		is_int(total, 1 << 20, "1 MiB of data passed through in 4 KiB pieces");
		r = http1_chunked_decode(&c, "\r\n0\r\n\r\n", 7, &data);
		ok(r == 7 && http1_chunked_done(&c), "then the end");
		is_int(http1_chunked_decode(&c, "x", 1, &data), 0, "nothing more after the end");
	}
	is_int(http1_chunked_decode(&(struct http1_chunked){0}, "", 0, &(struct http1_span){0}),
	       HTTP1_INCOMPLETE, "no input is incomplete");
}

static void test_chunk_encoding(void)
{
	static const struct {
		uint64_t size;
		const char *want;
	} cases[] = {
		{1, "1\r\n"},
		{0x1a, "1a\r\n"},
		{4096, "1000\r\n"},
		{UINT64_MAX, "ffffffffffffffff\r\n"},
		{0, ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[HTTP1_CHUNK_HEADER_MAX + 1] = {0};
		size_t n = http1_chunk_header(out, cases[i].size);

		is_int(n, strlen(cases[i].want), "chunk header for %llx: length",
		       (unsigned long long)cases[i].size);
		is_str(out, cases[i].want, "chunk header for %llx",
		       (unsigned long long)cases[i].size);
	}

	/* Encode a body in uneven chunks with trailers, decode it back. */
	static const char body[] = "The quick brown fox jumps over the lazy dog";
	struct http1_header tr[2] = {
		{{"X-A", 3}, {"1", 1}},
		{{"X-Checksum", 10}, {"abc def", 7}},
	};
	char wire[512];
	size_t k = 0;

	for (size_t off = 0, sz = 1; off < sizeof(body) - 1; off += sz, sz = sz * 2 + 1) {
		if (sz > sizeof(body) - 1 - off)
			sz = sizeof(body) - 1 - off;
		k += http1_chunk_header(wire + k, sz);
		memcpy(wire + k, body + off, sz);
		k += sz;
		memcpy(wire + k, HTTP1_CHUNK_END, 2);
		k += 2;
	}
	ssize_t last = http1_chunk_last(wire + k, sizeof(wire) - k, tr, 2);

	ok(last == (ssize_t)strlen("0\r\nX-A: 1\r\nX-Checksum: abc def\r\n\r\n") &&
		   !memcmp(wire + k, "0\r\nX-A: 1\r\nX-Checksum: abc def\r\n\r\n", (size_t)last),
	   "last chunk with trailers");
	k += (size_t)last;

	struct chunk_outcome o;

	run_chunked(wire, k, k, 1, &o);
	ok(o.last == 0 && o.used == k && o.body_len == sizeof(body) - 1 &&
		   !memcmp(o.body, body, o.body_len),
	   "encoded body decodes back");
	is_str(o.trailers, "X-A=1|X-Checksum=abc def|", "encoded trailers decode back");
	is_int(http1_chunk_last(wire, 10, tr, 2), -1, "last chunk that does not fit");
	is_int(http1_chunk_last(wire, 5, NULL, 0), 5, "last chunk alone fits in 5 bytes");
	ok(!memcmp(wire, HTTP1_CHUNK_LAST, 5), "... and is HTTP1_CHUNK_LAST");
}

/* ---- reasons ----------------------------------------------------------------------------------- */

static void test_reasons(void)
{
	bool all = true;

	for (int e = 1; e < HTTP1_E__COUNT; e++) {
		int st = http1_err_status(e);
		const char *t = http1_err_text(e);

		if (!t || !*t || !strcmp(t, "?") || st < 400 || st > 505) {
			all = false;
			tap_diag("reason %d: %d %s", e, st, t ? t : "(null)");
		}
	}
	ok(all, "every reason has a 4xx/5xx status and a text");
	is_int(http1_err_status(HTTP1_E_VERSION_UNSUPPORTED), 505, "unsupported version is 505");
	ok(http1_err_is_smuggling(HTTP1_E_TE_CL), "TE+CL counts as smuggling");
	ok(!http1_err_is_smuggling(HTTP1_E_HEAD_TOO_LARGE), "a big head is not smuggling");
	is_str(http1_err_text(HTTP1_E__COUNT), "?", "out-of-range reason");
	ok(http1_span_ieq((struct http1_span){"Keep-Alive", 10}, "keep-alive"),
	   "span_ieq folds case");
	ok(!http1_span_ieq((struct http1_span){"keep", 4}, "keep-alive"),
	   "span_ieq wants all of it");
	ok(!http1_span_ieq((struct http1_span){"keep-alives", 11}, "keep-alive"),
	   "span_ieq wants nothing more");
}

int main(void)
{
	struct guard g;

	check_table(requests, NREQ, false);
	check_table(responses, NRESP, true);
	test_header_spans();
	test_limits();
	test_pipelining();
	if (ok(guard_init(&g), "guard page mapped")) {
		test_page_boundary(&g);
		test_chunked(&g);
	}
	test_chunk_encoding();
	test_reasons();
	return done_testing();
}
