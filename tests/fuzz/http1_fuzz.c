/* libFuzzer target for proxy/http1.c: heads and chunked bodies, whole and in random pieces.
 *
 * Input: one mode byte (bit 0: response; bits 1-2: the request's method for a response), one
 * seed byte for the piece sizes, then the message. Whatever the pieces, the outcome must be
 * the one of a single call, and every span must lie inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http1.h"

#define NHDR	   32
#define NTRAILERS  8
#define MAX_PIECES 4096

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

/* Piece sizes come from a small LCG seeded by the input, so a crash reproduces. */
static uint32_t next_piece(uint32_t *state)
{
	*state = *state * 1103515245u + 12345u;
	return 1 + ((*state >> 16) % 17);
}

/* A head with every span as an offset into its buffer, comparable across buffers. */
struct head_view {
	int ret;
	enum http1_err err;
	struct http1_msg msg;
	size_t off[8 + 2 * NHDR][2];
};

static void span_view(size_t o[2], struct http1_span s, const char *buf, size_t len)
{
	if (!s.p) {
		o[0] = o[1] = SIZE_MAX;
		return;
	}
	check(s.p >= buf && s.p + s.len <= buf + len);
	o[0] = (size_t)(s.p - buf);
	o[1] = s.len;
}

static void view(struct head_view *v, int ret, const struct http1_parser *p,
		 const struct http1_msg *m, const char *buf)
{
	memset(v, 0, sizeof(*v));
	v->ret = ret;
	v->err = ret == HTTP1_INVALID ? p->err : HTTP1_OK;
	check(ret == HTTP1_INVALID || ret == HTTP1_INCOMPLETE || ret > 0);
	check((ret == HTTP1_INVALID) == (p->err != HTTP1_OK));
	if (ret <= 0)
		return;
	size_t len = (size_t)ret, k = 0;

	v->msg = *m;
	check(m->nheaders <= NHDR);
	check(m->minor <= 9);
	check(m->body != HTTP1_BODY_LENGTH ||
	      (m->content_length > 0 && m->content_length <= INT64_MAX));
	check(m->body == HTTP1_BODY_LENGTH || m->content_length == 0);
	span_view(v->off[k++], m->method_name, buf, len);
	span_view(v->off[k++], m->target, buf, len);
	span_view(v->off[k++], m->authority, buf, len);
	span_view(v->off[k++], m->path, buf, len);
	span_view(v->off[k++], m->reason, buf, len);
	span_view(v->off[k++], m->host, buf, len);
	span_view(v->off[k++], m->upgrade, buf, len);
	for (size_t i = 0; i < m->nheaders; i++) {
		check(m->headers[i].name.len > 0);
		span_view(v->off[k++], m->headers[i].name, buf, len);
		span_view(v->off[k++], m->headers[i].value, buf, len);
	}
	/* Pointers differ between buffers; offsets were taken above. */
	memset(&v->msg.method_name, 0, sizeof(v->msg.method_name));
	memset(&v->msg.target, 0, sizeof(v->msg.target));
	memset(&v->msg.authority, 0, sizeof(v->msg.authority));
	memset(&v->msg.path, 0, sizeof(v->msg.path));
	memset(&v->msg.reason, 0, sizeof(v->msg.reason));
	memset(&v->msg.host, 0, sizeof(v->msg.host));
	memset(&v->msg.upgrade, 0, sizeof(v->msg.upgrade));
	v->msg.headers = NULL;
}

static void begin(struct http1_parser *p, uint8_t mode, struct http1_header *h)
{
	static const enum http1_method req[] = {HTTP1_METHOD_GET, HTTP1_METHOD_HEAD,
						HTTP1_METHOD_CONNECT, HTTP1_METHOD_POST};

	if (mode & 1)
		http1_response_begin(p, NULL, h, NHDR, req[(mode >> 1) & 3]);
	else
		http1_request_begin(p, NULL, h, NHDR);
}

static int parse(struct http1_parser *p, uint8_t mode, const char *b, size_t n, struct http1_msg *m)
{
	return (mode & 1) ? http1_parse_response(p, b, n, m) : http1_parse_request(p, b, n, m);
}

static void head_whole(const char *in, size_t len, uint8_t mode, struct head_view *v)
{
	struct http1_header h[NHDR];
	struct http1_parser p;
	struct http1_msg m;
	char *b = malloc(len ? len : 1);
	int r;

	memcpy(b, in, len);
	begin(&p, mode, h);
	r = parse(&p, mode, b, len, &m);
	view(v, r, &p, &m, b);
	free(b);
}

