/* gRPC message framing (the 5-byte length prefix) over an HTTP/2 DATA stream. */
#ifndef SHUNT_AGENT_GRPC_FRAME_H
#define SHUNT_AGENT_GRPC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define GRPC_FRAME_HDR 5

/* Reassembles messages from DATA chunks of any size. Owns buf. */
struct grpc_decoder {
	uint32_t max_len; /* larger messages are refused with -EMSGSIZE */
	uint8_t hdr[GRPC_FRAME_HDR];
	uint32_t hdr_have;
	uint8_t *buf;
	uint32_t len, have;
	int error; /* sticky: once the stream is broken it stays broken */
};

typedef int (*grpc_message_fn)(void *ctx, const uint8_t *msg, size_t len);

void grpc_decoder_init(struct grpc_decoder *d, uint32_t max_len);
/* Feeds bytes; calls fn for each complete message (pointing into data when a message lies
 * whole inside it, else into the decoder's buffer, valid during the call). Returns 0, fn's
 * non-zero return, -EMSGSIZE for a message over max_len, -EPROTO for a compressed message
 * (shunt never negotiates compression), -ENOMEM. */
int grpc_decoder_feed(struct grpc_decoder *d, const uint8_t *data, size_t len, grpc_message_fn fn,
		      void *ctx);
/* True when no message is half received (a stream may end only then). */
int grpc_decoder_idle(const struct grpc_decoder *d);
void grpc_decoder_free(struct grpc_decoder *d);
void grpc_frame_header(uint8_t out[GRPC_FRAME_HDR], uint32_t len);

#endif
