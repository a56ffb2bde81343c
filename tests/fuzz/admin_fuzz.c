/* Fuzz target for the admin API's request-line and query parsing (agent/admin.c). */
#include <stdint.h>
#include <string.h>

#include "agent/admin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char head[ADMIN_MAX_REQUEST + 1], val[64];
	struct admin_req req = {0};

	if (size > ADMIN_MAX_REQUEST)
		size = ADMIN_MAX_REQUEST;
	memcpy(head, data, size);
	head[size] = '\0';
	if (admin_parse_head(head, &req) == 0) {
		/* The handler relies on these being NUL-terminated strings inside head. */
		if (!req.method || !req.path || !req.query || req.path[-1] != '\0')
			__builtin_trap();
		admin_query_get(req.query, "pid", val, sizeof(val));
		admin_query_get(req.query, "level", val, sizeof(val));
		admin_query_get(req.query, "", val, 1);
	}
	return 0;
}
