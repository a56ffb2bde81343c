/* Tests proxy/sniff.c: ClientHello parsing (SNI, ALPN, records split anywhere, missing and
 * GREASE extensions, truncation, garbage) and HTTP protocol recognition, table by table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/sniff.h"
#include "tests/lib/tap.h"

/* ---- a ClientHello builder ------------------------------------------------------------------ */

struct bld {
	uint8_t b[PX_TLS_HELLO_MAX * 2];
	size_t n;
};

static void put(struct bld *b, const void *p, size_t n)
{
	if (!n)
		return;
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void put_u(struct bld *b, uint32_t v, int bytes)
{
	while (bytes--)
		b->b[b->n++] = (uint8_t)(v >> (8 * bytes));
}

static void ext(struct bld *b, uint16_t type, const uint8_t *data, size_t n)
{
	put_u(b, type, 2);
	put_u(b, (uint32_t)n, 2);
	put(b, data, n);
}

static size_t sni_data(uint8_t *d, const char *name)
{
	size_t l = strlen(name);

	d[0] = (uint8_t)((l + 3) >> 8);
	d[1] = (uint8_t)(l + 3);
	d[2] = 0;
	d[3] = (uint8_t)(l >> 8);
	d[4] = (uint8_t)l;
	memcpy(d + 5, name, l);
	return l + 5;
}

/* protos: "h2,http/1.1" */
static size_t alpn_data(uint8_t *d, const char *protos)
{
	size_t n = 2;
	char tmp[256], *save = NULL;

	snprintf(tmp, sizeof(tmp), "%s", protos);
	for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		d[n++] = (uint8_t)strlen(t);
		memcpy(d + n, t, strlen(t));
		n += strlen(t);
	}
	d[0] = (uint8_t)((n - 2) >> 8);
	d[1] = (uint8_t)(n - 2);
	return n;
}

enum {
	F_NO_EXTS = 1,
	F_GREASE = 2,
	F_PADDING = 4
};

/* The handshake message (type, length, body) of a ClientHello. */
static size_t hello_msg(uint8_t *out, const char *sni, const char *alpn, int flags)
{
	struct bld body = {0}, exts = {0};
	uint8_t d[1024];
	size_t n;

	put_u(&body, 0x0303, 2);
	for (int i = 0; i < 32; i++)
		put_u(&body, (uint32_t)i, 1);
	put_u(&body, 32, 1);
	for (int i = 0; i < 32; i++)
		put_u(&body, 0xaa, 1);
	put_u(&body, 6, 2);
	put_u(&body, 0x1301, 2);
	put_u(&body, 0x1302, 2);
	put_u(&body, (flags & F_GREASE) ? 0x3a3a : 0x00ff, 2);
	put_u(&body, 1, 1);
	put_u(&body, 0, 1);
	if (flags & F_GREASE)
		ext(&exts, 0x0a0a, NULL, 0);
	if (sni) {
		n = sni_data(d, sni);
		ext(&exts, 0, d, n);
	}
	ext(&exts, 43, (const uint8_t *)"\x04\x03\x04\x03\x03", 5); /* supported_versions */
	if (alpn) {
		n = alpn_data(d, alpn);
		ext(&exts, 16, d, n);
	}
	if (flags & F_GREASE)
		ext(&exts, 0xfafa, (const uint8_t *)"\0", 1);
	if (flags & F_PADDING) {
		memset(d, 0, 600);
		ext(&exts, 21, d, 600);
	}
	if (!(flags & F_NO_EXTS)) {
		put_u(&body, (uint32_t)exts.n, 2);
		put(&body, exts.b, exts.n);
	}
	out[0] = 1;
	out[1] = (uint8_t)(body.n >> 16);
	out[2] = (uint8_t)(body.n >> 8);
	out[3] = (uint8_t)body.n;
	memcpy(out + 4, body.b, body.n);
	return body.n + 4;
}

