/* Type registry lookups over the generated, sorted table of message descriptors. */
#include "agent/pbreg.h"

#include <string.h>

const ProtobufCMessageDescriptor *pbreg_find(const char *type_url)
{
	const char *name = strrchr(type_url, '/');
	size_t lo = 0, hi = pbreg_ntypes;

	name = name ? name + 1 : type_url;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, pbreg_types[mid].name);

		if (c == 0)
			return pbreg_types[mid].desc;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}
