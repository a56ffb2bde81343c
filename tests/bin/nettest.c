/* nettest: the client and server that shunt's integration tests and benchmarks run in pods.
 *
 *   nettest serve PORT [echo|peer]      echo server, or answer "peer=ADDR:PORT\n" and close
 *   nettest peer HOST PORT              connect; print "peer=ADDR:PORT local=ADDR:PORT"
 *   nettest bulk HOST PORT BYTES        send BYTES of a known stream, read the echo, verify it
 *   nettest conns HOST PORT N [BYTES]   N connections at once, each one echo exchange
 *   nettest rr HOST PORT COUNT SIZE     COUNT sequential request/response exchanges on one
 *                                       connection; prints the latency percentiles in us
 *
 * Exit status: 0 when everything checked out, 1 otherwise (with a line saying what).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK	   65536
#define MAX_CONNS  20000
#define IO_TIMEOUT 30000 /* ms without progress before giving up */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("nettest: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static const char *fmt_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)ss;

		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(s->sin_port));
	} else {
		const struct sockaddr_in6 *s = (const void *)ss;

		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr))
			snprintf(buf, len, "%s:%u", ip + 7, ntohs(s->sin6_port));
		else
			snprintf(buf, len, "[%s]:%u", ip, ntohs(s->sin6_port));
	}
	return buf;
}

static int connect_to(const char *host, const char *port, bool nonblock)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *ai;
	int fd, one = 1;

	if (getaddrinfo(host, port, &hints, &ai))
		die("bad address %s port %s", host, port);
	fd = socket(ai->ai_family, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS) {
		freeaddrinfo(ai);
		close(fd);
		return -errno;
	}
	freeaddrinfo(ai);
	return fd;
}

/* ---- serve ----------------------------------------------------------------------------------- */

struct sconn {
	int fd;
	char buf[CHUNK];
	size_t off, len;
	bool eof;
};

static void serve(int port, bool peer_mode)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
	struct epoll_event ev, evs[256];
	int lfd, ep, zero = 0, one = 1;

	raise_nofile();
	lfd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sin6, sizeof(sin6)) || listen(lfd, 4096))
		die("listen on port %d: %s", port, strerror(errno));
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);

		for (int i = 0; i < n; i++) {
			struct sconn *c = evs[i].data.ptr;

			if (!c) {
				struct sockaddr_storage ss;
				socklen_t len = sizeof(ss);
				int fd;

				while ((fd = accept4(lfd, (struct sockaddr *)&ss, &len,
						     SOCK_NONBLOCK)) >= 0) {
					if (peer_mode) {
						char line[128], a[80];
						int k = snprintf(line, sizeof(line), "peer=%s\n",
								 fmt_addr(&ss, a, sizeof(a)));

						if (write(fd, line, (size_t)k) < 0)
							perror("write");
						close(fd);
						len = sizeof(ss);
						continue;
					}
					c = calloc(1, sizeof(*c));
					c->fd = fd;
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
					len = sizeof(ss);
				}
				continue;
			}
			/* Echo: read a chunk when the buffer is empty, write it back. */
			if (c->len == 0 && !c->eof) {
				ssize_t r = read(c->fd, c->buf, sizeof(c->buf));

				if (r > 0) {
					c->off = 0;
					c->len = (size_t)r;
				} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
					c->eof = true;
				}
			}
			while (c->len) {
				ssize_t w = write(c->fd, c->buf + c->off, c->len);

				if (w < 0)
					break;
				c->off += (size_t)w;
				c->len -= (size_t)w;
			}
			if (c->eof && !c->len) {
				close(c->fd);
				free(c);
				continue;
			}
			ev.events = c->len ? EPOLLOUT : EPOLLIN;
			ev.data.ptr = c;
			epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		}
	}
}

/* ---- clients --------------------------------------------------------------------------------- */

