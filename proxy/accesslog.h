/* Access-log lines for proxied connections, in Istio's default text format or as JSON. */
#ifndef SHUNT_PROXY_ACCESSLOG_H
#define SHUNT_PROXY_ACCESSLOG_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "lib/strbuf.h"

/* Everything a TCP line says; addresses are preformatted "ip:port" strings or "-". */
struct accesslog_tcp {
	struct timespec start; /* CLOCK_REALTIME */
	uint64_t duration_ms;
	uint64_t bytes_received, bytes_sent;
	const char *flags;	    /* Envoy response flags ("UF", "NR", ...) or "-" */
	const char *details;	    /* connection termination details or "-" */
	const char *failure_reason; /* upstream transport failure reason or "-" */
	const char *upstream_host;
	const char *upstream_cluster;
	const char *upstream_local;
	const char *downstream_local;
	const char *downstream_remote;
};

/* Appends one line (ending in '\n'). Istio's format, with HTTP fields as "-":
 * [START] "- - -" 0 FLAGS - DETAILS "REASON" RX TX DURATION - "-" "-" "-" "-" "UPSTREAM_HOST"
 * CLUSTER UPSTREAM_LOCAL DOWNSTREAM_LOCAL DOWNSTREAM_REMOTE - - */
void accesslog_tcp_format(struct strbuf *sb, const struct accesslog_tcp *e, bool json);
/* Envoy's %START_TIME% default: 2026-11-25T10:11:12.345Z. */
void accesslog_time(char *buf, size_t len, const struct timespec *ts);

#endif
