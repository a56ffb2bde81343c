/* Fuzz target for the nesting bound ads.c applies before protobuf-c decodes a response: never
 * reads out of bounds, and what it lets through decodes without exhausting the stack. */
#include <stdint.h>
#include <stdlib.h>

#include "agent/ads.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int deep = ads_pb_too_deep(data, size, ADS_MAX_NESTING);
	ProtobufCMessage *m;

	if (deep)
		return 0;
	m = protobuf_c_message_unpack(
		&envoy__service__discovery__v3__discovery_response__descriptor, NULL, size, data);
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
