/* shuntd's admin API: HTTP on a unix socket (shuntctl) and on a TCP port (Prometheus, health). */
#ifndef SHUNT_AGENT_ADMIN_H
#define SHUNT_AGENT_ADMIN_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/list.h"
#include "lib/strbuf.h"

#define ADMIN_MAX_REQUEST 8192 /* request head; admin requests carry no body */
#define ADMIN_MAX_CLIENTS 64
#define ADMIN_TIMEOUT_MS  5000

struct admin_req {
	const char *method;
	const char *path;  /* without the query */
	const char *query; /* after '?', or "" */
	bool local;	   /* came over the unix socket (trusted: may change state) */
};

struct admin_resp {
	int status;
	const char *content_type;
	struct strbuf body;
};

typedef void (*admin_handler_fn)(void *ctx, const struct admin_req *req, struct admin_resp *resp);

struct admin_server {
	char sock_path[PATH_MAX];
	int unix_fd, tcp_fd, epfd;
	admin_handler_fn handler;
	void *ctx;
	struct list_head clients;
	int nclients;
};

/* Listens on unix_path (mode 0600) and, when tcp_port > 0, on tcp_addr:tcp_port. Every fd is
 * added to epfd with data.ptr pointing into the server; the caller passes events back through
 * admin_on_event when admin_owns() says the pointer is ours. */
int admin_open(struct admin_server *a, int epfd, const char *unix_path, const char *tcp_addr,
	       int tcp_port, admin_handler_fn handler, void *ctx);
bool admin_owns(const struct admin_server *a, const void *ptr);
void admin_on_event(struct admin_server *a, void *ptr, uint32_t events);
/* Closes clients idle for longer than ADMIN_TIMEOUT_MS. */
void admin_tick(struct admin_server *a, uint64_t now_ms);
void admin_close(struct admin_server *a);
/* Splits "METHOD /path?query HTTP/1.x..." in place (NUL-terminated head) into req's method,
 * path and query. -EINVAL for anything else. */
int admin_parse_head(char *head, struct admin_req *req);
/* Value of name in a query string ("pid=12&x=y"), copied into buf; false if absent. */
bool admin_query_get(const char *query, const char *name, char *buf, size_t len);

#endif
