/* libFuzzer target for proxy/sniff.c: the ClientHello parser and the HTTP sniffer.
 *
 * Every span must lie inside the input or the scratch buffer, a prefix of an input that
 * parsed must be incomplete or invalid (never a different success), and the input itself
 * must parse the same again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/sniff.h"

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

static uint8_t scratch[PX_TLS_HELLO_MAX];

static void span_inside(struct px_span s, const uint8_t *buf, size_t len)
{
	if (!s.len)
		return;
	bool in_buf = s.p >= buf && s.p + s.len <= buf + len;
	bool in_scratch = s.p >= scratch && s.p + s.len <= scratch + sizeof(scratch);

	check(in_buf || in_scratch);
}

static void tls(const uint8_t *buf, size_t len)
{
	struct px_client_hello ch;
	int rc = px_tls_client_hello(buf, len, scratch, &ch);

	check(rc == PX_SNIFF_INVALID || rc == PX_SNIFF_INCOMPLETE || (rc > 0 && (size_t)rc <= len));
	if (rc <= 0) {
		check(!ch.sni.len && !ch.nalpn);
		return;
	}
	check(ch.nalpn <= PX_TLS_ALPN_MAX && ch.sni.len <= PX_TLS_SNI_MAX);
	span_inside(ch.sni, buf, len);
	for (uint32_t i = 0; i < ch.nalpn; i++) {
		check(ch.alpn[i].len);
		span_inside(ch.alpn[i], buf, len);
	}
	/* Only the used bytes matter: the same hello with nothing after it gives the same. */
	struct px_client_hello again;

	check(px_tls_client_hello(buf, (size_t)rc, scratch, &again) == rc);
	check(again.nalpn == ch.nalpn && again.sni.len == ch.sni.len);
	check(px_tls_client_hello(buf, (size_t)rc - 1, scratch, &again) == PX_SNIFF_INCOMPLETE);
}

static void http(const uint8_t *buf, size_t len)
{
	enum px_http_proto p;
	int rc = px_http_sniff(buf, len, &p);

	check(rc == PX_SNIFF_INVALID || rc == PX_SNIFF_INCOMPLETE || (rc > 0 && (size_t)rc <= len));
	check((rc > 0) == (p != PX_HTTP_NONE));
	if (rc > 0) {
		enum px_http_proto q;

		check(px_http_sniff(buf, (size_t)rc, &q) == rc && q == p);
		check(px_http_sniff(buf, (size_t)rc - 1, &q) == PX_SNIFF_INCOMPLETE);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly `size` bytes, so reading past the end is an ASan error. */
	uint8_t *buf = malloc(size ? size : 1);

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	tls(buf, size);
	http(buf, size);
	free(buf);
	return 0;
}
