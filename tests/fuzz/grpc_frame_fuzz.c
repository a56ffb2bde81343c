/* Fuzz target for the gRPC message decoder: any split of the input gives the same messages. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/grpc_frame.h"

struct acc {
	uint64_t sum;
	size_t count;
};

static int add(void *ctx, const uint8_t *msg, size_t len)
{
	struct acc *a = ctx;

	for (size_t i = 0; i < len; i++)
		a->sum = a->sum * 31 + msg[i];
	a->count++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct grpc_decoder one, many;
	struct acc a = {0}, b = {0};
	int r1, r2 = 0;
	size_t off = 0, step = size ? (data[0] % 7) + 1 : 1;

	grpc_decoder_init(&one, 1 << 16);
	grpc_decoder_init(&many, 1 << 16);
	r1 = grpc_decoder_feed(&one, data, size, add, &a);
	while (off < size && !r2) {
		size_t n = size - off < step ? size - off : step;

		r2 = grpc_decoder_feed(&many, data + off, n, add, &b);
		off += n;
	}
	if (r1 != r2 || a.sum != b.sum || a.count != b.count)
		__builtin_trap();
	grpc_decoder_free(&one);
	grpc_decoder_free(&many);
	return 0;
}
