/* Fuzzes bootstrap loading (decode, checks, seal) and the config_dump of whatever it accepts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "agent/bootstrap.h"
#include "agent/config_dump.h"
#include "lib/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xds_config *cfg;
	struct strbuf out = STRBUF_INIT;
	struct jtree_err err;

	log_threshold = L_ERROR;
	if (bootstrap_parse((const char *)data, size, &cfg, &err))
		return 0;
	if (config_dump_render(cfg, NULL, &out, &err)) {
		fprintf(stderr, "accepted bootstrap does not dump: %s\n", err.msg);
		abort();
	}
	strbuf_release(&out);
	xds_config_free(cfg);
	return 0;
}
