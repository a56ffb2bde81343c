/* Listener-filter sniffers: a bounds-checked TLS ClientHello reader and an HTTP protocol
 * recogniser. Both only look at the bytes they are given and point into them. */
#include <string.h>

#include "proxy/sniff.h"

#define TLS_CT_HANDSHAKE    22
#define TLS_HS_CLIENT_HELLO 1
#define TLS_EXT_SERVER_NAME 0
#define TLS_EXT_ALPN	    16
#define TLS_SNI_HOST_NAME   0
#define TLS_RECORD_HDR	    5
#define TLS_HS_HDR	    4
#define TLS_RANDOM_LEN	    32
#define TLS_SESSION_ID_MAX  32

/* A reader over [p, p+len): every take is checked, a failed one leaves it unusable. */
struct rd {
	const uint8_t *p;
	size_t len;
};

static bool rd_take(struct rd *r, size_t n, struct rd *out)
{
	if (n > r->len)
		return false;
	if (out) {
		out->p = r->p;
		out->len = n;
	}
	r->p += n;
	r->len -= n;
	return true;
}

static bool rd_uint(struct rd *r, size_t bytes, uint32_t *v)
{
	struct rd b;

	if (!rd_take(r, bytes, &b))
		return false;
	*v = 0;
	for (size_t i = 0; i < bytes; i++)
		*v = *v << 8 | b.p[i];
	return true;
}

/* A vector with a length prefix of `bytes` bytes. */
static bool rd_vec(struct rd *r, size_t bytes, struct rd *out)
{
	uint32_t n;

	return rd_uint(r, bytes, &n) && rd_take(r, n, out);
}

static bool sni_ext(struct rd e, struct px_client_hello *ch)
{
	struct rd list;

	if (!rd_vec(&e, 2, &list) || e.len || !list.len)
		return false;
	while (list.len) {
		uint32_t type;
		struct rd name;

		if (!rd_uint(&list, 1, &type) || !rd_vec(&list, 2, &name))
			return false;
		if (type != TLS_SNI_HOST_NAME)
			continue; /* unknown name types are skipped (RFC 6066 section 3) */
		if (ch->sni.len || !name.len || name.len > PX_TLS_SNI_MAX)
			return false;
		/* The name becomes a C string for matching: printable ASCII only, as DNS allows. */
		for (size_t i = 0; i < name.len; i++)
			if (name.p[i] <= 0x20 || name.p[i] >= 0x7f)
				return false;
		ch->sni.p = name.p;
		ch->sni.len = (uint32_t)name.len;
	}
	return true;
}

static bool alpn_ext(struct rd e, struct px_client_hello *ch)
{
	struct rd list;

	if (!rd_vec(&e, 2, &list) || e.len || !list.len)
		return false;
	ch->has_alpn = true;
	while (list.len) {
		struct rd proto;

		if (!rd_vec(&list, 1, &proto) || !proto.len)
			return false;
		if (ch->nalpn == PX_TLS_ALPN_MAX) {
			ch->alpn_dropped++;
			continue;
		}
		ch->alpn[ch->nalpn].p = proto.p;
		ch->alpn[ch->nalpn++].len = (uint32_t)proto.len;
	}
	return true;
}