/* Grows the input piece by piece, each call from a fresh copy of all bytes so far. */
static void head_pieces(const char *in, size_t len, uint8_t mode, uint32_t seed,
			struct head_view *v)
{
	struct http1_header h[NHDR];
	struct http1_parser p;
	struct http1_msg m;
	size_t have = 0;
	int r = HTTP1_INCOMPLETE;

	begin(&p, mode, h);
	for (int n = 0; r == HTTP1_INCOMPLETE && n < MAX_PIECES; n++) {
		have += next_piece(&seed);
		if (have > len || n == MAX_PIECES - 1)
			have = len;
		char *b = malloc(have ? have : 1);

		memcpy(b, in, have);
		r = parse(&p, mode, b, have, &m);
		view(v, r, &p, &m, b);
		free(b);
		if (have == len)
			break;
	}
}

/* A chunked body: decoded bytes, trailers and how it ended. */
struct body_view {
	ssize_t last;
	enum http1_err err;
	size_t used;
	uint64_t hash, nbytes;
	size_t ntrailers;
	size_t trailer_len; /* sum of name and value lengths */
};

static void body_add(struct body_view *v, struct http1_span d, const char *win, ssize_t r)
{
	check(d.len <= (size_t)r);
	check(d.p + d.len == win + r);
	for (size_t i = 0; i < d.len; i++)
		v->hash = (v->hash ^ (uint8_t)d.p[i]) * 1099511628211ULL;
	v->nbytes += d.len;
}

/* All input at once, or arriving in pieces sized from the seed. */
static void body_run(const char *in, size_t len, uint32_t seed, bool pieces, struct body_view *v)
{
	struct http1_header tr[NTRAILERS];
	struct http1_chunked c;
	size_t pos = 0, have = pieces ? 0 : len;

	memset(v, 0, sizeof(*v));
	v->hash = 14695981039346656037ULL;
	http1_chunked_begin(&c, NULL, tr, NTRAILERS);
	for (int n = 0;; n++) {
		struct http1_span d;
		ssize_t r;

		if (pieces && have < len) {
			have += next_piece(&seed);
			if (have > len || n >= MAX_PIECES)
				have = len;
		}
		/* Consumed bytes are gone; what is left moves to a new buffer. */
		char *win = malloc(have - pos + 1);

		memcpy(win, in + pos, have - pos);
		do {
			r = http1_chunked_decode(&c, win, have - pos, &d);
			if (r > 0) {
				check((size_t)r <= have - pos);
				body_add(v, d, win, r);
				pos += (size_t)r;
				memmove(win, win + r, have - pos);
			}
		} while (r > 0 && pos < have && !http1_chunked_done(&c));
		free(win);
		if (http1_chunked_done(&c) || r == HTTP1_INVALID || have == len) {
			v->last = http1_chunked_done(&c) ? 0
				  : r == HTTP1_INVALID	 ? HTTP1_INVALID
							 : HTTP1_INCOMPLETE;
			v->err = c.err;
			v->used = r == HTTP1_INVALID ? 0 : pos;
			v->ntrailers = http1_chunked_ntrailers(&c);
			check(v->ntrailers <= NTRAILERS);
			if (http1_chunked_done(&c))
				for (size_t i = 0; i < v->ntrailers; i++)
					v->trailer_len += tr[i].name.len + tr[i].value.len;
			return;
		}
	}
}

static void body_compare(const char *in, size_t len, uint32_t seed)
{
	struct body_view one, split;

	body_run(in, len, seed, false, &one);
	body_run(in, len, seed, true, &split);
	check(one.last == split.last && one.err == split.err && one.used == split.used);
	check(one.hash == split.hash && one.nbytes == split.nbytes);
	check(one.ntrailers == split.ntrailers && one.trailer_len == split.trailer_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct head_view one, split;

	if (size < 2)
		return 0;
	uint8_t mode = data[0];
	uint32_t seed = data[1];
	const char *in = (const char *)data + 2;
	size_t len = size - 2;

	head_whole(in, len, mode, &one);
	head_pieces(in, len, mode, seed, &split);
	check(one.ret == split.ret && one.err == split.err);
	if (one.ret > 0) {
		check(!memcmp(&one.msg, &split.msg, sizeof(one.msg)));
		check(!memcmp(one.off, split.off, sizeof(one.off)));
		/* The head alone parses the same: nothing past it was looked at. */
		struct head_view exact;

		head_whole(in, (size_t)one.ret, mode, &exact);
		check(exact.ret == one.ret && !memcmp(exact.off, one.off, sizeof(one.off)));
		if (one.msg.body == HTTP1_BODY_CHUNKED)
			body_compare(in + one.ret, len - (size_t)one.ret, seed);
	}
	/* The decoder on its own, over the whole input. */
	body_compare(in, len, seed);
	return 0;
}
