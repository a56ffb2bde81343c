/* Tests agent/grpc_frame.c: messages split at every byte boundary, empty messages, limits,
 * compression refused, errors sticky. */
#include <errno.h>
#include <stdlib.h>

#include "agent/grpc_frame.h"
#include "tests/lib/tap.h"

struct got {
	char seen[8][64];
	size_t lens[8];
	int n;
};

static int collect(void *ctx, const uint8_t *msg, size_t len)
{
	struct got *g = ctx;

	if (g->n < 8) {
		memcpy(g->seen[g->n], msg, len < 64 ? len : 64);
		g->lens[g->n] = len;
	}
	g->n++;
	return 0;
}

static size_t frame(uint8_t *out, const char *msg)
{
	size_t len = strlen(msg);

	grpc_frame_header(out, (uint32_t)len);
	memcpy(out + GRPC_FRAME_HDR, msg, len);
	return GRPC_FRAME_HDR + len;
}

int main(void)
{
	uint8_t stream[256];
	size_t n = 0;
	static const char *msgs[] = {"hello", "", "a longer message of forty-two bytes......."};
	struct grpc_decoder d;
	struct got g;

	for (int i = 0; i < 3; i++)
		n += frame(stream + n, msgs[i]);

	/* Every split into two feeds, and byte by byte, gives the same three messages. */
	int all_ok = 1;

	for (size_t cut = 0; cut <= n; cut++) {
		memset(&g, 0, sizeof(g));
		grpc_decoder_init(&d, 1024);
		grpc_decoder_feed(&d, stream, cut, collect, &g);
		grpc_decoder_feed(&d, stream + cut, n - cut, collect, &g);
		all_ok &= g.n == 3 && grpc_decoder_idle(&d);
		for (int i = 0; i < 3 && g.n == 3; i++)
			all_ok &= g.lens[i] == strlen(msgs[i]) &&
				  !memcmp(g.seen[i], msgs[i], strlen(msgs[i]));
		grpc_decoder_free(&d);
	}
	ok(all_ok, "three messages (one empty) come out whole at every split point");
	memset(&g, 0, sizeof(g));
	grpc_decoder_init(&d, 1024);
	for (size_t i = 0; i < n; i++)
		grpc_decoder_feed(&d, stream + i, 1, collect, &g);
	ok(g.n == 3 && !strcmp(g.seen[0], "hello"), "and fed one byte at a time");
	grpc_decoder_free(&d);

	grpc_decoder_init(&d, 1024);
	memset(&g, 0, sizeof(g));
	grpc_decoder_feed(&d, stream, 3, collect, &g);
	ok(!grpc_decoder_idle(&d), "a half-received header is not idle");
	grpc_decoder_free(&d);

	uint8_t big[GRPC_FRAME_HDR];

	grpc_frame_header(big, 4097);
	grpc_decoder_init(&d, 4096);
	is_int(grpc_decoder_feed(&d, big, sizeof(big), collect, &g), -EMSGSIZE,
	       "a message over the limit is refused");
	is_int(grpc_decoder_feed(&d, stream, n, collect, &g), -EMSGSIZE,
	       "and the decoder stays broken");
	grpc_decoder_free(&d);

	uint8_t comp[] = {1, 0, 0, 0, 1, 'x'};

	grpc_decoder_init(&d, 4096);
	is_int(grpc_decoder_feed(&d, comp, sizeof(comp), collect, &g), -EPROTO,
	       "a compressed message is refused");
	grpc_decoder_free(&d);

	grpc_frame_header(big, 0x01020304);
	ok(big[0] == 0 && big[1] == 1 && big[2] == 2 && big[3] == 3 && big[4] == 4,
	   "the length prefix is big-endian after an uncompressed flag");
	return done_testing();
}
