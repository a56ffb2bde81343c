/* The resolver thread of agent/dns.h. One mutex guards the table; getaddrinfo runs unlocked. */
#include "agent/dns.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/addr.h"
#include "lib/log.h"
#include "proxy/config.h"

struct dns_entry {
	char *name;
	struct dns_want w; /* w.name is name */
	uint32_t failures; /* lookups failed in a row */
	uint64_t due;	   /* CLOCK_MONOTONIC ms of the next lookup; 0: now */
	int naddr;
	struct shunt_addr addr[DNS_MAX_ADDRS];
};

struct dns_cache {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int efd;
	bool stopping;
	struct dns_entry *e;
	size_t n;
	struct dns_stats st;
	unsigned rng;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* getaddrinfo's answer as a list of distinct addresses, in its order. -1 on failure. */
static int resolve(const char *name, struct shunt_addr *out)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
	int n = 0;

	if (getaddrinfo(name, NULL, &hints, &res))
		return -1;
	for (ai = res; ai && n < DNS_MAX_ADDRS; ai = ai->ai_next) {
		struct shunt_addr a;
		__u16 port;
		int k;

		if (addr_from_sockaddr(&a, &port, ai->ai_addr))
			continue;
		for (k = 0; k < n && memcmp(&out[k], &a, sizeof(a)); k++)
			;
		if (k == n)
			out[n++] = a;
	}
	freeaddrinfo(res);
	return n;
}

uint32_t dns_next_wait(const struct dns_want *w, uint32_t failures, unsigned *rng)
{
	uint64_t d;

	if (!failures || !w->fail_base_ms)
		return w->refresh_ms;
	d = w->fail_base_ms;
	for (uint32_t i = 1; i < failures && d < w->fail_max_ms; i++)
		d *= 2;
	if (d > w->fail_max_ms)
		d = w->fail_max_ms;
	return (uint32_t)(d - (d / 2 ? (uint64_t)rand_r(rng) % (d / 2 + 1) : 0));
}

static void *dns_main(void *arg)
{
	struct dns_cache *c = arg;
	/* Signals are the agent's (signalfd); this thread starts with all of them blocked. */
	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		uint64_t now = now_ms(), next = UINT64_MAX;
		struct dns_entry *due = NULL;

		for (size_t i = 0; i < c->n; i++) {
			if (c->e[i].due <= now && !due)
				due = &c->e[i];
			if (c->e[i].due < next)
				next = c->e[i].due;
		}
		if (!due) {
			struct timespec ts;

			if (next == UINT64_MAX) {
				pthread_cond_wait(&c->cond, &c->lock);
				continue;
			}
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += (time_t)((next - now) / 1000);
			ts.tv_nsec += (long)((next - now) % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&c->cond, &c->lock, &ts);
			continue;
		}
		char *name = strdup(due->name);
		struct shunt_addr got[DNS_MAX_ADDRS];
		int n;

		due->due = now + due->w.refresh_ms; /* rescheduled below once answered */
		pthread_mutex_unlock(&c->lock);
		n = name ? resolve(name, got) : -1;
		pthread_mutex_lock(&c->lock);
		c->st.lookups++;
		/* The table may have changed meanwhile: find the name again. */
		for (size_t i = 0; name && i < c->n; i++) {
			struct dns_entry *e = &c->e[i];

			if (strcmp(e->name, name))
				continue;
			e->failures = n < 0 ? e->failures + 1 : 0;
			e->due = now + dns_next_wait(&e->w, e->failures, &c->rng);
			if (n < 0) {
				c->st.failures++;
				pr_debug("dns: %s: no answer; keeping the last one (%d addresses)",
					 name, e->naddr);
			} else if (n != e->naddr ||
				   memcmp(e->addr, got, (size_t)n * sizeof(got[0]))) {
				e->naddr = n;
				memcpy(e->addr, got, (size_t)n * sizeof(got[0]));
				c->st.changes++;
				pr_info("dns: %s: %d addresses", name, n);
				eventfd_write(c->efd, 1);
			}
			break;
		}
		free(name);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

struct dns_cache *dns_cache_start(void)
{
	struct dns_cache *c = calloc(1, sizeof(*c));
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	if (!c)
		return NULL;
	c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	c->rng = (unsigned)now_ms() ^ (unsigned)getpid();
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	/* Created with every signal blocked, so none can reach it before it runs. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = c->efd < 0 ? -1 : pthread_create(&c->thread, NULL, dns_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		int err = rc > 0 ? rc : errno; /* pthread_create returns its error */

		if (c->efd >= 0)
			close(c->efd);
		free(c);
		errno = err;
		return NULL;
	}
	return c;
}

