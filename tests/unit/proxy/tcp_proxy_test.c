/* Tests proxy/tcp_proxy.c and proxy/worker.c through real sockets on loopback: snapshot-driven
 * routing (round robin, weighted clusters), failures (NR, NC, UH, UF), idle timeout, half-close,
 * and a config swap that new connections follow while an open one stays where it was.
 *
 * Connections enter through an inbound-kind listener on 127.0.0.1, whose original destination
 * is simply its local address, so no BPF or iptables capture is needed. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/addr.h"
#include "lib/log.h"
#include "proxy/config.h"
#include "proxy/proxy.h"
#include "tests/lib/loopback.h"
#include "tests/lib/tap.h"

#define NBACKENDS 3

struct backend {
	struct lo_echo echo; /* greets with the backend's id ('A', 'B', ...) */
	__u16 port;
	pthread_t thread;
};

static struct backend backends[NBACKENDS];
static volatile int stopping;

/* Connects through the proxy and returns the backend's greeting, '-' on EOF, 'X' on a reset. */
static char greeting(__u16 port, int *fdp)
{
	char c = 0;
	int fd = lo_dial(port);
	ssize_t r = fd >= 0 ? read(fd, &c, 1) : -1;

	if (fdp)
		*fdp = fd;
	else if (fd >= 0)
		close(fd);
	return r == 1 ? c : r == 0 ? '-' : 'X';
}

/* ---- snapshots ------------------------------------------------------------------------------- */

static struct px_cluster *add_cluster(struct px_snapshot *s, const char *name, enum px_lb_policy lb,
				      int first, int count)
{
	struct px_cluster *c = &s->clusters[s->nclusters++];

	c->name = name;
	c->type = PX_CLUSTER_STATIC;
	c->lb = lb;
	c->connect_timeout_ms = 1000;
	c->nendpoints = (uint32_t)count;
	c->endpoints = arena_new(&s->arena, struct px_endpoint, count ? count : 1);
	for (int i = 0; i < count; i++) {
		addr_parse(&c->endpoints[i].addr, "127.0.0.1");
		c->endpoints[i].port = backends[first + i].port;
		c->endpoints[i].healthy = true;
	}
	return c;
}

/* virtualInbound with one chain per port of `ports`, each to the matching entry of
 * `clusters` (NULL: weighted[] instead). */
static struct px_snapshot *snapshot(int nchains, const __u16 *ports, const char **clusters,
				    struct px_weighted_cluster *weighted, int nweighted,
				    uint32_t idle_ms)
{
	struct px_snapshot *s = px_snapshot_new();
	struct px_listener *l;

	s->clusters = arena_new(&s->arena, struct px_cluster, 8);
	s->listeners = arena_new(&s->arena, struct px_listener, 1);
	s->nlisteners = 1;
	l = &s->listeners[0];
	l->name = PX_LISTENER_VIRTUAL_INBOUND;
	l->use_original_dst = true;
	l->chains = arena_new(&s->arena, struct px_filter_chain, nchains);
	l->nchains = (uint32_t)nchains;
	for (int i = 0; i < nchains; i++) {
		l->chains[i].name = "chain";
		l->chains[i].match.dst_port = ports[i];
		l->chains[i].kind = PX_NF_TCP_PROXY;
		l->chains[i].tcp.cluster = clusters ? clusters[i] : NULL;
		l->chains[i].tcp.idle_timeout_ms = idle_ms;
		if (!clusters) {
			l->chains[i].tcp.weighted = weighted;
			l->chains[i].tcp.nweighted = (uint32_t)nweighted;
		}
	}
	return s;
}

static int publish(struct proxy *p, struct px_snapshot *s)
{
	const char *err;
	int rc = px_snapshot_finalize(s, &err);

	if (rc) {
		tap_diag("finalize: %s", err);
		px_snapshot_put(s);
		return rc;
	}
	proxy_config_set(p, s);
	usleep(30 * 1000); /* workers pick the generation up at their next loop iteration */
	return 0;
}

static struct proxy_stats stats(struct proxy *p)
{
	struct proxy_stats st;

	proxy_stats_get(p, &st);
	return st;
}

