/* Parse-speed check for proxy/http1.c: ns per request head and chunked-decode throughput.
 * usage: make build/bin/bench/http1_parse && build/bin/bench/http1_parse [ITERATIONS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxy/http1.h"

#define ITER_DEF 1000000

static const struct {
	const char *name;
	const char *head;
} heads[] = {
	{"curl", "GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\n"
		 "Accept: */*\r\n\r\n"},
	{"browser", "GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg HTTP/1.1\r\n"
		    "Host: www.kittyhell.com\r\n"
		    "User-Agent: Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10_6_8; ja-JP-mac; "
		    "rv:1.9.2.3) Gecko/20100401 Firefox/3.6.3 Pathtraq/0.9\r\n"
		    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
		    "Accept-Language: ja,en-us;q=0.7,en;q=0.3\r\nAccept-Encoding: gzip,deflate\r\n"
		    "Accept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\nKeep-Alive: 115\r\n"
		    "Connection: keep-alive\r\nCookie: wp_ozh_wsa_visits=2; "
		    "wp_ozh_wsa_visit_lasttime=xxxxxxxxxx; __utma=xxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx."
		    "xxxxxxxxxx.xxxxxxxxxx.x; __utmz=xxxxxxxxx.xxxxxxxxxx.x.x.utmccn=(referral)|"
		    "utmcsr=reader.livedoor.com|utmcct=/reader/|utmcmd=referral\r\n\r\n"},
	{"post", "POST /api/v1/items HTTP/1.1\r\nHost: api.internal:8080\r\n"
		 "Content-Type: application/json\r\nContent-Length: 128\r\n"
		 "x-request-id: 5f1c2b8e-9d3a-4c1e-8b7a-2e6f0d4c9a11\r\n"
		 "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n"},
};

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : ITER_DEF;
	struct http1_header h[HTTP1_MAX_HEADERS_DEF];
	struct http1_parser p;
	struct http1_msg m;
	long sum = 0;

	if (iters <= 0) {
		fprintf(stderr, "usage: %s [ITERATIONS]\n", argv[0]);
		return 2;
	}
	for (size_t k = 0; k < sizeof(heads) / sizeof(heads[0]); k++) {
		size_t len = strlen(heads[k].head);
		double t = now();

		for (long i = 0; i < iters; i++) {
			http1_request_begin(&p, NULL, h, HTTP1_MAX_HEADERS_DEF);
			sum += http1_parse_request(&p, heads[k].head, len, &m);
		}
		t = now() - t;
		printf("head %-8s %4zu B %7.1f ns %6.2f Mreq/s %5.2f GB/s\n", heads[k].name, len,
		       t * 1e9 / (double)iters, (double)iters / t / 1e6,
		       (double)len * (double)iters / t / 1e9);
	}

	/* 64 KiB of 1 KiB chunks: the framing, not the data, is what costs. */
	enum {
		CHUNK = 1024,
		NCHUNKS = 64
	};
	char *body = malloc(NCHUNKS * (CHUNK + 16) + 8);
	size_t blen = 0;

	for (int i = 0; i < NCHUNKS; i++) {
		blen += http1_chunk_header(body + blen, CHUNK);
		memset(body + blen, 'x', CHUNK);
		blen += CHUNK;
		memcpy(body + blen, HTTP1_CHUNK_END, 2);
		blen += 2;
	}
	memcpy(body + blen, HTTP1_CHUNK_LAST, 5);
	blen += 5;
	long rounds = iters / 100 > 0 ? iters / 100 : 1;
	double t = now();

	for (long i = 0; i < rounds; i++) {
		struct http1_chunked c;
		struct http1_span d;
		size_t off = 0;
		ssize_t r;

		http1_chunked_begin(&c, NULL, NULL, 0);
		while ((r = http1_chunked_decode(&c, body + off, blen - off, &d)) > 0) {
			off += (size_t)r;
			sum += (long)d.len;
		}
	}
	t = now() - t;
	printf("chunked %zu B in %d chunks %7.1f ns %5.2f GB/s\n", blen, NCHUNKS,
	       t * 1e9 / (double)rounds, (double)blen * (double)rounds / t / 1e9);
	free(body);
	return sum == 0;
}
