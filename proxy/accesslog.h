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

/* Bytes from a request (not NUL-terminated); p == NULL or len == 0 prints "-". */
struct accesslog_span {
	const char *p;
	size_t len;
};

/* Everything an HTTP line says. */
struct accesslog_http {
	struct timespec start;
	struct accesslog_span method, path, authority, xff, user_agent, request_id;
	const char *protocol; /* "HTTP/1.1", "HTTP/2" */
	int status;	      /* 0 when no response was sent */
	const char *flags, *details, *failure_reason;
	uint64_t bytes_received, bytes_sent, duration_ms;
	int64_t upstream_service_time_ms; /* -1: none */
	const char *upstream_host, *upstream_cluster, *upstream_local;
	const char *downstream_local, *downstream_remote, *route_name;
};

/* Istio's default line for HTTP:
 * [START] "METHOD PATH PROTOCOL" CODE FLAGS DETAILS - "REASON" RX TX DURATION SERVICE_TIME
 * "XFF" "USER-AGENT" "REQUEST-ID" "AUTHORITY" "UPSTREAM_HOST" CLUSTER UPSTREAM_LOCAL
 * DOWNSTREAM_LOCAL DOWNSTREAM_REMOTE - ROUTE_NAME */
void accesslog_http_format(struct strbuf *sb, const struct accesslog_http *e, bool json);

/* A copy of e in one allocation (free() it), every string and span with it: for a stream that
 * is logged after the buffers it points into are gone (an upgrade that became a tunnel).
 * NULL when out of memory. */
struct accesslog_http *accesslog_http_dup(const struct accesslog_http *e);

/* Appends one line (ending in '\n'). Istio's format, with HTTP fields as "-":
 * [START] "- - -" 0 FLAGS - DETAILS "REASON" RX TX DURATION - "-" "-" "-" "-" "UPSTREAM_HOST"
 * CLUSTER UPSTREAM_LOCAL DOWNSTREAM_LOCAL DOWNSTREAM_REMOTE - - */
void accesslog_tcp_format(struct strbuf *sb, const struct accesslog_tcp *e, bool json);
/* Envoy's %START_TIME% default: 2026-11-25T10:11:12.345Z. */
void accesslog_time(char *buf, size_t len, const struct timespec *ts);

#endif