int main(void)
{
	struct proxy_config cfg = {.workers = 2,
				   .mark = 0,
				   .orig_dst_map_fd = -1,
				   .sock_pairs_fd = -1,
				   .msg_fallback_fd = -1,
				   .access_log_fd = -1};
	__u16 ports[4];
	int lfds[4];
	struct proxy *p;
	struct proxy_workload *w;
	struct proxy_workload_desc d = {.name = "test", .listen_fds = {-1, -1, -1, -1}};
	char got[64];

	if (geteuid())
		skip_all("needs root (the proxy enters the workload's netns with setns)");
	log_threshold = L_ERROR;
	for (int i = 0; i < NBACKENDS; i++) {
		backends[i].echo = (struct lo_echo){.lfd = lo_listen(&backends[i].port),
						    .greeting = (char)('A' + i),
						    .stopping = &stopping};
		pthread_create(&backends[i].thread, NULL, lo_echo_main, &backends[i].echo);
	}
	/* Four proxy listeners: 0 for routing, 1 weighted, 2 for failures, 3 unrouted. */
	for (int i = 0; i < 4; i++) {
		lfds[i] = lo_listen(&ports[i]);
		fcntl(lfds[i], F_SETFL, O_NONBLOCK);
		d.listen_fds[i] = lfds[i];
		d.kinds[i] = PROXY_LISTENER_INBOUND;
	}
	d.netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	p = proxy_start(&cfg);
	w = p ? proxy_workload_add(p, &d) : NULL;
	ok(p && w, "proxy starts with 2 workers and takes the listeners");

	/* Round robin over A and B. */
	struct px_snapshot *s = snapshot(1, ports, (const char *[]){"ab"}, NULL, 0, 0);

	add_cluster(s, "ab", PX_LB_ROUND_ROBIN, 0, 2);
	ok(publish(p, s) == 0, "a snapshot with one STATIC cluster is published");
	int na = 0, nb = 0;

	for (int i = 0; i < 20; i++) {
		char c = greeting(ports[0], NULL);

		na += c == 'A';
		nb += c == 'B';
	}
	/* Two workers each keep their own round-robin position. */
	ok(na + nb == 20 && na >= 8 && nb >= 8, "round robin spreads over A and B (%d/%d)", na, nb);

	/* Weighted clusters 1:3 between A-only and C-only. */
	static struct px_weighted_cluster wc[] = {{"a", 1}, {"c", 3}};

	s = snapshot(1, &ports[1], NULL, wc, 2, 0);
	add_cluster(s, "a", PX_LB_ROUND_ROBIN, 0, 1);
	add_cluster(s, "c", PX_LB_ROUND_ROBIN, 2, 1);
	publish(p, s);
	na = 0;
	int nc = 0;

	for (int i = 0; i < 400; i++) {
		char c = greeting(ports[1], NULL);

		na += c == 'A';
		nc += c == 'C';
	}
	ok(na + nc == 400 && na > 60 && na < 140,
	   "weighted clusters 1:3 give about 100:300 (%d:%d)", na, nc);

	/* Failures: no chain, unknown cluster, no endpoints, refused connect. */
	struct proxy_stats before = stats(p);

	s = snapshot(1, &ports[0], (const char *[]){"empty"}, NULL, 0, 0);
	add_cluster(s, "empty", PX_LB_ROUND_ROBIN, 0, 0);
	publish(p, s);
	is_int(greeting(ports[3], NULL), 'X', "a port no filter chain matches is reset");
	is_int(stats(p).cx_no_route, before.cx_no_route + 1, "and counted as NR");
	is_int(greeting(ports[0], NULL), 'X', "a cluster without endpoints resets the connection");
	is_int(stats(p).cx_no_healthy_upstream, before.cx_no_healthy_upstream + 1,
	       "and counts it as UH");

	s = snapshot(1, &ports[2], (const char *[]){"dead"}, NULL, 0, 0);
	struct px_cluster *dead = add_cluster(s, "dead", PX_LB_ROUND_ROBIN, 0, 1);
	__u16 dead_port = 0;
	int tmp = lo_listen(&dead_port);

	close(tmp); /* nothing listens there now */
	dead->endpoints[0].port = dead_port;
	publish(p, s);
	is_int(greeting(ports[2], NULL), 'X', "an upstream that refuses resets the downstream");
	is_int(stats(p).upstream_cx_connect_fail, before.upstream_cx_connect_fail + 1,
	       "and counts a connect failure (UF)");

	/* A config change under an open connection. */
	int open_fd, n;

	s = snapshot(1, ports, (const char *[]){"a"}, NULL, 0, 0);
	add_cluster(s, "a", PX_LB_ROUND_ROBIN, 0, 1);
	publish(p, s);
	is_int(greeting(ports[0], &open_fd), 'A', "an open connection to A");
	s = snapshot(1, ports, (const char *[]){"b"}, NULL, 0, 0);
	add_cluster(s, "b", PX_LB_ROUND_ROBIN, 1, 1);
	publish(p, s);
	is_int(greeting(ports[0], NULL), 'B', "after the change, new connections go to B");
	n = (int)write(open_fd, "still-here", 10);
	ok(n == 10 && read(open_fd, got, sizeof(got)) == 10 && !memcmp(got, "still-here", 10),
	   "the open connection still talks to A on its old snapshot");
	/* Half-close: our FIN reaches A, A's echo and FIN come back. */
	shutdown(open_fd, SHUT_WR);
	is_int(read(open_fd, got, sizeof(got)), 0, "a half-close is carried through both ways");
	close(open_fd);

	/* Idle timeout from the filter chain. */
	s = snapshot(1, ports, (const char *[]){"a"}, NULL, 0, 300);
	add_cluster(s, "a", PX_LB_ROUND_ROBIN, 0, 1);
	publish(p, s);
	before = stats(p);
	is_int(greeting(ports[0], &open_fd), 'A', "a connection with a 300 ms idle timeout");
	struct pollfd pf = {.fd = open_fd, .events = POLLIN};

	ok(poll(&pf, 1, 3000) == 1 && read(open_fd, got, 1) == 0,
	   "is closed by the proxy once idle (within the 1 s sweep)");
	is_int(stats(p).cx_idle_timeout, before.cx_idle_timeout + 1, "and counted");
	close(open_fd);

	for (int i = 0; i < 50 && stats(p).downstream_cx_active; i++)
		usleep(20 * 1000);
	is_int(stats(p).downstream_cx_active, 0, "no connection is left open");
	proxy_workload_remove(p, w);
	proxy_stop(p, 1000);
	stopping = 1;
	for (int i = 0; i < NBACKENDS; i++) {
		pthread_join(backends[i].thread, NULL);
		close(backends[i].echo.lfd);
	}
	close(d.netns_fd);
	return done_testing();
}
