/* loadgen: the benchmark's client (open-loop request/response, connection rate, bulk, idle
 * connections) and its small keep-alive HTTP server; every run is bounded in count and time.
 *
 *   loadgen rr HOST PORT [-c CONNS] [-r RATE] [-n COUNT] [-d SECS] [-s SIZE] [-H PATH] [-o CDF]
 *       RATE > 0: open loop. Request i is due at t0 + i/RATE; it goes out on an idle
 *       connection, or waits in a FIFO for one, and its latency is counted from when it was
 *       due, not from when it was sent (coordinated-omission correction, as wrk2 does).
 *       RATE = 0: closed loop over CONNS connections, for the maximum transactions/s.
 *       -H PATH: HTTP/1.1 keep-alive GET of PATH instead of a SIZE-byte echo.
 *       -o FILE: the latency CDF (percentile and microseconds, one point a line).
 *   loadgen connect HOST PORT [-c CONCURRENCY] [-n COUNT] [-d SECS] [-s SIZE]
 *       connect, one SIZE-byte echo exchange, close; as many as possible, CONCURRENCY at once.
 *   loadgen bulk HOST PORT [-c CONNS] [-d SECS] [-s MSGSIZE]
 *       stream MSGSIZE-byte writes to an echo server and read the echo, for SECS.
 *   loadgen idle HOST PORT [-c CONNS] [-d SECS]
 *       open CONNS connections, one exchange each, print "ready", hold them SECS (or until
 *       stdin closes), close.
 *   loadgen httpd PORT [-s BODYSIZE]
 *       HTTP/1.1 keep-alive server: 200 with a BODYSIZE-byte body for every request.
 *
 * Clients print one line of key=value (times in microseconds) and exit 0 when no request
 * failed, 1 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LG_MAX_CONNS	 20000
#define LG_MAX_COUNT	 10000000 /* latency samples kept; also the hard cap on requests */
#define LG_MAX_SECS	 600
#define LG_MAX_SIZE	 65536
#define LG_BUF		 (LG_MAX_SIZE + 4096)
#define LG_DRAIN_NS	 2000000000ULL /* after the last send, wait this long for answers */
#define LG_BULK_WINDOW	 (256 * 1024)  /* bytes in flight per bulk connection */
#define LG_CDF_POINTS	 1000
#define LG_EVENTS	 256
#define LG_HTTPD_MAXHEAD 8192

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("loadgen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000ULL +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Waits until deadline_ns at most, with nanosecond resolution (epoll_wait has only ms). */
static int wait_events(int ep, struct epoll_event *evs, uint64_t deadline_ns)
{
	uint64_t now = now_ns();
	struct timespec ts = {0, 0};

	if (deadline_ns > now) {
		uint64_t d = deadline_ns - now;

		ts.tv_sec = (time_t)(d / 1000000000ULL);
		ts.tv_nsec = (long)(d % 1000000000ULL);
	}
	return epoll_pwait2(ep, evs, LG_EVENTS, &ts, NULL);
}

static struct addrinfo *resolve(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *ai;

	if (getaddrinfo(host, port, &hints, &ai))
		die("bad address %s port %s", host, port);
	return ai;
}

static int connect_nb(const struct addrinfo *ai)
{
	int one = 1, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct opts {
	int conns;
	double rate;
	long count;
	double secs;
	size_t size;
	const char *path; /* HTTP mode when set */
	const char *cdf;
};

/* ---- rr: request/response, open or closed loop ----------------------------------------------- */

struct rconn {
	int fd;
	bool busy, connected;
	uint64_t due;  /* when the outstanding request was due */
	size_t sent;   /* bytes of the outstanding request written */
	size_t got;    /* bytes of the answer read (echo), or buffered (HTTP) */
	char *buf;     /* HTTP: the answer so far */
	int idle_next; /* free list */
};

struct rr_state {
	const struct opts *o;
	struct rconn *cs;
	int idle_head;
	char req[LG_MAX_SIZE + 512];
	size_t req_len;
	uint64_t *lat;
	long nlat, errors;
};

static void rr_push_idle(struct rr_state *st, int i)
{
	st->cs[i].busy = false;
	st->cs[i].idle_next = st->idle_head;
	st->idle_head = i;
}

static int rr_pop_idle(struct rr_state *st)
{
	int i = st->idle_head;

	if (i >= 0)
		st->idle_head = st->cs[i].idle_next;
	return i;
}

/* Returns 1 when the HTTP answer in c->buf is complete (and consumes it), 0 when more is
 * needed, -1 when it is not a 200 answer with a Content-Length. */
static int http_answer_done(struct rconn *c)
{
	char *end, *cl;
	size_t head, need;

	c->buf[c->got] = 0;
	end = strstr(c->buf, "\r\n\r\n");
	if (!end)
		return c->got >= LG_MAX_SIZE ? -1 : 0;
	head = (size_t)(end - c->buf) + 4;
	if (strncmp(c->buf, "HTTP/1.1 200", 12) != 0)
		return -1;
	cl = strcasestr(c->buf, "\r\ncontent-length:");
	if (!cl || cl > end)
		return -1;
	need = head + strtoul(cl + 17, NULL, 10);
	if (need > LG_MAX_SIZE)
		return -1;
	if (c->got < need)
		return 0;
	memmove(c->buf, c->buf + need, c->got - need);
	c->got -= need;
	return 1;
}

static bool rr_send(struct rr_state *st, struct rconn *c)
{
	while (c->sent < st->req_len) {
		ssize_t w = send(c->fd, st->req + c->sent, st->req_len - c->sent, MSG_NOSIGNAL);

		if (w < 0)
			return errno == EAGAIN;
		c->sent += (size_t)w;
	}
	return true;
}

/* Reads what is there; returns 1 when the outstanding answer completed, 0 if not yet, -1 on
 * error or close. */
static int rr_recv(struct rr_state *st, struct rconn *c)
{
	for (;;) {
		ssize_t r;

		if (st->o->path) {
			r = recv(c->fd, c->buf + c->got, LG_MAX_SIZE - c->got, 0);
			if (r > 0) {
				c->got += (size_t)r;
				int d = http_answer_done(c);

				if (d)
					return d;
				continue;
			}
		} else {
			static char sink[LG_MAX_SIZE];

			r = recv(c->fd, sink, st->o->size - c->got, 0);
			if (r > 0) {
				c->got += (size_t)r;
				if (c->got == st->o->size) {
					c->got = 0;
					return 1;
				}
				continue;
			}
		}
		if (r == 0 || errno != EAGAIN)
			return -1;
		return 0;
	}
}

static void rr_start(struct rr_state *st, int ep, int i, uint64_t due)
{
	struct rconn *c = &st->cs[i];
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};

	c->busy = true;
	c->due = due;
	c->sent = 0;
	if (!rr_send(st, c)) {
		st->errors++;
		c->busy = false;
		return;
	}
	if (c->sent < st->req_len)
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void rr(const char *host, const char *port, const struct opts *o)
{
	struct rr_state st = {.o = o, .idle_head = -1};
	struct epoll_event ev, evs[LG_EVENTS];
	struct addrinfo *ai = resolve(host, port);
	uint64_t t0, end, next_due, interval = 0, c0 = cpu_us();
	long issued = 0, queued = 0, qhead = 0, inflight = 0, cap;
	uint64_t *queue;
	int ep = epoll_create1(0), connected = 0;
	bool open_loop = o->rate > 0;

	cap = o->count;
	st.lat = calloc((size_t)cap, sizeof(*st.lat));
	queue = calloc((size_t)cap, sizeof(*queue));
	st.cs = calloc((size_t)o->conns, sizeof(*st.cs));
	if (!st.lat || !queue || !st.cs)
		die("out of memory");
	if (o->path)
		st.req_len =
			(size_t)snprintf(st.req, sizeof(st.req),
					 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: loadgen\r\n"
					 "\r\n",
					 o->path, host);
	else
		memset(st.req, 'q', st.req_len = o->size);
	for (int i = 0; i < o->conns; i++) {
		struct rconn *c = &st.cs[i];

		c->fd = connect_nb(ai);
		if (c->fd < 0)
			die("connect %s:%s: %s", host, port, strerror(-c->fd));
		if (o->path && !(c->buf = malloc(LG_MAX_SIZE + 1)))
			die("out of memory");
		ev.events = EPOLLOUT;
		ev.data.u32 = (uint32_t)i;
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	}
	/* All connections up before the clock starts, so setup is not in the latencies. */
	end = now_ns() + 5000000000ULL;
	while (connected < o->conns && now_ns() < end) {
		int n = wait_events(ep, evs, end);

		for (int k = 0; k < n; k++) {
			struct rconn *c = &st.cs[evs[k].data.u32];
			int err = 0;
			socklen_t len = sizeof(err);

			if (c->connected)
				continue;
			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
			if (err)
				die("connect %s:%s: %s", host, port, strerror(err));
			c->connected = true;
			connected++;
			ev.events = EPOLLIN;
			ev.data.u32 = evs[k].data.u32;
			epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			rr_push_idle(&st, (int)evs[k].data.u32);
		}
	}
	if (connected < o->conns)
		die("only %d of %d connections came up in 5 s", connected, o->conns);
	freeaddrinfo(ai);

	t0 = now_ns();
	end = t0 + (uint64_t)(o->secs * 1e9);
	if (open_loop)
		interval = (uint64_t)(1e9 / o->rate);
	next_due = t0;
	for (;;) {
		uint64_t now = now_ns(), wake;
		bool sending = issued < cap && now < end;
		int n;

		/* Issue what is due: on an idle connection, or into the FIFO. */
		while (sending && (open_loop ? next_due <= now : st.idle_head >= 0)) {
			uint64_t due = open_loop ? next_due : now;
			int i = rr_pop_idle(&st);

			if (i >= 0) {
				rr_start(&st, ep, i, due);
				inflight++;
			} else {
				queue[queued++] = due;
			}
			issued++;
			next_due += interval;
			sending = issued < cap && now < end;
		}
		if (!sending && inflight == 0 && qhead == queued)
			break;
		if (now > end + LG_DRAIN_NS)
			break;
		wake = sending && open_loop ? next_due : end + LG_DRAIN_NS;
		if (!sending && wake > now + 100000000ULL)
			wake = now + 100000000ULL;
		n = wait_events(ep, evs, wake);
		now = now_ns();
		for (int k = 0; k < n; k++) {
			int i = (int)evs[k].data.u32;
			struct rconn *c = &st.cs[i];
			int d;

			if (!c->busy)
				continue;
			if ((evs[k].events & EPOLLOUT) && c->sent < st.req_len) {
				if (!rr_send(&st, c))
					die("send: %s", strerror(errno));
				if (c->sent == st.req_len) {
					ev.events = EPOLLIN;
					ev.data.u32 = (uint32_t)i;
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				}
			}
			if (!(evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				continue;
			d = rr_recv(&st, c);
			if (d < 0)
				die("connection %d lost after %ld answers", i, st.nlat);
			if (d == 0)
				continue;
			inflight--;
			st.lat[st.nlat++] = now - c->due;
			if (qhead < queued) {
				rr_start(&st, ep, i, queue[qhead++]);
				inflight++;
			} else {
				rr_push_idle(&st, i);
			}
		}
	}
	{
		uint64_t elapsed = now_ns() - t0, cpu = cpu_us() - c0;
		double secs = (double)(end < t0 + elapsed ? end - t0 : elapsed) / 1e9;
		long lost = inflight + (queued - qhead);
		uint64_t *l = st.lat;
		long m = st.nlat;

		qsort(l, (size_t)m, sizeof(*l), cmp_u64);
#define PCT(p) (m ? (double)l[(long)((double)(m - 1) * (p))] / 1000.0 : 0.0)
		printf("mode=rr conns=%d rate=%.0f done=%ld lost=%ld errors=%ld secs=%.3f tps=%.1f "
		       "p50=%.1f p90=%.1f p99=%.1f p999=%.1f max=%.1f client_cpu_us=%llu\n",
		       o->conns, o->rate, m, lost, st.errors, secs, (double)m / secs, PCT(0.5),
		       PCT(0.9), PCT(0.99), PCT(0.999), PCT(1.0), (unsigned long long)cpu);
		if (o->cdf && m) {
			FILE *f = fopen(o->cdf, "w");

			if (!f)
				die("%s: %s", o->cdf, strerror(errno));
			for (int k = 0; k <= LG_CDF_POINTS; k++)
				fprintf(f, "%.4f %.1f\n", (double)k / LG_CDF_POINTS,
					PCT((double)k / LG_CDF_POINTS));
			fclose(f);
		}
#undef PCT
		exit(lost || st.errors ? 1 : 0);
	}
}

/* ---- connect: connection setup rate ---------------------------------------------------------- */

struct cconn {
	int fd;
	size_t sent, got;
};

static void conn_open(struct cconn *c, int ep, int i, const struct addrinfo *ai)
{
	struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};

	c->sent = c->got = 0;
	c->fd = connect_nb(ai);
	if (c->fd < 0)
		die("connect: %s", strerror(-c->fd));
	epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void conn_rate(const char *host, const char *port, const struct opts *o)
{
	static char payload[LG_MAX_SIZE], in[LG_MAX_SIZE];
	struct epoll_event ev, evs[LG_EVENTS];
	struct addrinfo *ai = resolve(host, port);
	struct cconn *cs = calloc((size_t)o->conns, sizeof(*cs));
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(o->secs * 1e9), c0 = cpu_us();
	long started = 0, done = 0, errors = 0;
	int ep = epoll_create1(0), open = 0;

	if (!cs)
		die("out of memory");
	memset(payload, 'c', o->size);
	for (int i = 0; i < o->conns && started < o->count; i++, started++, open++)
		conn_open(&cs[i], ep, i, ai);
	while (open > 0 && now_ns() < end + LG_DRAIN_NS) {
		int n = wait_events(ep, evs, now_ns() + 100000000ULL);

		for (int k = 0; k < n; k++) {
			int i = (int)evs[k].data.u32;
			struct cconn *c = &cs[i];
			bool finished = false;

			if (c->fd < 0)
				continue;
			if (evs[k].events & EPOLLERR) {
				errors++;
				finished = true;
			} else if ((evs[k].events & EPOLLOUT) && c->sent < o->size) {
				ssize_t w = send(c->fd, payload, o->size - c->sent, MSG_NOSIGNAL);

				if (w > 0)
					c->sent += (size_t)w;
				if (c->sent == o->size) {
					ev.events = EPOLLIN;
					ev.data.u32 = (uint32_t)i;
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				}
			} else if (evs[k].events & (EPOLLIN | EPOLLHUP)) {
				ssize_t r = recv(c->fd, in, sizeof(in), 0);

				if (r > 0)
					c->got += (size_t)r;
				if (c->got >= o->size) {
					done++;
					finished = true;
				} else if (r == 0 || (r < 0 && errno != EAGAIN)) {
					errors++;
					finished = true;
				}
			}
			if (!finished)
				continue;
			close(c->fd);
			c->fd = -1;
			open--;
			if (started < o->count && now_ns() < end) {
				conn_open(c, ep, i, ai);
				started++;
				open++;
			}
		}
	}
	{
		double secs = (double)(now_ns() - t0) / 1e9;

		printf("mode=connect concurrency=%d done=%ld errors=%ld unfinished=%d secs=%.3f "
		       "cps=%.1f client_cpu_us=%llu\n",
		       o->conns, done, errors, open, secs, (double)done / secs,
		       (unsigned long long)(cpu_us() - c0));
	}
	freeaddrinfo(ai);
	exit(errors || open ? 1 : 0);
}

/* ---- bulk: streaming throughput -------------------------------------------------------------- */

static void bulk(const char *host, const char *port, const struct opts *o)
{
	static char out[LG_MAX_SIZE], in[LG_BULK_WINDOW];
	struct epoll_event ev, evs[LG_EVENTS];
	struct addrinfo *ai = resolve(host, port);
	int ep = epoll_create1(0), n = o->conns;
	uint64_t *sent = calloc((size_t)n, sizeof(*sent)), *got = calloc((size_t)n, sizeof(*got));
	int *fds = calloc((size_t)n, sizeof(*fds));
	uint64_t t0, end, total = 0, c0 = cpu_us();
	size_t *partial = calloc((size_t)n, sizeof(*partial));

	if (!sent || !got || !fds || !partial)
		die("out of memory");
	memset(out, 'b', o->size);
	for (int i = 0; i < n; i++) {
		fds[i] = connect_nb(ai);
		if (fds[i] < 0)
			die("connect %s:%s: %s", host, port, strerror(-fds[i]));
		ev.events = EPOLLIN | EPOLLOUT;
		ev.data.u32 = (uint32_t)i;
		epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
	}
	freeaddrinfo(ai);
	t0 = now_ns();
	end = t0 + (uint64_t)(o->secs * 1e9);
	while (now_ns() < end) {
		int k = wait_events(ep, evs, end);

		for (int e = 0; e < k; e++) {
			int i = (int)evs[e].data.u32;

			if (evs[e].events & EPOLLERR)
				die("bulk: connection %d failed", i);
			/* Whole messages: a short write finishes before the next message. */
			while ((evs[e].events & EPOLLOUT) && sent[i] - got[i] < LG_BULK_WINDOW) {
				ssize_t w = send(fds[i], out + partial[i], o->size - partial[i],
						 MSG_NOSIGNAL | MSG_DONTWAIT);

				if (w <= 0) {
					if (w < 0 && errno != EAGAIN)
						die("bulk: send: %s", strerror(errno));
					break;
				}
				sent[i] += (uint64_t)w;
				partial[i] = (partial[i] + (size_t)w) % o->size;
			}
			for (;;) {
				ssize_t r = recv(fds[i], in, sizeof(in), MSG_DONTWAIT);

				if (r == 0)
					die("bulk: connection %d closed by the peer", i);
				if (r < 0) {
					if (errno != EAGAIN)
						die("bulk: recv: %s", strerror(errno));
					break;
				}
				got[i] += (uint64_t)r;
				total += (uint64_t)r;
			}
			ev.events = EPOLLIN | (sent[i] - got[i] < LG_BULK_WINDOW ? EPOLLOUT : 0);
			ev.data.u32 = (uint32_t)i;
			epoll_ctl(ep, EPOLL_CTL_MOD, fds[i], &ev);
		}
	}
	/* Measured; now end politely (FIN, drain the echo) so the server never writes into a
	 * reset connection. */
	{
		double secs = (double)(now_ns() - t0) / 1e9;
		uint64_t drain_end = now_ns() + LG_DRAIN_NS;

		for (int i = 0; i < n; i++) {
			struct timeval tv = {0, 200000};

			fcntl(fds[i], F_SETFL, 0);
			shutdown(fds[i], SHUT_WR);
			setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			while (now_ns() < drain_end && recv(fds[i], in, sizeof(in), 0) > 0)
				;
			close(fds[i]);
		}
		printf("mode=bulk conns=%d msg=%zu bytes=%llu secs=%.3f mbps=%.1f "
		       "client_cpu_us=%llu\n",
		       n, o->size, (unsigned long long)total, secs, (double)total * 8 / secs / 1e6,
		       (unsigned long long)(cpu_us() - c0));
	}
	exit(total ? 0 : 1);
}

/* ---- idle: hold connections open ------------------------------------------------------------- */

static void idle(const char *host, const char *port, const struct opts *o)
{
	struct addrinfo *ai = resolve(host, port);
	int *fds = calloc((size_t)o->conns, sizeof(*fds));
	uint64_t end;
	char b = 'i';
	int opened = o->conns;

	if (!fds)
		die("out of memory");
	raise_nofile();
	/* Blocking connects one after the other: slow but simple, and each is known to be up. */
	for (int i = 0; i < o->conns; i++) {
		struct timeval tv = {1, 0};
		int one = 1;

		errno = 0;
		fds[i] = socket(ai->ai_family, SOCK_STREAM, 0);
		if (fds[i] < 0)
			die("socket: %s", strerror(errno));
		setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fds[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fds[i], ai->ai_addr, ai->ai_addrlen) ||
		    send(fds[i], &b, 1, MSG_NOSIGNAL) != 1 || recv(fds[i], &b, 1, 0) != 1) {
			/* Hold what is open and say where it stopped: that is a finding too. */
			fprintf(stderr, "loadgen: idle: connection %d of %d failed: %s\n", i + 1,
				o->conns, errno ? strerror(errno) : "closed by the peer");
			close(fds[i]);
			opened = i;
			break;
		}
	}
	freeaddrinfo(ai);
	printf("ready conns=%d wanted=%d\n", opened, o->conns);
	fflush(stdout);
	end = now_ns() + (uint64_t)(o->secs * 1e9);
	while (now_ns() < end) {
		struct timespec ts = {0, 50000000};
		char c;
		ssize_t r = read(0, &c, 1);

		if (r == 0)
			break;
		nanosleep(&ts, NULL);
	}
	exit(opened == o->conns ? 0 : 1);
}

/* ---- httpd: the HTTP backend ----------------------------------------------------------------- */

struct hconn {
	int fd;
	size_t len;
	char buf[LG_HTTPD_MAXHEAD];
};

static void httpd(int port, size_t body)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
	struct epoll_event ev, evs[LG_EVENTS];
	static char resp[LG_MAX_SIZE + 256];
	int lfd, ep, zero = 0, one = 1, rlen;

	rlen = snprintf(resp, 256,
			"HTTP/1.1 200 OK\r\nServer: loadgen\r\nContent-Type: text/plain\r\n"
			"Content-Length: %zu\r\n\r\n",
			body);
	memset(resp + rlen, 'h', body);
	rlen += (int)body;
	signal(SIGPIPE, SIG_IGN);
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
		int n = epoll_wait(ep, evs, LG_EVENTS, -1);

		for (int i = 0; i < n; i++) {
			struct hconn *c = evs[i].data.ptr;
			bool bad = false;
			char *end;

			if (!c) {
				int fd;

				while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					c = calloc(1, sizeof(*c));
					if (!c)
						die("out of memory");
					c->fd = fd;
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			for (;;) {
				ssize_t r =
					read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);

				if (r <= 0) {
					bad = r == 0 || errno != EAGAIN;
					break;
				}
				c->len += (size_t)r;
				c->buf[c->len] = 0;
				/* Bodiless requests only (GET): each head gets one answer. */
				while ((end = strstr(c->buf, "\r\n\r\n"))) {
					size_t used = (size_t)(end - c->buf) + 4;

					if (write(c->fd, resp, (size_t)rlen) != rlen)
						bad = true;
					memmove(c->buf, c->buf + used, c->len - used + 1);
					c->len -= used;
				}
				if (c->len == sizeof(c->buf) - 1)
					bad = true;
				if (bad)
					break;
			}
			if (bad) {
				close(c->fd);
				free(c);
			}
		}
	}
}

/* ---- flags ----------------------------------------------------------------------------------- */

static void usage(void)
{
	fputs("usage: loadgen rr|connect|bulk|idle HOST PORT [-c CONNS] [-r RATE] [-n COUNT] "
	      "[-d SECS] [-s SIZE] [-H PATH] [-o CDFFILE]\n"
	      "       loadgen httpd PORT [-s BODYSIZE]\n",
	      stderr);
	exit(2);
}

static double num_arg(const char *flag, const char *s, double min, double max)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || v < min || v > max) {
		fprintf(stderr, "loadgen: %s: \"%s\" is not a number in %g..%g\n", flag, s, min,
			max);
		usage();
	}
	return v;
}