/* Wraps a handshake message in records of at most `frag` bytes each. */
static size_t records(uint8_t *out, const uint8_t *msg, size_t n, size_t frag)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i += frag) {
		size_t k = n - i < frag ? n - i : frag;

		out[o++] = 22;
		out[o++] = 3;
		out[o++] = 1;
		out[o++] = (uint8_t)(k >> 8);
		out[o++] = (uint8_t)k;
		memcpy(out + o, msg + i, k);
		o += k;
	}
	return o;
}

static uint8_t scratch[PX_TLS_HELLO_MAX];

static bool span_is(struct px_span s, const char *want)
{
	return s.len == strlen(want) && !memcmp(s.p, want, s.len);
}

/* ---- well-formed hellos ---------------------------------------------------------------------- */

static const struct {
	const char *name, *sni, *alpn;
	int flags;
	size_t frag;
} good[] = {
	{"SNI and two ALPN", "www.example.com", "h2,http/1.1", 0, 16384},
	{"SNI only", "a.b", NULL, 0, 16384},
	{"ALPN only", NULL, "istio-peer-exchange,istio,h2", 0, 16384},
	{"neither", NULL, NULL, 0, 16384},
	{"no extensions block", NULL, NULL, F_NO_EXTS, 16384},
	{"GREASE extensions and suites", "grease.test", "h2", F_GREASE, 16384},
	{"split in 1-byte records", "one.byte", "h2", 0, 1},
	{"split in 3-byte records", "three", "h2,http/1.1", 0, 3},
	{"split in 100-byte records with padding", "pad.example", "h2", F_PADDING, 100},
	{"split header across records", "hdr", "x", 0, 2},
};

static void test_good(void)
{
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint8_t msg[4096], wire[8192];
		size_t mlen = hello_msg(msg, good[i].sni, good[i].alpn, good[i].flags);
		size_t wlen = records(wire, msg, mlen, good[i].frag);
		struct px_client_hello ch;
		int rc = px_tls_client_hello(wire, wlen, scratch, &ch);

		is_int(rc, (int)wlen, "%s: whole records used", good[i].name);
		ok(good[i].sni ? span_is(ch.sni, good[i].sni) : ch.sni.len == 0, "%s: SNI",
		   good[i].name);
		if (good[i].alpn) {
			char got[256] = "";

			for (uint32_t k = 0; k < ch.nalpn; k++)
				snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%.*s",
					 k ? "," : "", (int)ch.alpn[k].len,
					 (const char *)ch.alpn[k].p);
			is_str(got, good[i].alpn, "%s: ALPN in order", good[i].name);
		} else {
			ok(!ch.has_alpn && !ch.nalpn, "%s: no ALPN", good[i].name);
		}
		/* Every shorter prefix asks for more, and trailing application bytes are not
		 * part of the hello. */
		bool all_incomplete = true;

		for (size_t k = 0; k < wlen; k++)
			if (px_tls_client_hello(wire, k, scratch, &ch) != PX_SNIFF_INCOMPLETE)
				all_incomplete = false;
		ok(all_incomplete, "%s: every prefix is incomplete", good[i].name);
		memcpy(wire + wlen, "\x17\x03\x03\x00\x01x", 6);
		is_int(px_tls_client_hello(wire, wlen + 6, scratch, &ch), (int)wlen,
		       "%s: bytes after the hello are left alone", good[i].name);
	}
}

static void test_many_alpn(void)
{
	uint8_t msg[4096], wire[8192];
	char list[512] = "";
	struct px_client_hello ch;

	for (int i = 0; i < PX_TLS_ALPN_MAX + 3; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%sp%d", i ? "," : "",
			 i);
	size_t wlen = records(wire, msg, hello_msg(msg, "x", list, 0), 16384);

	ok(px_tls_client_hello(wire, wlen, scratch, &ch) > 0, "many ALPN: parsed");
	is_int(ch.nalpn, PX_TLS_ALPN_MAX, "many ALPN: the first PX_TLS_ALPN_MAX kept");
	is_int(ch.alpn_dropped, 3, "many ALPN: the rest counted");
}

