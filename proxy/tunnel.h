/* Byte tunnels the HTTP codecs hand to the TCP proxy: an upgrade answered 101, a CONNECT
 * answered 2xx (see tcp_proxy.c). */
#ifndef SHUNT_PROXY_TUNNEL_H
#define SHUNT_PROXY_TUNNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/strbuf.h"
#include "proxy/tlsio.h"
#include "proxy/worker.h"

/* One side of an HTTP connection that becomes a raw byte tunnel (an upgrade answered 101, a
 * CONNECT answered 2xx): its socket, bytes already read from it that belong to the tunnel (past
 * the request or response head), bytes queued for it and not yet written (the 101 head), and
 * whether its FIN was already read. The strbufs and the TLS state are the tunnel's once handed
 * over (read past by the codec: decrypted bytes still inside OpenSSL are read by the tunnel). */
struct tunnel_end {
	int fd;
	struct tlsio tls; /* the codec's TLS state (ssl NULL: plain), moved out of it */
	struct strbuf rx, tx;
	bool eof;
};

struct accesslog_http;

/* What tcp_tunnel_start needs besides the two ends. The access-log entry (accesslog_http_dup,
 * owned by the tunnel from now on) is written when the tunnel ends, with its byte counts and
 * duration; start_ms is when the request started (CLOCK_MONOTONIC). */
struct tunnel_desc {
	struct proxy_workload *w;
	struct px_snapshot *snap;
	/* The HTTP connection's listener and chain, in snap: the tunnel drains with them. */
	const struct px_listener *listener;
	const struct px_filter_chain *chain;
	uint32_t idle_timeout_ms;
	uint64_t start_ms;
	struct accesslog_http *log;
};

/* Pumps bytes between down and up (both sockets in the worker's epoll set; the tunnel takes
 * them over, with their TLS state, strbufs and d->log) until both directions are shut or one
 * fails. 0, or -errno: then both sockets are closed, everything handed over freed. */
int tcp_tunnel_start(struct worker *wk, struct tunnel_end *down, struct tunnel_end *up,
		     const struct tunnel_desc *d);

#endif