static void peer(const char *host, const char *port)
{
	struct sockaddr_storage p, l;
	socklen_t plen = sizeof(p), llen = sizeof(l);
	char pa[80], la[80];
	int fd = connect_to(host, port, false);

	if (fd < 0)
		die("connect %s:%s: %s", host, port, strerror(-fd));
	getpeername(fd, (struct sockaddr *)&p, &plen);
	getsockname(fd, (struct sockaddr *)&l, &llen);
	printf("peer=%s local=%s\n", fmt_addr(&p, pa, sizeof(pa)), fmt_addr(&l, la, sizeof(la)));
	close(fd);
}

/* A reproducible byte stream: xorshift64*, one byte per step from the high bits. */
struct stream {
	uint64_t s;
};

static void stream_fill(struct stream *st, unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		st->s ^= st->s >> 12;
		st->s ^= st->s << 25;
		st->s ^= st->s >> 27;
		buf[i] = (unsigned char)((st->s * 0x2545F4914F6CDD1DULL) >> 56);
	}
}

static void bulk(const char *host, const char *port, uint64_t total)
{
	static unsigned char out[CHUNK], in[CHUNK], want[CHUNK];
	struct stream tx = {0x9E3779B97F4A7C15ULL}, rx = tx;
	uint64_t sent = 0, got = 0, t0 = now_us();
	size_t out_off = 0, out_len = 0;
	int fd = connect_to(host, port, true);
	bool shut = false;

	if (fd < 0)
		die("connect %s:%s: %s", host, port, strerror(-fd));
	while (got < total) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};

		if (!shut)
			pfd.events |= POLLOUT;
		if (poll(&pfd, 1, IO_TIMEOUT) <= 0)
			die("bulk: no progress for %d ms (sent %llu, received %llu of %llu)",
			    IO_TIMEOUT, (unsigned long long)sent, (unsigned long long)got,
			    (unsigned long long)total);
		if ((pfd.revents & POLLOUT) && !shut) {
			if (!out_len) {
				size_t n = total - sent < CHUNK ? (size_t)(total - sent) : CHUNK;

				stream_fill(&tx, out, n);
				out_off = 0;
				out_len = n;
			}
			ssize_t w = send(fd, out + out_off, out_len, MSG_NOSIGNAL);

			if (w > 0) {
				out_off += (size_t)w;
				out_len -= (size_t)w;
				sent += (uint64_t)w;
			} else if (w < 0 && errno != EAGAIN) {
				die("bulk: send: %s", strerror(errno));
			}
			if (sent == total && !out_len) {
				shutdown(fd, SHUT_WR);
				shut = true;
			}
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = recv(fd, in, sizeof(in), 0);

			if (r == 0)
				die("bulk: connection closed after %llu of %llu bytes",
				    (unsigned long long)got, (unsigned long long)total);
			if (r < 0 && errno != EAGAIN)
				die("bulk: recv: %s", strerror(errno));
			if (r > 0) {
				stream_fill(&rx, want, (size_t)r);
				if (memcmp(in, want, (size_t)r) != 0)
					die("bulk: echoed data differs at byte %llu",
					    (unsigned long long)got);
				got += (uint64_t)r;
			}
		}
	}
	close(fd);
	printf("ok bytes=%llu ms=%llu\n", (unsigned long long)got,
	       (unsigned long long)((now_us() - t0) / 1000));
}

struct cconn {
	int fd;
	size_t sent, got;
	bool done;
};

