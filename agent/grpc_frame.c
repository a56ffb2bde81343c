/* Resumable gRPC length-prefixed message decoder; zero-copy when a message is whole. */
#include "agent/grpc_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void grpc_decoder_init(struct grpc_decoder *d, uint32_t max_len)
{
	memset(d, 0, sizeof(*d));
	d->max_len = max_len;
}

void grpc_decoder_free(struct grpc_decoder *d)
{
	free(d->buf);
	d->buf = NULL;
}

void grpc_frame_header(uint8_t out[GRPC_FRAME_HDR], uint32_t len)
{
	out[0] = 0; /* not compressed */
	out[1] = (uint8_t)(len >> 24);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
}

int grpc_decoder_idle(const struct grpc_decoder *d)
{
	return d->hdr_have == 0 && !d->error;
}

static int header_done(struct grpc_decoder *d)
{
	if (d->hdr[0] != 0)
		return -EPROTO;
	d->len = (uint32_t)d->hdr[1] << 24 | (uint32_t)d->hdr[2] << 16 | (uint32_t)d->hdr[3] << 8 |
		 d->hdr[4];
	if (d->len > d->max_len)
		return -EMSGSIZE;
	d->have = 0;
	return 0;
}

int grpc_decoder_feed(struct grpc_decoder *d, const uint8_t *data, size_t len, grpc_message_fn fn,
		      void *ctx)
{
	int rc;

	if (d->error)
		return d->error;
	while (len) {
		if (d->hdr_have < GRPC_FRAME_HDR) {
			size_t take = GRPC_FRAME_HDR - d->hdr_have;

			if (take > len)
				take = len;
			memcpy(d->hdr + d->hdr_have, data, take);
			d->hdr_have += (uint32_t)take;
			data += take;
			len -= take;
			if (d->hdr_have < GRPC_FRAME_HDR)
				return 0;
			rc = header_done(d);
			if (rc)
				return d->error = rc;
		}
		if (d->have == 0 && len >= d->len) {
			/* The whole message is here: hand it over without copying. */
			rc = fn(ctx, data, d->len);
			data += d->len;
			len -= d->len;
			d->hdr_have = 0;
			if (rc)
				return d->error = rc;
			continue;
		}
		if (!d->buf || d->have == 0) {
			free(d->buf);
			d->buf = malloc(d->len ? d->len : 1);
			if (!d->buf)
				return d->error = -ENOMEM;
		}
		size_t take = d->len - d->have;

		if (take > len)
			take = len;
		memcpy(d->buf + d->have, data, take);
		d->have += (uint32_t)take;
		data += take;
		len -= take;
		if (d->have < d->len)
			return 0;
		rc = fn(ctx, d->buf, d->len);
		d->hdr_have = 0;
		d->have = 0;
		if (rc)
			return d->error = rc;
	}
	return 0;
}