/* Hellos captured from openssl s_client and curl (the fuzz seeds). */
static void test_real(void)
{
	static const struct {
		const char *file, *sni, *alpn0;
	} real[] = {
		{"openssl_h2", "www.example.com", "h2"},
		{"curl_h2", "localhost", "h2"},
		{"openssl_nosni", NULL, NULL},
	};
	static uint8_t buf[PX_TLS_HELLO_MAX];

	for (size_t i = 0; i < sizeof(real) / sizeof(real[0]); i++) {
		char path[256];
		struct px_client_hello ch;

		snprintf(path, sizeof(path), "tests/fuzz/corpus/sniff/%s", real[i].file);
		FILE *f = fopen(path, "rb");
		size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;

		if (f)
			fclose(f);
		is_int(px_tls_client_hello(buf, n, scratch, &ch), (int)n, "%s: parsed", path);
		ok(real[i].sni ? span_is(ch.sni, real[i].sni) : !ch.sni.len, "%s: SNI", path);
		ok(real[i].alpn0 ? ch.nalpn && span_is(ch.alpn[0], real[i].alpn0) : !ch.nalpn,
		   "%s: ALPN", path);
	}
}

/* ---- broken input ----------------------------------------------------------------------------- */

/* Patches one byte of a good single-record hello; offsets are in the wire bytes. */
static int patched(size_t at, uint8_t val)
{
	uint8_t msg[4096], wire[8192];
	struct px_client_hello ch;
	size_t wlen = records(wire, msg, hello_msg(msg, "www.example.com", "h2", 0), 16384);

	wire[at] = val;
	return px_tls_client_hello(wire, wlen, scratch, &ch);
}

