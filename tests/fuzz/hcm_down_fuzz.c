/* Fuzzes the proxy's downstream HTTP/1.1 and HTTP/2 input end to end: each input is sent on a
 * fresh connection to a running proxy (one worker, in this process) whose listener runs the HTTP
 * connection manager with codec AUTO, so the bytes go through protocol detection, the HTTP/1
 * parser and codec or nghttp2 and the HTTP/2 codec, routing and local replies. Routes answer by
 * themselves (direct responses, redirects, 404 NR, 503 UH), so no upstream is involved and a
 * run depends on its input only. A crash or sanitizer report in the worker thread fails the run.
 *
 * Input: the first byte picks a framing, the rest is sent as is, then the write side is shut.
 *   0: raw bytes;  1: the HTTP/2 connection preface and an empty SETTINGS frame, then the bytes
 *   (so that the fuzzer spends its time on frames rather than on finding the preface). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/addr.h"
#include "lib/log.h"
#include "proxy/config.h"
#include "proxy/h2.h"
#include "proxy/proxy.h"

#define FUZZ_READ_MS 50 /* how long to wait for the proxy's answer to one input */

static __u16 port;
/* Alive for the whole run (and reachable, so LeakSanitizer does not call them leaks). */
static struct proxy *proxy;
static struct proxy_workload *workload;

static const char *dom_any[] = {"*"};
static struct px_route routes[] = {
	{.name = "redirect",
	 .match = {.kind = PX_PATH_EXACT, .path = "/old"},
	 .kind = PX_ROUTE_REDIRECT,
	 .redirect = {.path = "/new", .response_code = 301}},
	{.name = "empty",
	 .match = {.kind = PX_PATH_PREFIX, .path = "/empty"},
	 .action = {.cluster = "empty", .grpc_timeout = true}},
	{.name = "direct",
	 .match = {.kind = PX_PATH_PREFIX, .path = "/"},
	 .kind = PX_ROUTE_DIRECT,
	 .direct = {.status = 200, .body = "fuzz"}},
};
static struct px_vhost vhosts[] = {
	{.name = "api", .domains = dom_any, .ndomains = 1, .routes = routes, .nroutes = 3}};
static struct px_route_config rc = {.name = "fuzz", .vhosts = vhosts, .nvhosts = 1};
/* Upgrades and (extended) CONNECT are allowed, so they reach the upgrade paths of both codecs
 * (routes answer them locally: no tunnel opens without an upstream). */
static struct px_upgrade upgrades[] = {{.type = "websocket", .enabled = true},
				       {.type = "CONNECT", .enabled = true}};

static struct px_snapshot *build(void)
{
	struct px_snapshot *s = px_snapshot_new();
	struct px_listener *l;
	const char *err;

	s->clusters = arena_new(&s->arena, struct px_cluster, 1);
	s->nclusters = 1;
	s->clusters[0].name = "empty";
	s->clusters[0].type = PX_CLUSTER_STATIC;
	s->listeners = arena_new(&s->arena, struct px_listener, 1);
	s->nlisteners = 1;
	l = &s->listeners[0];
	l->name = PX_LISTENER_VIRTUAL_INBOUND;
	l->use_original_dst = true;
	l->nchains = 1;
	l->chains = arena_new(&s->arena, struct px_filter_chain, 1);
	l->chains[0].name = "http";
	l->chains[0].kind = PX_NF_HTTP;
	l->chains[0].http.codec = PX_CODEC_AUTO;
	l->chains[0].http.inline_routes = &rc;
	l->chains[0].http.max_request_headers_kb = 8;
	l->chains[0].http.max_headers_count = 32;
	l->chains[0].http.server_name = "fuzz";
	l->chains[0].http.upgrades = upgrades;
	l->chains[0].http.nupgrades = 2;
	l->chains[0].http.h2_allow_connect = true;
	if (px_snapshot_finalize(s, &err)) {
		fprintf(stderr, "hcm_down_fuzz: finalize: %s\n", err);
		exit(1);
	}
	return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t len = sizeof(sin);
	struct proxy_config cfg = {.workers = 1,
				   .orig_dst_map_fd = -1,
				   .sock_pairs_fd = -1,
				   .msg_fallback_fd = -1,
				   .access_log_fd = -1};
	struct proxy_workload_desc d = {.name = "fuzz", .listen_fds = {-1, -1, -1, -1}};
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	(void)argc;
	(void)argv;
	log_threshold = L_ERROR;
	signal(SIGPIPE, SIG_IGN);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) || listen(lfd, 128) ||
	    getsockname(lfd, (struct sockaddr *)&sin, &len)) {
		perror("hcm_down_fuzz: listen");
		exit(1);
	}
	port = ntohs(sin.sin_port);
	d.listen_fds[0] = lfd;
	d.kinds[0] = PROXY_LISTENER_INBOUND;
	d.netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	proxy = proxy_start(&cfg);
	workload = proxy ? proxy_workload_add(proxy, &d) : NULL;
	if (!workload) {
		fprintf(stderr, "hcm_down_fuzz: the proxy does not start (needs root)\n");
		exit(1);
	}
	proxy_config_set(proxy, build());
	return 0;
}

static void send_all(int fd, const void *buf, size_t len)
{
	const char *b = buf;

	while (len) {
		ssize_t n = send(fd, b, len, MSG_NOSIGNAL);

		if (n <= 0)
			return; /* the proxy closed on bad input: fine */
		b += n;
		len -= (size_t)n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(0x7f000001)};
	struct timeval tv = {.tv_sec = 1};
	int fd;
	char buf[4096];

	if (size < 1)
		return 0;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		close(fd);
		return 0;
	}
	if (data[0] & 1) {
		send_all(fd, H2_PREFACE, H2_PREFACE_LEN);
		send_all(fd, settings, sizeof(settings));
	}
	send_all(fd, data + 1, size - 1);
	shutdown(fd, SHUT_WR);
	/* Read what comes back until the proxy closes or goes quiet; the answer is not judged,
	 * only that the proxy survives producing it. */
	for (;;) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};

		if (poll(&pf, 1, FUZZ_READ_MS) <= 0 || recv(fd, buf, sizeof(buf), 0) <= 0)
			break;
	}
	close(fd);
	return 0;
}
