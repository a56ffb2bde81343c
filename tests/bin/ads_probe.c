/* ads_probe: runs agent/ads.c on its own epoll loop from a bootstrap, for tests.
 *
 *   ads_probe [--sotw|--delta] [--host H --port P] [--max BYTES] [--backoff MS]
 *             [--reject NAME] [--for MS] BOOTSTRAP
 *
 * Prints one line per event: "apply SEQ cds=NAME@VER,... eds=... lds=... rds=... sds=..." (the
 * dynamic resources of each accepted config), "ready", "nack TYPE REASON", "log LINE", and at
 * exit "stats ...". --reject makes apply refuse any config holding a resource named NAME.
 * Exits on SIGTERM/SIGINT or after --for MS. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "agent/ads.h"
#include "agent/bootstrap.h"

static volatile sig_atomic_t stop;
static const char *reject_name;
static unsigned seq;

static const char *const short_name[XDS_NTYPES] = {
	[XDS_LISTENER] = "lds", [XDS_ROUTE] = "rds",  [XDS_CLUSTER] = "cds",
	[XDS_ENDPOINT] = "eds", [XDS_SECRET] = "sds",
};
static const enum xds_type print_order[XDS_NTYPES] = {XDS_CLUSTER, XDS_ENDPOINT, XDS_LISTENER,
						      XDS_ROUTE, XDS_SECRET};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Large configs print counts instead of names. */
static void print_config(const char *what, const struct xds_config *c)
{
	printf("%s %u", what, seq);
	for (int i = 0; i < XDS_NTYPES; i++) {
		enum xds_type t = print_order[i];
		size_t dyn = 0;
		const char *sep = "";

		for (size_t k = 0; k < c->n[t]; k++)
			dyn += !c->res[t][k].is_static;
		printf(" %s=", short_name[t]);
		if (dyn > 20) {
			printf("#%zu", dyn);
			continue;
		}
		for (size_t k = 0; k < c->n[t]; k++) {
			if (c->res[t][k].is_static)
				continue;
			printf("%s%s@%s", sep, c->res[t][k].name, c->res[t][k].version);
			sep = ",";
		}
	}
	printf("\n");
}

static int apply(void *ctx, struct xds_config *cand, char *err, size_t errlen)
{
	(void)ctx;
	seq++;
	if (reject_name) {
		for (int t = 0; t < XDS_NTYPES; t++) {
			if (xds_config_find(cand, (enum xds_type)t, reject_name)) {
				snprintf(err, errlen, "%s \"%s\" refused by ads_probe --reject",
					 xds_types[t].noun, reject_name);
				return -1;
			}
		}
	}
	print_config("apply", cand);
	xds_config_free(cand);
	return 0;
}

static void ready(void *ctx)
{
	(void)ctx;
	printf("ready\n");
}

static void rejected(void *ctx, int type, const char *reason, const struct xds_config *cfg)
{
	(void)ctx;
	(void)cfg;
	printf("nack %s %s\n", type >= 0 ? short_name[type] : "unknown", reason);
}

static void log_line(void *ctx, const char *line)
{
	(void)ctx;
	printf("log %s\n", line);
}

int main(int argc, char **argv)
{
	struct ads_opts o = {.delta = -1};
	struct ads_callbacks cb = {
		.apply = apply, .ready = ready, .rejected = rejected, .log = log_line};
	struct epoll_event ev = {.events = EPOLLIN};
	struct xds_config *boot;
	struct jtree_err jerr;
	const struct ads_stats *st;
	struct ads *a;
	char err[512];
	uint64_t until = 0;
	int i = 1, ep, rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *arg = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(arg, "--sotw")) {
			o.delta = 0;
			continue;
		}
		if (!strcmp(arg, "--delta")) {
			o.delta = 1;
			continue;
		}
		if (!val)
			return 2;
		i++;
		if (!strcmp(arg, "--host"))
			o.host = val;
		else if (!strcmp(arg, "--port"))
			o.port = (uint16_t)atoi(val);
		else if (!strcmp(arg, "--max"))
			o.max_message = (uint32_t)atoi(val);
		else if (!strcmp(arg, "--backoff"))
			o.backoff_initial_ms = (uint32_t)atoi(val);
		else if (!strcmp(arg, "--reject"))
			reject_name = val;
		else if (!strcmp(arg, "--for"))
			until = now_ms() + (uint64_t)atoll(val);
		else
			return 2;
	}
	if (i + 1 != argc) {
		fprintf(stderr, "usage: ads_probe [--sotw|--delta] [--host H --port P] [--max N] "
				"[--backoff MS] [--reject NAME] [--for MS] BOOTSTRAP\n");
		return 2;
	}
	rc = bootstrap_load(argv[i], &boot, &jerr);
	if (rc) {
		fprintf(stderr, "ads_probe: %s\n", jerr.msg);
		return 1;
	}
	rc = ads_start(&a, boot, &o, &cb, NULL, err, sizeof(err));
	xds_config_free(boot);
	if (rc) {
		fprintf(stderr, "ads_probe: %s\n", err);
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	ep = epoll_create1(EPOLL_CLOEXEC);
	epoll_ctl(ep, EPOLL_CTL_ADD, ads_fd(a), &ev);
	while (!stop && (!until || now_ms() < until)) {
		int wait = ads_tick(a, now_ms());
		struct epoll_event got;

		if (wait > 200)
			wait = 200;
		if (epoll_wait(ep, &got, 1, wait) > 0)
			ads_io(a);
	}
	st = ads_stats(a);
	printf("stats connects=%llu disconnects=%llu connect_failures=%llu ready=%d",
	       (unsigned long long)st->connects, (unsigned long long)st->disconnects,
	       (unsigned long long)st->connect_failures, st->ready);
	for (int t = 0; t < XDS_NTYPES; t++)
		printf(" %s=%llu/%llu/%zu", short_name[t], (unsigned long long)st->accepted[t],
		       (unsigned long long)st->rejected[t], st->resources[t]);
	printf("\n");
	ads_free(a);
	return 0;
}
