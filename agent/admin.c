/* A small event-driven HTTP/1.0 server for the admin API: one request per connection. */
#include "agent/admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

/* One connection: the request head as it arrives, then the response as it leaves. */
struct admin_client {
	struct list_head node;
	int fd;
	bool local;
	char req[ADMIN_MAX_REQUEST + 1];
	size_t len;
	struct strbuf out;
	size_t out_off;
	uint64_t started_ms;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) || chmod(path, 0600) || listen(fd, 64)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int listen_tcp(const char *addr, int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd, one = 1;

	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, 64)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int admin_open(struct admin_server *a, int epfd, const char *unix_path, const char *tcp_addr,
	       int tcp_port, admin_handler_fn handler, void *ctx)
{
	struct epoll_event ev = {.events = EPOLLIN};

	memset(a, 0, sizeof(*a));
	list_init(&a->clients);
	a->epfd = epfd;
	a->tcp_fd = -1;
	a->handler = handler;
	a->ctx = ctx;
	snprintf(a->sock_path, sizeof(a->sock_path), "%s", unix_path);
	a->unix_fd = listen_unix(unix_path);
	if (a->unix_fd < 0) {
		pr_err("cannot listen on admin socket %s: %s", unix_path, strerror(-a->unix_fd));
		return a->unix_fd;
	}
	ev.data.ptr = &a->unix_fd;
	epoll_ctl(epfd, EPOLL_CTL_ADD, a->unix_fd, &ev);
	if (tcp_port > 0) {
		a->tcp_fd = listen_tcp(tcp_addr, tcp_port);
		if (a->tcp_fd < 0) {
			int err = a->tcp_fd;

			pr_err("cannot listen on admin port %s:%d: %s", tcp_addr, tcp_port,
			       strerror(-err));
			admin_close(a);
			return err;
		}
		ev.data.ptr = &a->tcp_fd;
		epoll_ctl(epfd, EPOLL_CTL_ADD, a->tcp_fd, &ev);
	}
	return 0;
}

bool admin_owns(const struct admin_server *a, const void *ptr)
{
	struct list_head *pos, *tmp;

	if (ptr == &a->unix_fd || ptr == &a->tcp_fd)
		return true;
	list_for_each_safe (pos, tmp, (struct list_head *)&a->clients)
		if (ptr == list_entry(pos, struct admin_client, node))
			return true;
	return false;
}

static void client_close(struct admin_server *a, struct admin_client *c)
{
	epoll_ctl(a->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	list_del_init(&c->node);
	strbuf_release(&c->out);
	free(c);
	a->nclients--;
}

static const char *status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return status >= 500 ? "Internal Server Error" : "Error";
	}
}

static void respond(struct admin_client *c, int status, const char *ctype, struct strbuf *body)
{
	strbuf_addf(&c->out,
		    "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		    "Connection: close\r\n\r\n",
		    status, status_text(status), ctype, body->len);
	strbuf_add(&c->out, strbuf_str(body), body->len);
}

int admin_parse_head(char *head, struct admin_req *req)
{
	char *sp1, *sp2, *q;

	sp1 = strchr(head, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || sp1 == head || sp1[1] != '/' || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
		return -EINVAL;
	for (const char *m = head; m < sp1; m++)
		if (*m < 'A' || *m > 'Z')
			return -EINVAL;
	*sp1 = '\0';
	*sp2 = '\0';
	req->method = head;
	req->path = sp1 + 1;
	q = strchr(sp1 + 1, '?');
	if (q) {
		*q = '\0';
		req->query = q + 1;
	} else {
		req->query = "";
	}
	return 0;
}

/* Parses the request line of a complete head and runs the handler. */
static void handle(struct admin_server *a, struct admin_client *c)
{
	struct admin_resp resp = {.status = 200, .content_type = "application/json"};
	struct admin_req req = {.local = c->local};

	c->req[c->len] = '\0';
	if (admin_parse_head(c->req, &req)) {
		strbuf_adds(&resp.body, "{\"error\":\"malformed request line\"}\n");
		respond(c, 400, resp.content_type, &resp.body);
		strbuf_release(&resp.body);
		return;
	}
	a->handler(a->ctx, &req, &resp);
	respond(c, resp.status, resp.content_type, &resp.body);
	strbuf_release(&resp.body);
}

static void client_write(struct admin_server *a, struct admin_client *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n =
			send(c->fd, c->out.buf + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			client_close(a, c);
			return;
		}
		c->out_off += (size_t)n;
	}
	client_close(a, c);
}

static void client_read(struct admin_server *a, struct admin_client *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->req + c->len, ADMIN_MAX_REQUEST - c->len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			client_close(a, c);
			return;
		}
		c->len += (size_t)n;
		c->req[c->len] = '\0';
		if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n"))
			break;
		if (c->len == ADMIN_MAX_REQUEST) {
			struct strbuf body = {0};

			strbuf_adds(&body, "{\"error\":\"request head too large\"}\n");
			respond(c, 431, "application/json", &body);
			strbuf_release(&body);
			break;
		}
	}
	if (!c->out.len)
		handle(a, c);
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};

	epoll_ctl(a->epfd, EPOLL_CTL_MOD, c->fd, &ev);
	client_write(a, c);
}

static void accept_clients(struct admin_server *a, int lfd, bool local)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct admin_client *c;

		if (fd < 0)
			return;
		if (a->nclients >= ADMIN_MAX_CLIENTS || !(c = calloc(1, sizeof(*c)))) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->local = local;
		c->started_ms = now_ms();
		list_add_tail(&c->node, &a->clients);
		a->nclients++;
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

		epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev);
	}
}

void admin_on_event(struct admin_server *a, void *ptr, uint32_t events)
{
	if (ptr == &a->unix_fd) {
		accept_clients(a, a->unix_fd, true);
		return;
	}
	if (ptr == &a->tcp_fd) {
		accept_clients(a, a->tcp_fd, false);
		return;
	}
	struct admin_client *c = ptr;

	if (c->out.len)
		client_write(a, c);
	else
		client_read(a, c);
}

void admin_tick(struct admin_server *a, uint64_t now)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &a->clients) {
		struct admin_client *c = list_entry(pos, struct admin_client, node);

		/* Clients accepted after `now` was taken are younger than it. */
		if (now > c->started_ms && now - c->started_ms > ADMIN_TIMEOUT_MS)
			client_close(a, c);
	}
}

void admin_close(struct admin_server *a)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &a->clients)
		client_close(a, list_entry(pos, struct admin_client, node));
	if (a->unix_fd >= 0) {
		close(a->unix_fd);
		unlink(a->sock_path);
	}
	if (a->tcp_fd >= 0)
		close(a->tcp_fd);
	a->unix_fd = a->tcp_fd = -1;
}

bool admin_query_get(const char *query, const char *name, char *buf, size_t len)
{
	size_t n = strlen(name);

	for (const char *p = query; p && *p;) {
		size_t seg = strcspn(p, "&");

		if (seg > n && strncmp(p, name, n) == 0 && p[n] == '=') {
			size_t vlen = seg - n - 1;

			if (vlen >= len)
				vlen = len - 1;
			memcpy(buf, p + n + 1, vlen);
			buf[vlen] = '\0';
			return true;
		}
		p += seg;
		if (*p == '&')
			p++;
	}
	return false;
}