/* The ClientHello body (after the handshake header), RFC 8446 section 4.1.2. */
static bool hello_body(struct rd r, struct px_client_hello *ch)
{
	struct rd sid, suites, comp, exts;
	uint32_t version;
	bool seen_sni = false, seen_alpn = false;

	if (!rd_uint(&r, 2, &version) || version >> 8 != 3 || !rd_take(&r, TLS_RANDOM_LEN, NULL))
		return false;
	ch->legacy_version = (uint16_t)version;
	if (!rd_vec(&r, 1, &sid) || sid.len > TLS_SESSION_ID_MAX)
		return false;
	if (!rd_vec(&r, 2, &suites) || suites.len < 2 || suites.len % 2)
		return false;
	if (!rd_vec(&r, 1, &comp) || !comp.len)
		return false;
	if (!r.len)
		return true; /* no extensions at all: an old client, no SNI, no ALPN */
	if (!rd_vec(&r, 2, &exts) || r.len)
		return false;
	while (exts.len) {
		uint32_t type;
		struct rd e;

		if (!rd_uint(&exts, 2, &type) || !rd_vec(&exts, 2, &e))
			return false;
		/* GREASE and every other unknown extension is skipped; a repeated one is an
		 * error a TLS stack would refuse (RFC 8446 4.2), so we do too. */
		if (type == TLS_EXT_SERVER_NAME) {
			if (seen_sni || !sni_ext(e, ch))
				return false;
			seen_sni = true;
		} else if (type == TLS_EXT_ALPN) {
			if (seen_alpn || !alpn_ext(e, ch))
				return false;
			seen_alpn = true;
		}
	}
	return true;
}

/* A record header: handshake, protocol major 3, a payload length a plaintext record can have. */
static int record_header(const uint8_t *p, size_t avail, uint32_t *rlen)
{
	if (avail >= 1 && p[0] != TLS_CT_HANDSHAKE)
		return PX_SNIFF_INVALID;
	if (avail >= 2 && p[1] != 3)
		return PX_SNIFF_INVALID;
	if (avail < TLS_RECORD_HDR)
		return PX_SNIFF_INCOMPLETE;
	*rlen = (uint32_t)p[3] << 8 | p[4];
	if (!*rlen || *rlen > PX_TLS_RECORD_MAX)
		return PX_SNIFF_INVALID;
	return 0;
}

static int hello_finish(const uint8_t *hs, size_t hlen, size_t used, struct px_client_hello *ch)
{
	struct rd body = {hs + TLS_HS_HDR, hlen};

	if (!hello_body(body, ch)) {
		memset(ch, 0, sizeof(*ch));
		return PX_SNIFF_INVALID;
	}
	return (int)used;
}

int px_tls_client_hello(const uint8_t *buf, size_t len, uint8_t *scratch,
			struct px_client_hello *ch)
{
	size_t off = 0, got = 0, hlen = 0;
	bool have_hdr = false;

	memset(ch, 0, sizeof(*ch));
	if (!len)
		return PX_SNIFF_INCOMPLETE;
	for (;;) {
		uint32_t rlen;
		int rc = record_header(buf + off, len - off, &rlen);

		if (rc)
			return rc;
		const uint8_t *frag = buf + off + TLS_RECORD_HDR;
		size_t avail = len - off - TLS_RECORD_HDR;

		/* Look at the handshake header as soon as its bytes are here, so garbage is
		 * refused without waiting for a whole record. */
		if (!have_hdr && got + (avail < rlen ? avail : rlen) >= TLS_HS_HDR) {
			uint8_t h[TLS_HS_HDR];
			size_t from_scratch = got;

			memcpy(h, scratch, from_scratch);
			memcpy(h + from_scratch, frag, TLS_HS_HDR - from_scratch);
			if (h[0] != TLS_HS_CLIENT_HELLO)
				return PX_SNIFF_INVALID;
			hlen = (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
			if (TLS_HS_HDR + hlen > PX_TLS_HELLO_MAX)
				return PX_SNIFF_INVALID;
			have_hdr = true;
		}
		if (avail < rlen)
			return PX_SNIFF_INCOMPLETE;
		/* The usual case: the whole hello in the first record, parsed where it lies. */
		if (off == 0 && have_hdr && TLS_HS_HDR + hlen <= rlen) {
			/* Bytes after the hello in its record would be a second handshake message,
			 * which a client cannot send before the server's reply. */
			if (TLS_HS_HDR + hlen < rlen)
				return PX_SNIFF_INVALID;
			return hello_finish(frag, hlen, TLS_RECORD_HDR + rlen, ch);
		}
		size_t want = have_hdr ? TLS_HS_HDR + hlen - got : PX_TLS_HELLO_MAX - got;
		size_t n = rlen < want ? rlen : want;

		if (have_hdr && rlen > want)
			return PX_SNIFF_INVALID;
		if (got + n > PX_TLS_HELLO_MAX)
			return PX_SNIFF_INVALID;
		memcpy(scratch + got, frag, n);
		got += n;
		off += TLS_RECORD_HDR + rlen;
		if (have_hdr && got == TLS_HS_HDR + hlen)
			return hello_finish(scratch, hlen, off, ch);
		if (off >= len)
			return PX_SNIFF_INCOMPLETE;
	}
}

/* ---- HTTP ----------------------------------------------------------------------------------- */

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_BYTES (sizeof(h2_preface) - 1)

static bool is_method_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
}

