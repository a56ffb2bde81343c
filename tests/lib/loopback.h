/* Loopback sockets for the proxy's unit tests: a listener on an ephemeral port, a client with a
 * receive timeout, and an echo backend thread that greets each connection with one byte. */
#ifndef SHUNT_TESTS_LOOPBACK_H
#define SHUNT_TESTS_LOOPBACK_H

#include <arpa/inet.h>
#include <linux/types.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define LO_ECHO_MAX_CONNS 64

/* Listens on 127.0.0.1 at a port the kernel picks (*port). The fd, or -1. */
static inline int lo_listen(__u16 *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, 128)) {
		close(fd);
		return -1;
	}
	getsockname(fd, (struct sockaddr *)&sin, &len);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* Connects to 127.0.0.1:port; reads on it time out after 5 s. The fd, or -1. */
static inline int lo_dial(__u16 port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(0x7f000001)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_sec = 5};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* An echo backend: run lo_echo_main on a thread; it ends when *stopping becomes non-zero. */
struct lo_echo {
	int lfd;
	char greeting; /* written first on every accepted connection */
	const volatile int *stopping;
};

static inline void *lo_echo_main(void *arg)
{
	const struct lo_echo *b = arg;
	struct pollfd pfds[LO_ECHO_MAX_CONNS];
	int n = 1;

	pfds[0] = (struct pollfd){.fd = b->lfd, .events = POLLIN};
	while (!*b->stopping) {
		if (poll(pfds, (nfds_t)n, 100) <= 0)
			continue;
		if (pfds[0].revents & POLLIN) {
			int fd = accept(b->lfd, NULL, NULL);

			if (fd >= 0 && n < LO_ECHO_MAX_CONNS && write(fd, &b->greeting, 1) == 1)
				pfds[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
			else if (fd >= 0)
				close(fd);
		}
		for (int i = 1; i < n; i++) {
			char buf[4096];
			ssize_t r;

			if (!(pfds[i].revents & (POLLIN | POLLHUP)))
				continue;
			r = read(pfds[i].fd, buf, sizeof(buf));
			if (r > 0 && write(pfds[i].fd, buf, (size_t)r) == r)
				continue;
			close(pfds[i].fd);
			pfds[i--] = pfds[--n];
		}
	}
	for (int i = 1; i < n; i++)
		close(pfds[i].fd);
	return NULL;
}

#endif