int dns_cache_fd(const struct dns_cache *c)
{
	return c->efd;
}

void dns_cache_drain(struct dns_cache *c)
{
	eventfd_t v;

	eventfd_read(c->efd, &v);
}

/* The faster of two schedules for one name (two clusters naming it). */
static void fastest(struct dns_want *into, const struct dns_want *w)
{
	if (w->refresh_ms < into->refresh_ms)
		into->refresh_ms = w->refresh_ms;
	if (w->fail_base_ms && (!into->fail_base_ms || w->fail_base_ms < into->fail_base_ms)) {
		into->fail_base_ms = w->fail_base_ms;
		into->fail_max_ms = w->fail_max_ms;
	}
}

void dns_cache_want(struct dns_cache *c, const struct dns_want *want, size_t n)
{
	struct dns_entry *next;
	size_t k = 0, dropped = 0;

	pthread_mutex_lock(&c->lock);
	next = calloc(n ? n : 1, sizeof(*next));
	if (!next) {
		pthread_mutex_unlock(&c->lock);
		return; /* keep resolving the old set */
	}
	for (size_t i = 0; i < n; i++) {
		struct dns_want w = want[i];
		size_t j;

		if (w.refresh_ms < DNS_REFRESH_MS_MIN)
			w.refresh_ms = DNS_REFRESH_MS_MIN;
		if (w.fail_base_ms && w.fail_base_ms < DNS_REFRESH_MS_MIN)
			w.fail_base_ms = DNS_REFRESH_MS_MIN;
		if (w.fail_max_ms < w.fail_base_ms)
			w.fail_max_ms = w.fail_base_ms;
		for (j = 0; j < k && strcmp(next[j].name, w.name); j++)
			;
		if (j < k) {
			fastest(&next[j].w, &w);
			continue;
		}
		if (k == DNS_MAX_NAMES) {
			dropped++;
			continue;
		}
		for (j = 0; j < c->n; j++) {
			if (c->e[j].name && !strcmp(c->e[j].name, w.name)) {
				next[k] = c->e[j]; /* keeps its answer and schedule */
				c->e[j].name = NULL;
				break;
			}
		}
		if (j == c->n)
			next[k].name = strdup(w.name);
		next[k].w = w;
		next[k].w.name = next[k].name;
		if (next[k].name)
			k++;
	}
	for (size_t j = 0; j < c->n; j++)
		free(c->e[j].name);
	free(c->e);
	c->e = next;
	c->n = k;
	c->st.names = k;
	c->st.names_dropped = dropped;
	if (dropped)
		pr_warn("dns: %zu names over the limit of %d are not resolved", dropped,
			DNS_MAX_NAMES);
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

int dns_cache_lookup(void *ctx, const char *host, int family, struct shunt_addr *out, int max)
{
	struct dns_cache *c = ctx;
	int n = 0;

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n; i++) {
		const struct dns_entry *e = &c->e[i];
		int v4 = 0, v6 = 0;
		bool want4, want6;

		if (strcmp(e->name, host))
			continue;
		for (int k = 0; k < e->naddr; k++) {
			if (addr_is_v4(&e->addr[k]))
				v4++;
			else
				v6++;
		}
		/* Envoy's lookup families: AUTO prefers IPv6, V4_PREFERRED IPv4, ALL takes both. */
		want4 = family == PX_DNS_V4_ONLY || family == PX_DNS_ALL ||
			(family == PX_DNS_V4_PREFERRED && v4) || (family == PX_DNS_AUTO && !v6);
		want6 = family == PX_DNS_V6_ONLY || family == PX_DNS_ALL ||
			(family == PX_DNS_AUTO && v6) || (family == PX_DNS_V4_PREFERRED && !v4);
		for (int k = 0; k < e->naddr && n < max; k++)
			if (addr_is_v4(&e->addr[k]) ? want4 : want6)
				out[n++] = e->addr[k];
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return n;
}

void dns_cache_stats(struct dns_cache *c, struct dns_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->st;
	pthread_mutex_unlock(&c->lock);
}

void dns_cache_stop(struct dns_cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	for (size_t i = 0; i < c->n; i++)
		free(c->e[i].name);
	free(c->e);
	close(c->efd);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}