int main(int argc, char **argv)
{
	struct opts o = {.conns = 1, .count = LG_MAX_COUNT, .secs = 1, .size = 64};
	const char *mode;
	int c, nargs;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3)
		usage();
	mode = argv[1];
	nargs = strcmp(mode, "httpd") == 0 ? 1 : 2;
	if (argc < 2 + nargs)
		usage();
	optind = 2 + nargs;
	while ((c = getopt(argc, argv, "c:r:n:d:s:H:o:")) != -1) {
		switch (c) {
		case 'c':
			o.conns = (int)num_arg("-c", optarg, 1, LG_MAX_CONNS);
			break;
		case 'r':
			o.rate = num_arg("-r", optarg, 0, 1e7);
			break;
		case 'n':
			o.count = (long)num_arg("-n", optarg, 1, LG_MAX_COUNT);
			break;
		case 'd':
			o.secs = num_arg("-d", optarg, 0.01, LG_MAX_SECS);
			break;
		case 's':
			o.size = (size_t)num_arg("-s", optarg, 1, LG_MAX_SIZE);
			break;
		case 'H':
			o.path = optarg;
			break;
		case 'o':
			o.cdf = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	if (strcmp(mode, "rr") == 0)
		rr(argv[2], argv[3], &o);
	else if (strcmp(mode, "connect") == 0)
		conn_rate(argv[2], argv[3], &o);
	else if (strcmp(mode, "bulk") == 0)
		bulk(argv[2], argv[3], &o);
	else if (strcmp(mode, "idle") == 0)
		idle(argv[2], argv[3], &o);
	else if (strcmp(mode, "httpd") == 0)
		httpd(atoi(argv[2]), o.size);
	usage();
}