/* `want` must be a prefix-compatible match of the bytes at p: all, or as many as there are. */
static int match_prefix(const uint8_t *p, size_t avail, const char *want, size_t wlen)
{
	size_t k = avail < wlen ? avail : wlen;

	if (memcmp(p, want, k))
		return PX_SNIFF_INVALID;
	return k < wlen ? PX_SNIFF_INCOMPLETE : 0;
}

int px_http_sniff(const uint8_t *buf, size_t len, enum px_http_proto *proto)
{
	size_t i = 0, lim = len < PX_HTTP_SNIFF_MAX ? len : PX_HTTP_SNIFF_MAX;
	int rc;

	*proto = PX_HTTP_NONE;
	if (!len)
		return PX_SNIFF_INCOMPLETE;
	rc = match_prefix(buf, len, h2_preface, H2_PREFACE_BYTES);
	if (rc == 0) {
		*proto = PX_HTTP_H2C;
		return (int)H2_PREFACE_BYTES;
	}
	if (rc == PX_SNIFF_INCOMPLETE)
		return rc;
	/* An HTTP/1.x request line: method SP request-target SP HTTP/1.x CRLF. */
	while (i < lim && is_method_char(buf[i]))
		i++;
	if (i == lim)
		return lim == len && i <= PX_HTTP_METHOD_MAX ? PX_SNIFF_INCOMPLETE
							     : PX_SNIFF_INVALID;
	if (!i || i > PX_HTTP_METHOD_MAX || buf[i] != ' ')
		return PX_SNIFF_INVALID;
	size_t target = ++i;

	while (i < lim && buf[i] > 0x20 && buf[i] != 0x7f)
		i++;
	if (i == lim)
		return lim == len ? PX_SNIFF_INCOMPLETE : PX_SNIFF_INVALID;
	if (i == target || buf[i] != ' ')
		return PX_SNIFF_INVALID;
	i++;
	rc = match_prefix(buf + i, lim - i, "HTTP/1.", 7);
	if (rc)
		return rc == PX_SNIFF_INCOMPLETE && lim < len ? PX_SNIFF_INVALID : rc;
	i += 7;
	if (i == lim)
		return lim == len ? PX_SNIFF_INCOMPLETE : PX_SNIFF_INVALID;
	if (buf[i] != '0' && buf[i] != '1')
		return PX_SNIFF_INVALID;
	enum px_http_proto p = buf[i] == '1' ? PX_HTTP_11 : PX_HTTP_10;

	i++;
	/* CRLF, or a bare LF as lenient HTTP/1 parsers accept. */
	if (i < lim && buf[i] == '\r')
		i++;
	if (i == lim)
		return lim == len ? PX_SNIFF_INCOMPLETE : PX_SNIFF_INVALID;
	if (buf[i] != '\n')
		return PX_SNIFF_INVALID;
	*proto = p;
	return (int)(i + 1);
}

const char *px_http_proto_name(enum px_http_proto p)
{
	switch (p) {
	case PX_HTTP_10:
		return "http/1.0";
	case PX_HTTP_11:
		return "http/1.1";
	case PX_HTTP_H2C:
		return "h2c";
	default:
		return NULL;
	}
}
