/* Proxy workers: one epoll loop per thread, a command queue for listener changes, shutdown. */
#include "proxy/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "proxy/h1_down.h"
#include "proxy/h2.h"
#include "proxy/hcm.h"
#include "proxy/route.h"
#include "proxy/upool.h"

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void workload_get(struct proxy_workload *w)
{
	atomic_fetch_add(&w->refs, 1);
}

void workload_put(struct proxy_workload *w)
{
	if (atomic_fetch_sub(&w->refs, 1) != 1)
		return;
	close(w->netns_fd);
	free(w);
}

static void listener_put(struct worker *wk, struct listener *l)
{
	if (atomic_fetch_sub(&l->refs, 1) != 1)
		return;
	/* Last reference: serve what already completed its handshake, then close. */
	if (wk)
		tcp_accept(wk, l);
	close(l->fd);
	workload_put(l->w);
	free(l);
}

/* ---- command queue ------------------------------------------------------------------------ */

/* Makes the worker's epoll_wait return (its loop then runs commands and refreshes its config). */
static void worker_wake(struct worker *wk)
{
	uint64_t one = 1;

	if (write(wk->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		pr_warn("worker %d: wake: %m", wk->id);
}

static int worker_post(struct worker *wk, enum cmd_type type, struct listener *l)
{
	struct cmd *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->type = type;
	c->l = l;
	pthread_mutex_lock(&wk->cmd_lock);
	/* Order matters (add before del of the same listener): append at the tail. */
	struct cmd **tail = &wk->cmds;
	while (*tail)
		tail = &(*tail)->next;
	*tail = c;
	pthread_mutex_unlock(&wk->cmd_lock);
	worker_wake(wk);
	return 0;
}

static void worker_hold(struct worker *wk, struct listener *l)
{
	if (wk->nheld == wk->held_cap) {
		int cap = wk->held_cap ? 2 * wk->held_cap : 16;
		struct listener **held = realloc(wk->held, (size_t)cap * sizeof(*held));

		if (!held) {
			/* Unsafe only if an event for l is later in this batch; log it loudly. */
			pr_err("worker %d: out of memory holding a listener; releasing now",
			       wk->id);
			listener_put(wk, l);
			return;
		}
		wk->held = held;
		wk->held_cap = cap;
	}
	wk->held[wk->nheld++] = l;
}

static void worker_del_listener(struct worker *wk, struct listener *l)
{
	/* Only a worker that registered l holds a reference to drop. An event for l may still be
	 * later in this batch: release at the end of the iteration. */
	if (epoll_ctl(wk->epfd, EPOLL_CTL_DEL, l->fd, NULL) == 0) {
		wk->nlisteners--;
		worker_hold(wk, l);
	}
}

static void worker_run_cmds(struct worker *wk)
{
	struct cmd *c, *next;
	uint64_t v;

	if (read(wk->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pr_warn("worker %d: wake read: %m", wk->id);
	pthread_mutex_lock(&wk->cmd_lock);
	c = wk->cmds;
	wk->cmds = NULL;
	pthread_mutex_unlock(&wk->cmd_lock);

	for (; c; c = next) {
		next = c->next;
		switch (c->type) {
		case CMD_ADD_LISTENER: {
			struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE,
						 .data.ptr = &c->l->h};

			if (wk->draining || epoll_ctl(wk->epfd, EPOLL_CTL_ADD, c->l->fd, &ev)) {
				if (!wk->draining)
					pr_err("worker %d: cannot watch listener: %m", wk->id);
				listener_put(wk, c->l);
			} else {
				wk->nlisteners++;
			}
			break;
		}
		case CMD_DEL_LISTENER:
			worker_del_listener(wk, c->l);
			break;
		case CMD_PUT_LISTENER:
			worker_hold(wk, c->l);
			break;
		case CMD_DRAIN:
			/* The HTTP codecs are told after this iteration's events (see
			 * worker_main): closing connections here could free one that a later
			 * event of the batch points to. */
			wk->draining = wk->drain_start = true;
			break;
		case CMD_STOP:
			wk->stopping = true;
			break;
		}
		free(c);
	}
}

/* ---- configuration ------------------------------------------------------------------------- */

void proxy_config_set(struct proxy *p, struct px_snapshot *s)
{
	struct px_snapshot *old;

	pthread_mutex_lock(&p->snap_lock);
	old = p->snap;
	/* Circuit-breaker counts carry over to the clusters that stay. */
	if (s && px_cb_adopt(s, old))
		pr_warn("out of memory: some clusters' circuit breakers count nothing");
	p->snap = s;
	atomic_fetch_add_explicit(&p->snap_gen, 1, memory_order_release);
	pthread_mutex_unlock(&p->snap_lock);
	px_snapshot_put(old);
	/* An idle worker would see it only at its next tick (up to WORKER_IDLE_SWEEP_MS); the
	 * connections of a listener this update took away should start draining now. */
	for (int i = 0; i < p->nworkers; i++)
		worker_wake(&p->workers[i]);
}

struct px_snapshot *proxy_config_get(struct proxy *p)
{
	struct px_snapshot *s;

	pthread_mutex_lock(&p->snap_lock);
	s = p->snap;
	if (s)
		px_snapshot_get(s);
	pthread_mutex_unlock(&p->snap_lock);
	return s;
}

static void worker_lb_free(struct worker *wk)
{
	for (uint32_t i = 0; i < wk->nlb; i++)
		px_lb_state_free(&wk->lb[i]);
	px_lb_state_free(&wk->lb_scratch);
	free(wk->lb);
	wk->lb = NULL;
	wk->nlb = 0;
}

/* One atomic load per iteration; the lock only when a new snapshot was published. */
static void worker_refresh_config(struct worker *wk)
{
	uint64_t gen = atomic_load_explicit(&wk->p->snap_gen, memory_order_acquire);
	struct px_snapshot *s;

	if (gen == wk->snap_gen && wk->snap)
		return;
	s = proxy_config_get(wk->p);
	if (!s)
		return;
	/* Open connections were all checked against the old one: only a change of listeners
	 * can take theirs away. */
	if (wk->snap && wk->snap->listeners_hash != s->listeners_hash)
		wk->listeners_changed = true;
	px_snapshot_put(wk->snap);
	worker_lb_free(wk);
	wk->snap = s;
	wk->snap_gen = gen;
	wk->lb = calloc(s->nclusters ? s->nclusters : 1, sizeof(*wk->lb));
	wk->nlb = wk->lb ? s->nclusters : 0;
}

struct px_lb_state *worker_lb(struct worker *wk, const struct px_snapshot *s,
			      const struct px_cluster *c)
{
	/* A connection on an older snapshot balances with throwaway state (the worker's, so that
	 * it is freed with the rest). */
	if (s != wk->snap || c->index >= wk->nlb)
		return &wk->lb_scratch;
	return &wk->lb[c->index];
}

/* The Date header value, rebuilt when the second changes (IMF-fixdate, RFC 9110 5.6.7). */
static void worker_refresh_date(struct worker *wk)
{
	time_t now = time(NULL);
	struct tm tm;

	if ((uint64_t)now == wk->http_date_sec)
		return;
	wk->http_date_sec = (uint64_t)now;
	gmtime_r(&now, &tm);
	strftime(wk->http_date, sizeof(wk->http_date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* ---- listener drain -------------------------------------------------------------------------- */

/* Whether the worker's snapshot still has hc's listener and chain; if not, its drain starts. */
static void worker_drain_if_gone(struct worker *wk, struct hconn *hc,
				 void (*drain)(struct worker *wk, struct hconn *hc))
{
	if (hc->draining || !hc->listener || hc->snap == wk->snap ||
	    px_listener_keeps(wk->snap, hc->listener, hc->chain))
		return;
	STAT_INC(wk, listener_drain_cx);
	hc->drain_deadline = wk->now_ms + wk->p->cfg.drain_time_ms;
	drain(wk, hc);
}

/* A new snapshot changed the listeners: connections of a listener or filter chain it removed
 * or changed drain, as Envoy drains them (an identical re-push keeps everything). Run after the
 * iteration's events, as CMD_DRAIN is: closing frees connections a later event may point to. */
static void worker_drain_listeners(struct worker *wk)
{
	struct list_head *pos, *tmp;

	wk->listeners_changed = false;
	list_for_each_safe (pos, tmp, &wk->http_conns)
		worker_drain_if_gone(wk, list_entry(pos, struct hconn, node), h1_down_drain_conn);
	list_for_each_safe (pos, tmp, &wk->h2_conns)
		worker_drain_if_gone(wk, list_entry(pos, struct hconn, node), h2_down_drain_conn);
	tcp_drain_listeners(wk);
}

/* ---- the loop ------------------------------------------------------------------------------ */

static void worker_flush_log(struct worker *wk)
{
	int fd = wk->p->cfg.access_log_fd;

	if (wk->log.len && fd >= 0) {
		size_t off = 0;

		while (off < wk->log.len) {
			ssize_t n = write(fd, wk->log.buf + off, wk->log.len - off);

			if (n <= 0)
				break; /* a broken log sink must not stall traffic */
			off += (size_t)n;
		}
	}
	strbuf_reset(&wk->log);
}

void worker_run_deferred(struct worker *wk)
{
	/* Running one may defer another (a flush that ends an exchange): loop until empty. */
	while (!list_empty(&wk->deferred)) {
		struct wk_deferred *d = list_entry(wk->deferred.next, struct wk_deferred, node);

		list_del_init(&d->node);
		d->run(wk, d);
	}
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct epoll_event evs[WORKER_MAX_EVENTS];

	wk->now_ms = mono_ms();
	wk->last_tick = wk->last_idle_sweep = wk->now_ms;
	worker_refresh_config(wk);
	while (!wk->stopping) {
		int timeout = !list_empty(&wk->ready) || !list_empty(&wk->http_ready) ? 0
			      : !list_empty(&wk->connecting) ? WORKER_TICK_MS
							     : WORKER_IDLE_SWEEP_MS;

		if (wk->next_timer) {
			uint64_t now = mono_ms();
			int due = wk->next_timer > now ? (int)(wk->next_timer - now) : 0;

			if (due < timeout)
				timeout = due;
		}
		int n = epoll_wait(wk->epfd, evs, WORKER_MAX_EVENTS, timeout);

		if (n < 0 && errno != EINTR) {
			pr_err("worker %d: epoll_wait: %m", wk->id);
			break;
		}
		wk->now_ms = mono_ms();
		worker_refresh_config(wk);
		worker_refresh_date(wk);
		for (int i = 0; i < n; i++) {
			struct ev_handler *h = evs[i].data.ptr;

			switch (h->type) {
			case EV_WAKE:
				worker_run_cmds(wk);
				break;
			case EV_LISTENER:
				tcp_accept(wk, (struct listener *)h);
				break;
			case EV_CONN:
				tcp_on_event(wk, h, evs[i].events);
				break;
			case EV_HTTP:
				h1_down_on_event(wk, h, evs[i].events);
				break;
			case EV_UPSTREAM:
				uconn_on_event(wk, (struct uconn *)h, evs[i].events);
				break;
			case EV_H2:
				h2_down_on_event(wk, h, evs[i].events);
				break;
			case EV_H2UP:
				h2_up_on_event(wk, h, evs[i].events);
				break;
			}
		}
		tcp_pump_ready(wk);
		upool_dispatch(wk);
		h1_down_run_ready(wk);
		if (wk->drain_start) {
			wk->drain_start = false;
			h1_down_drain(wk);
			h2_down_drain(wk);
		}
		if (wk->listeners_changed)
			worker_drain_listeners(wk);
		if (wk->next_timer && wk->now_ms >= wk->next_timer) {
			/* The ticks re-arm what is still pending. */
			wk->next_timer = 0;
			h1_down_tick(wk);
			h2_down_tick(wk);
			upool_tick(wk);
			upool_dispatch(wk);
			h1_down_run_ready(wk);
		}
		if (wk->now_ms - wk->last_tick >= WORKER_TICK_MS) {
			bool sweep = wk->now_ms - wk->last_idle_sweep >= WORKER_IDLE_SWEEP_MS;

			tcp_timers(wk, sweep);
			h1_down_tick(wk);
			h2_down_tick(wk);
			upool_tick(wk);
			upool_dispatch(wk);
			wk->last_tick = wk->now_ms;
			if (sweep)
				wk->last_idle_sweep = wk->now_ms;
		}
		worker_run_deferred(wk);
		h2_flush_dirty(wk);
		tcp_free_dead(wk);
		for (int i = 0; i < wk->nheld; i++)
			listener_put(wk, wk->held[i]);
		wk->nheld = 0;
		tcp_free_dead(wk); /* the final accepts above may have failed connections */
		h1_down_free_dead(wk);
		h2_down_free_dead(wk);
		upool_free_dead(wk);
		h2_up_free_dead(wk);
		worker_flush_log(wk);
	}
	tcp_close_all(wk, "shutdown");
	tcp_free_dead(wk);
	h1_down_close_all(wk);
	h2_down_close_all(wk);
	upool_destroy(wk);
	worker_flush_log(wk);
	px_regex_thread_done();
	return NULL;
}

static int worker_init(struct proxy *p, struct worker *wk, int id)
{
	struct epoll_event ev = {.events = EPOLLIN};

	memset(wk, 0, sizeof(*wk));
	wk->p = p;
	wk->id = id;
	wk->wake_h.type = EV_WAKE;
	list_init(&wk->conns);
	list_init(&wk->connecting);
	list_init(&wk->ready);
	list_init(&wk->dead);
	list_init(&wk->http_conns);
	list_init(&wk->http_dead);
	list_init(&wk->pools);
	list_init(&wk->up_dead);
	list_init(&wk->http_ready);
	list_init(&wk->h2_conns);
	list_init(&wk->h2_dead);
	list_init(&wk->h2up_dead);
	list_init(&wk->h2_dirty);
	list_init(&wk->h2_dirty_up);
	list_init(&wk->deferred);
	pthread_mutex_init(&wk->cmd_lock, NULL);
	wk->epfd = epoll_create1(EPOLL_CLOEXEC);
	wk->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	wk->home_netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (wk->epfd < 0 || wk->wakefd < 0 || wk->home_netns_fd < 0)
		return -errno;
	wk->scratch_hdrs = calloc(1, sizeof(*wk->scratch_hdrs));
	if (!wk->scratch_hdrs)
		return -ENOMEM;
	ev.data.ptr = &wk->wake_h;
	if (epoll_ctl(wk->epfd, EPOLL_CTL_ADD, wk->wakefd, &ev))
		return -errno;
	return 0;
}

static void worker_destroy(struct worker *wk)
{
	struct cmd *c, *next;

	for (c = wk->cmds; c; c = next) {
		next = c->next;
		if (c->type == CMD_ADD_LISTENER || c->type == CMD_PUT_LISTENER)
			listener_put(NULL, c->l);
		free(c);
	}
	free(wk->held);
	free(wk->scratch_hdrs);
	free(wk->scratch_h1);
	strbuf_release(&wk->scratch_body);
	strbuf_release(&wk->scratch_xff);
	strbuf_release(&wk->scratch_path);
	worker_lb_free(wk);
	px_snapshot_put(wk->snap);
	wk->snap = NULL;
	bufpool_destroy(&wk->pool);
	strbuf_release(&wk->log);
	if (wk->epfd >= 0)
		close(wk->epfd);
	if (wk->wakefd >= 0)
		close(wk->wakefd);
	if (wk->home_netns_fd >= 0)
		close(wk->home_netns_fd);
	pthread_mutex_destroy(&wk->cmd_lock);
}

struct proxy *proxy_start(const struct proxy_config *cfg)
{
	struct proxy *p;
	int err = 0;

	if (cfg->workers < 1 || cfg->workers > PROXY_MAX_WORKERS) {
		errno = EINVAL;
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->cfg = *cfg;
	pthread_mutex_init(&p->snap_lock, NULL);
	p->snap = px_snapshot_passthrough();
	if (!p->snap) {
		free(p);
		errno = ENOMEM;
		return NULL;
	}
	if (!p->cfg.connect_timeout_ms)
		p->cfg.connect_timeout_ms = PROXY_CONNECT_TIMEOUT_MS_DEF;
	if (!p->cfg.idle_timeout_ms)
		p->cfg.idle_timeout_ms = PROXY_IDLE_TIMEOUT_MS_DEF;
	if (!p->cfg.drain_time_ms)
		p->cfg.drain_time_ms = PROXY_DRAIN_TIME_MS_DEF;
	for (int i = 0; i < cfg->workers; i++) {
		err = worker_init(p, &p->workers[i], i);
		if (!err)
			err = -pthread_create(&p->workers[i].thread, NULL, worker_main,
					      &p->workers[i]);
		if (err) {
			worker_destroy(&p->workers[i]);
			break;
		}
		p->nworkers++;
	}
	if (err) {
		proxy_stop(p, 0);
		errno = -err;
		return NULL;
	}
	return p;
}

struct proxy_workload *proxy_workload_add(struct proxy *p, const struct proxy_workload_desc *d)
{
	struct proxy_workload *w = calloc(1, sizeof(*w));
	int err = 0;

	if (!w) {
		err = -ENOMEM;
		goto fail;
	}
	snprintf(w->name, sizeof(w->name), "%s", d->name);
	w->netns_cookie = d->netns_cookie;
	w->sockmap = d->sockmap && p->cfg.sock_pairs_fd >= 0;
	w->netns_fd = fcntl(d->netns_fd, F_DUPFD_CLOEXEC, 0);
	if (w->netns_fd < 0) {
		err = -errno;
		free(w);
		w = NULL;
		goto fail;
	}
	atomic_init(&w->refs, 1);
	for (int i = 0; i < PROXY_WORKLOAD_MAX_LISTENERS; i++) {
		struct listener *l;

		if (d->listen_fds[i] < 0)
			continue;
		l = calloc(1, sizeof(*l));
		if (!l) {
			close(d->listen_fds[i]);
			err = -ENOMEM;
			continue;
		}
		l->h.type = EV_LISTENER;
		l->fd = d->listen_fds[i];
		l->kind = d->kinds[i];
		l->w = w;
		workload_get(w);
		/* One reference for each worker's epoll set plus the workload's handle. */
		atomic_init(&l->refs, p->nworkers + 1);
		w->listeners[w->nlisteners++] = l;
		for (int k = 0; k < p->nworkers; k++)
			if (worker_post(&p->workers[k], CMD_ADD_LISTENER, l))
				listener_put(NULL, l);
	}
	if (err) {
		proxy_workload_remove(p, w);
		errno = -err;
		return NULL;
	}
	return w;
fail:
	for (int i = 0; i < PROXY_WORKLOAD_MAX_LISTENERS; i++)
		if (d->listen_fds[i] >= 0)
			close(d->listen_fds[i]);
	errno = -err;
	return NULL;
}

void proxy_workload_remove(struct proxy *p, struct proxy_workload *w)
{
	for (int i = 0; i < w->nlisteners; i++) {
		struct listener *l = w->listeners[i];

		/* Each worker unregisters and drops its own reference; our handle's reference goes
		 * last, through worker 0, so that l outlives this loop and the final put (which
		 * accepts what is still queued) always runs on a worker thread. */
		for (int k = 0; k < p->nworkers; k++)
			worker_post(&p->workers[k], CMD_DEL_LISTENER, l);
		if (worker_post(&p->workers[0], CMD_PUT_LISTENER, l))
			listener_put(NULL, l);
	}
	workload_put(w);
}

struct http1_header *worker_h1_hdrs(struct worker *wk, size_t n)
{
	struct http1_header *h;

	if (n <= wk->scratch_h1_cap)
		return wk->scratch_h1;
	h = realloc(wk->scratch_h1, n * sizeof(*h));
	if (!h)
		return NULL;
	wk->scratch_h1 = h;
	wk->scratch_h1_cap = n;
	return h;
}

void proxy_stats_get(struct proxy *p, struct proxy_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < p->nworkers; i++) {
		const struct proxy_stats *s = &p->workers[i].stats;

#define PROXY_STAT_SUM(name, help) out->name += __atomic_load_n(&s->name, __ATOMIC_RELAXED);
		PROXY_STATS(PROXY_STAT_SUM)
#undef PROXY_STAT_SUM
	}
}

void proxy_stats_format(const struct proxy_stats *s, struct strbuf *sb, bool json)
{
	bool first = true;

	if (json)
		strbuf_addc(sb, '{');
#define PROXY_STAT_FMT(name, help)                                                                 \
	if (json)                                                                                  \
		strbuf_addf(sb, "%s\"%s\":%llu", first ? "" : ",", #name,                          \
			    (unsigned long long)s->name);                                          \
	else                                                                                       \
		strbuf_addf(sb, "proxy.%s: %llu\n", #name, (unsigned long long)s->name);           \
	first = false;
	PROXY_STATS(PROXY_STAT_FMT)
#undef PROXY_STAT_FMT
	if (json)
		strbuf_addc(sb, '}');
}

void proxy_stop(struct proxy *p, unsigned drain_ms)
{
	struct proxy_stats st;
	uint64_t deadline;

	if (!p)
		return;
	for (int i = 0; i < p->nworkers; i++)
		worker_post(&p->workers[i], CMD_DRAIN, NULL);
	deadline = mono_ms() + drain_ms;
	for (;;) {
		proxy_stats_get(p, &st);
		if (st.downstream_cx_active == 0 || mono_ms() >= deadline)
			break;
		usleep(20 * 1000);
	}
	for (int i = 0; i < p->nworkers; i++)
		worker_post(&p->workers[i], CMD_STOP, NULL);
	for (int i = 0; i < p->nworkers; i++) {
		pthread_join(p->workers[i].thread, NULL);
		worker_destroy(&p->workers[i]);
	}
	proxy_stats_get(p, &st);
	pr_info("proxy stopped: %llu connections served, %llu still open at the drain deadline "
		"were closed",
		(unsigned long long)st.downstream_cx_total, (unsigned long long)st.cx_drained);
	px_snapshot_put(p->snap);
	pthread_mutex_destroy(&p->snap_lock);
	free(p);
}