static void test_bad(void)
{
	static const struct {
		const char *name;
		const char *bytes;
		size_t len;
		int want;
	} raw[] = {
		{"HTTP request", "GET / HTTP/1.1\r\n", 16, PX_SNIFF_INVALID},
		{"h2 preface", "PRI * HTTP/2.0\r\n", 16, PX_SNIFF_INVALID},
		{"alert record", "\x15\x03\x03\x00\x02\x02\x28", 7, PX_SNIFF_INVALID},
		{"SSLv2 hello", "\x80\x2e\x01\x00\x02", 5, PX_SNIFF_INVALID},
		{"bad major version", "\x16\x02", 2, PX_SNIFF_INVALID},
		{"zero-length record", "\x16\x03\x01\x00\x00", 5, PX_SNIFF_INVALID},
		{"oversized record", "\x16\x03\x01\x48\x01", 5, PX_SNIFF_INVALID},
		{"server hello", "\x16\x03\x03\x00\x04\x02\x00\x00\x00", 9, PX_SNIFF_INVALID},
		{"hello too big", "\x16\x03\x03\x00\x04\x01\x01\x00\x00", 9, PX_SNIFF_INVALID},
		{"empty hello body", "\x16\x03\x03\x00\x04\x01\x00\x00\x00", 9, PX_SNIFF_INVALID},
		{"one byte", "\x16", 1, PX_SNIFF_INCOMPLETE},
		{"nothing", "", 0, PX_SNIFF_INCOMPLETE},
	};
	struct px_client_hello ch;

	for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++)
		is_int(px_tls_client_hello((const uint8_t *)raw[i].bytes, raw[i].len, scratch, &ch),
		       raw[i].want, "%s", raw[i].name);

	/* Wire layout: 5 record + 4 handshake + 2 version + 32 random = 43: session id length;
	 * 88 the SNI extension, 94 its name type, 95 its name length, 97 the name. */
	is_int(patched(43, 33), PX_SNIFF_INVALID, "session id longer than 32");
	is_int(patched(43, 200), PX_SNIFF_INVALID, "session id past the end");
	is_int(patched(76, 0xff), PX_SNIFF_INVALID, "cipher suites past the end");
	is_int(patched(77, 7), PX_SNIFF_INVALID, "odd cipher suite length");
	is_int(patched(84, 0), PX_SNIFF_INVALID, "no compression methods");
	is_int(patched(87, 0xff), PX_SNIFF_INVALID, "extensions length past the end");
	is_int(patched(91, 0x40), PX_SNIFF_INVALID, "SNI extension length past the end");
	is_int(patched(95, 0x01), PX_SNIFF_INVALID, "SNI name length past its list");
	is_int(patched(100, 0x00), PX_SNIFF_INVALID, "NUL inside the SNI name");
	is_int(patched(100, ' '), PX_SNIFF_INVALID, "space inside the SNI name");
	is_int(patched(94, 0x07), patched(0, 22), "a non-host_name SNI entry is skipped");

	/* Trailing bytes inside the hello's record, and a truncated handshake length. */
	uint8_t msg[4096], wire[8192];
	size_t mlen = hello_msg(msg, "a", "h2", 0), wlen;

	msg[mlen] = 0;
	wlen = records(wire, msg, mlen + 1, 16384);
	is_int(px_tls_client_hello(wire, wlen, scratch, &ch), PX_SNIFF_INVALID,
	       "a second message in the hello's record");
	mlen = hello_msg(msg, "a", "h2", 0);
	msg[3]--; /* the handshake says one byte less than the body */
	wlen = records(wire, msg, mlen - 1, 16384);
	is_int(px_tls_client_hello(wire, wlen, scratch, &ch), PX_SNIFF_INVALID,
	       "hello body shorter than its extensions say");

	/* Duplicated extensions and an empty ALPN name. */
	struct bld b = {0};
	uint8_t d[64];
	size_t n = sni_data(d, "dup");

	mlen = hello_msg(msg, "dup", NULL, 0);
	/* add a second SNI: grow the extensions and the lengths that cover them */
	memcpy(b.b, msg, mlen);
	b.n = mlen;
	ext(&b, 0, d, n);
	size_t extra = b.n - mlen, body = mlen - 4, exts_at = 4 + 2 + 32 + 1 + 32 + 2 + 6 + 1 + 1;
	uint32_t el = (uint32_t)b.b[exts_at] << 8 | b.b[exts_at + 1];

	el += (uint32_t)extra;
	b.b[exts_at] = (uint8_t)(el >> 8);
	b.b[exts_at + 1] = (uint8_t)el;
	body += extra;
	b.b[2] = (uint8_t)(body >> 8);
	b.b[3] = (uint8_t)body;
	wlen = records(wire, b.b, b.n, 16384);
	is_int(px_tls_client_hello(wire, wlen, scratch, &ch), PX_SNIFF_INVALID,
	       "server_name twice");

	n = alpn_data(d, "h2");
	d[2] = 0; /* a zero-length protocol name */
	d[1] = 1;
	mlen = hello_msg(msg, NULL, NULL, 0);
	memcpy(b.b, msg, mlen);
	b.n = mlen;
	ext(&b, 16, d, 3);
	extra = b.n - mlen;
	el = (uint32_t)b.b[exts_at] << 8 | b.b[exts_at + 1];
	el += (uint32_t)extra;
	b.b[exts_at] = (uint8_t)(el >> 8);
	b.b[exts_at + 1] = (uint8_t)el;
	body = mlen - 4 + extra;
	b.b[2] = (uint8_t)(body >> 8);
	b.b[3] = (uint8_t)body;
	wlen = records(wire, b.b, b.n, 16384);
	is_int(px_tls_client_hello(wire, wlen, scratch, &ch), PX_SNIFF_INVALID,
	       "empty ALPN protocol name");

	/* A fragmented hello interrupted by another record type. */
	mlen = hello_msg(msg, "frag", "h2", 0);
	wlen = records(wire, msg, mlen, 50);
	wire[55] = 23;
	is_int(px_tls_client_hello(wire, wlen, scratch, &ch), PX_SNIFF_INVALID,
	       "application data between hello fragments");
}