static void conns(const char *host, const char *port, int n, size_t bytes)
{
	static char payload[CHUNK], in[CHUNK];
	struct epoll_event ev, evs[256];
	struct cconn *cs;
	int ep, left = n, failed = 0;
	uint64_t deadline;

	if (n < 1 || n > MAX_CONNS || bytes > CHUNK)
		die("conns: N must be 1..%d and BYTES at most %d", MAX_CONNS, CHUNK);
	raise_nofile();
	memset(payload, 'x', sizeof(payload));
	cs = calloc((size_t)n, sizeof(*cs));
	ep = epoll_create1(0);
	for (int i = 0; i < n; i++) {
		cs[i].fd = connect_to(host, port, true);
		if (cs[i].fd < 0) {
			cs[i].done = true;
			failed++;
			left--;
			continue;
		}
		ev.events = EPOLLOUT | EPOLLIN;
		ev.data.ptr = &cs[i];
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
	}
	deadline = now_us() + (uint64_t)IO_TIMEOUT * 1000;
	while (left > 0 && now_us() < deadline) {
		int k = epoll_wait(ep, evs, 256, 1000);

		for (int i = 0; i < k; i++) {
			struct cconn *c = evs[i].data.ptr;

			if (c->done)
				continue;
			if ((evs[i].events & EPOLLOUT) && c->sent < bytes) {
				ssize_t w = send(c->fd, payload, bytes - c->sent, MSG_NOSIGNAL);

				if (w > 0)
					c->sent += (size_t)w;
				if (c->sent == bytes) {
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				}
			}
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
				ssize_t r = recv(c->fd, in, sizeof(in), 0);

				if (r > 0)
					c->got += (size_t)r;
				if (r == 0 || (r < 0 && errno != EAGAIN) || c->got >= bytes) {
					if (c->got != bytes)
						failed++;
					c->done = true;
					left--;
					close(c->fd);
				}
			}
		}
	}
	failed += left;
	printf("ok=%d failed=%d\n", n - failed, failed);
	if (failed)
		exit(1);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void rr(const char *host, const char *port, int count, size_t size)
{
	static char buf[CHUNK];
	uint64_t *lat = calloc((size_t)count, sizeof(*lat));
	int fd = connect_to(host, port, false);

	if (fd < 0 || size < 1 || size > CHUNK || count < 1)
		die("rr: cannot connect or bad arguments");
	memset(buf, 'r', size);
	for (int i = 0; i < count; i++) {
		uint64_t t0 = now_us();
		size_t got = 0;

		if (send(fd, buf, size, MSG_NOSIGNAL) != (ssize_t)size)
			die("rr: send: %s", strerror(errno));
		while (got < size) {
			ssize_t r = recv(fd, buf, size - got, 0);

			if (r <= 0)
				die("rr: connection lost after %d exchanges", i);
			got += (size_t)r;
		}
		lat[i] = now_us() - t0;
	}
	close(fd);
	qsort(lat, (size_t)count, sizeof(*lat), cmp_u64);
	printf("p50=%llu p90=%llu p99=%llu p999=%llu count=%d\n",
	       (unsigned long long)lat[count / 2], (unsigned long long)lat[count * 90 / 100],
	       (unsigned long long)lat[count * 99 / 100],
	       (unsigned long long)lat[count * 999 / 1000], count);
	free(lat);
}

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 10);

	if (*end == 'K' || *end == 'k')
		v <<= 10;
	else if (*end == 'M' || *end == 'm')
		v <<= 20;
	else if (*end == 'G' || *end == 'g')
		v <<= 30;
	return v;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && strcmp(argv[1], "serve") == 0)
		serve(atoi(argv[2]), argc >= 4 && strcmp(argv[3], "peer") == 0);
	else if (argc == 4 && strcmp(argv[1], "peer") == 0)
		peer(argv[2], argv[3]);
	else if (argc == 5 && strcmp(argv[1], "bulk") == 0)
		bulk(argv[2], argv[3], parse_size(argv[4]));
	else if ((argc == 5 || argc == 6) && strcmp(argv[1], "conns") == 0)
		conns(argv[2], argv[3], atoi(argv[4]), argc == 6 ? parse_size(argv[5]) : 100);
	else if (argc == 6 && strcmp(argv[1], "rr") == 0)
		rr(argv[2], argv[3], atoi(argv[4]), parse_size(argv[5]));
	else {
		fputs("usage: nettest serve PORT [echo|peer] | peer HOST PORT | bulk HOST PORT "
		      "BYTES"
		      " | conns HOST PORT N [BYTES] | rr HOST PORT COUNT SIZE\n",
		      stderr);
		return 2;
	}
	return 0;
}
