/* grpc_probe: drives agent/grpc.c from the command line for tests.
 *
 *   grpc_probe [--max BYTES] [--keepalive MS] [--ping-timeout MS] HOST PORT PATH MESSAGE...
 *
 * Sends each MESSAGE, half-closes, and prints every answer ("msg LEN FIRST-BYTES") and the
 * final "status CODE MESSAGE". Gives up after 20 s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "agent/grpc.h"

static int done;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int on_message(void *ctx, const uint8_t *msg, size_t len)
{
	printf("msg %zu %.*s\n", len, (int)(len < 40 ? len : 40), (const char *)msg);
	return 0;
}

static void on_close(void *ctx, int status, const char *message)
{
	printf("status %d %s\n", status, message);
	done = 1;
}

int main(int argc, char **argv)
{
	struct grpc_client_opts o = {0};
	struct grpc_callbacks cb = {.on_message = on_message, .on_close = on_close};
	struct grpc_client *c;
	int i = 1, ep, rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (; i < argc && argv[i][0] == '-'; i += 2) {
		if (i + 1 >= argc)
			return 2;
		if (!strcmp(argv[i], "--max"))
			o.max_message = (uint32_t)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--keepalive"))
			o.keepalive_ms = (uint32_t)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--ping-timeout"))
			o.ping_timeout_ms = (uint32_t)atoi(argv[i + 1]);
		else
			return 2;
	}
	if (argc - i < 3) {
		fprintf(stderr,
			"usage: grpc_probe [--max N] [--keepalive MS] HOST PORT PATH MSG...\n");
		return 2;
	}
	o.host = argv[i];
	o.port = (uint16_t)atoi(argv[i + 1]);
	o.path = argv[i + 2];
	rc = grpc_client_start(&c, &o, &cb, NULL);
	if (rc) {
		printf("start %d\n", rc);
		return 1;
	}
	for (int k = i + 3; k < argc; k++)
		grpc_client_send(c, (const uint8_t *)argv[k], strlen(argv[k]));
	grpc_client_finish(c);
	ep = epoll_create1(0);
	struct epoll_event ev = {.events = grpc_client_want(c)};

	epoll_ctl(ep, EPOLL_CTL_ADD, grpc_client_fd(c), &ev);
	uint64_t deadline = now_ms() + 20000;

	while (!done && now_ms() < deadline) {
		int timeout = grpc_client_tick(c, now_ms());

		if (done)
			break;
		ev.events = grpc_client_want(c);
		epoll_ctl(ep, EPOLL_CTL_MOD, grpc_client_fd(c), &ev);
		if (epoll_wait(ep, &ev, 1, timeout > 100 ? 100 : timeout) == 1)
			grpc_client_io(c, ev.events);
	}
	if (!done)
		printf("timeout\n");
	grpc_client_free(c);
	return done ? 0 : 1;
}