/* ---- HTTP --------------------------------------------------------------------------------------- */

static const struct {
	const char *in;
	int want;
	enum px_http_proto proto;
} http_cases[] = {
	{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 16, PX_HTTP_11},
	{"POST /a?b=c HTTP/1.0\r\n", 22, PX_HTTP_10},
	{"GET / HTTP/1.1\n", 15, PX_HTTP_11},
	{"M-SEARCH * HTTP/1.1\r\n", 21, PX_HTTP_11},
	{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4", 24, PX_HTTP_H2C},
	{"PRI * HTTP/2.0\r\n\r\n", PX_SNIFF_INCOMPLETE, PX_HTTP_NONE},
	{"GET / HTTP/1.", PX_SNIFF_INCOMPLETE, PX_HTTP_NONE},
	{"GET / HTTP/1.1\r", PX_SNIFF_INCOMPLETE, PX_HTTP_NONE},
	{"GET /long", PX_SNIFF_INCOMPLETE, PX_HTTP_NONE},
	{"GE", PX_SNIFF_INCOMPLETE, PX_HTTP_NONE},
	{"GET / HTTP/2.0\r\n", PX_SNIFF_INVALID, PX_HTTP_NONE},
	{"GET / HTTP/1.2\r\n", PX_SNIFF_INVALID, PX_HTTP_NONE},
	{"GET / HTTX", PX_SNIFF_INVALID, PX_HTTP_NONE},
	{"GET  / HTTP/1.1\r\n", PX_SNIFF_INVALID, PX_HTTP_NONE},
	{"get / HTTP/1.1\r\n", PX_SNIFF_INVALID, PX_HTTP_NONE},
	{"GET /\r\n", PX_SNIFF_INVALID, PX_HTTP_NONE},
	{"\x16\x03\x01\x02\x00", PX_SNIFF_INVALID, PX_HTTP_NONE},
	{"SSH-2.0-OpenSSH_9.2\r\n", PX_SNIFF_INVALID, PX_HTTP_NONE},
	{"PRX\x01", PX_SNIFF_INVALID, PX_HTTP_NONE},
};

static void test_http(void)
{
	for (size_t i = 0; i < sizeof(http_cases) / sizeof(http_cases[0]); i++) {
		enum px_http_proto p;
		size_t len = strlen(http_cases[i].in);

		if (http_cases[i].proto == PX_HTTP_H2C)
			len += 4;
		is_int(px_http_sniff((const uint8_t *)http_cases[i].in, len, &p),
		       http_cases[i].want, "http: %.*s", (int)strcspn(http_cases[i].in, "\r\n"),
		       http_cases[i].in);
		is_int(p, http_cases[i].proto, "http: protocol of case %zu", i);
	}
	/* A request line longer than the sniff limit gives up rather than waiting. */
	static char big[PX_HTTP_SNIFF_MAX + 64];
	enum px_http_proto p;

	memcpy(big, "GET /", 5);
	memset(big + 5, 'a', sizeof(big) - 5);
	is_int(px_http_sniff((const uint8_t *)big, sizeof(big), &p), PX_SNIFF_INVALID,
	       "http: request line past the limit");
	is_int(px_http_sniff((const uint8_t *)big, PX_HTTP_SNIFF_MAX - 1, &p), PX_SNIFF_INCOMPLETE,
	       "http: long request line still arriving");
	is_str(px_http_proto_name(PX_HTTP_H2C), "h2c", "http: h2c name");
	is_str(px_http_proto_name(PX_HTTP_10), "http/1.0", "http: 1.0 name");
	ok(!px_http_proto_name(PX_HTTP_NONE), "http: no name for none");
}

int main(void)
{
	test_good();
	test_many_alpn();
	test_real();
	test_bad();
	test_http();
	return done_testing();
}
