/* Proxy internals shared by the worker loop and the TCP proxy: workers, listeners, workloads.
 *
 * Ownership: a worker thread owns its epoll set, its connections and its buffers; nothing of it
 * is touched by another thread except through its command queue. Listeners and workloads are
 * shared between workers and reference counted; the last reference closes their fds.
 */
#ifndef SHUNT_PROXY_WORKER_H
#define SHUNT_PROXY_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/list.h"
#include "lib/strbuf.h"
#include "proxy/bufpool.h"
#include "proxy/config.h"
#include "proxy/http.h"
#include "proxy/http1-t.h"
#include "proxy/lb.h"
#include "proxy/proxy.h"

#define WORKER_MAX_EVENTS    256
#define WORKER_TICK_MS	     100	  /* connect-timeout resolution */
#define WORKER_IDLE_SWEEP_MS 1000	  /* idle-timeout resolution */
#define WORKER_PUMP_BUDGET   (256 * 1024) /* bytes per connection before yielding to others */
#define WORKER_ACCEPT_BUDGET 64		  /* accepts per listener event before yielding */

/* The first member of everything registered in epoll: says what the event is for. */
enum ev_type {
	EV_WAKE,
	EV_LISTENER,
	EV_CONN,
	EV_HTTP,
	EV_UPSTREAM,
	EV_H2,
	EV_H2UP
};
struct ev_handler {
	enum ev_type type;
};

struct worker;

/* Work run once at the end of a loop iteration, after every event of the batch. An HTTP/1 head
 * whose body follows in the same iteration is written with it, in one send, instead of alone:
 * the head is deferred, the body write sends both, and the deferred flush finds nothing left.
 * Whoever embeds one takes it off the list before it goes away (worker_defer_cancel). */
struct wk_deferred {
	struct list_head node;
	void (*run)(struct worker *wk, struct wk_deferred *d);
};

struct proxy_workload {
	char name[64];
	int netns_fd;
	__u64 netns_cookie;
	bool sockmap;
	atomic_int refs; /* listeners + connections + the agent's handle */
	struct listener *listeners[PROXY_WORKLOAD_MAX_LISTENERS];
	int nlisteners;
};

struct listener {
	struct ev_handler h;
	int fd;
	enum proxy_listener_kind kind;
	struct proxy_workload *w;
	atomic_int refs; /* one per worker that has it in its epoll set, plus the adder's */
};

enum cmd_type {
	CMD_ADD_LISTENER,
	CMD_DEL_LISTENER,
	CMD_PUT_LISTENER,
	CMD_DRAIN,
	CMD_STOP
};
struct cmd {
	enum cmd_type type;
	struct listener *l;
	struct cmd *next;
};

struct worker {
	struct ev_handler wake_h;
	struct proxy *p;
	int id;
	pthread_t thread;
	int epfd;
	int wakefd;
	int home_netns_fd; /* where this thread returns after creating a socket in a pod */
	uint64_t now_ms;   /* CLOCK_MONOTONIC, refreshed once per loop iteration */

	pthread_mutex_t cmd_lock;
	struct cmd *cmds;

	struct proxy_stats stats;    /* written only by this thread */
	struct list_head conns;	     /* every open connection */
	struct list_head connecting; /* connections waiting for their upstream connect */
	struct list_head ready;	     /* connections with more to pump (budget ran out) */
	struct list_head dead;	     /* closed this iteration, freed at its end */
	struct list_head http_conns; /* downstream HTTP connections (timers) */
	struct list_head http_dead;  /* HTTP connections closed this iteration */
	struct list_head pools;	     /* upstream connection pools */
	struct list_head up_dead;    /* upstream connections closed this iteration */
	struct list_head http_ready; /* HTTP connections to go on with their next request */
	struct list_head h2_conns;   /* downstream HTTP/2 connections */
	struct list_head h2_dead;    /* downstream HTTP/2 connections closed this iteration */
	struct list_head h2up_dead;  /* upstream HTTP/2 connections closed this iteration */
	struct list_head h2_dirty;   /* HTTP/2 connections with frames to write */
	struct list_head h2_dirty_up;
	struct list_head deferred; /* struct wk_deferred to run at the end of this iteration */
	uint64_t conn_seq;	   /* connections seen, mixed into their random seeds */
	uint64_t next_timer;	   /* earliest HTTP deadline (CLOCK_MONOTONIC ms), 0: none */
	struct listener **held;	   /* listeners removed this iteration, released at its end */
	int nheld, held_cap;
	int nlisteners;
	struct bufpool pool;
	struct strbuf log; /* access-log lines, flushed once per iteration */
	/* The snapshot new connections use, refreshed when the proxy's generation moves, and
	 * this worker's balancer state for each of its clusters (by px_cluster.index). */
	struct px_snapshot *snap;
	uint64_t snap_gen;
	/* HTTP scratch space, used within one call at a time (this thread only). */
	struct http_hdrs *scratch_hdrs;
	/* Field lines of the HTTP/1 head being parsed; the codecs copy them out before any
	 * callback, so connections need no array of their own. */
	struct http1_header *scratch_h1;
	size_t scratch_h1_cap;
	struct strbuf scratch_body, scratch_xff, scratch_path;
	char cluster_name[256];
	char http_date[40]; /* IMF-fixdate, refreshed once per second */
	uint64_t http_date_sec;
	struct px_lb_state *lb;
	struct px_lb_state lb_scratch; /* throwaway state for connections on an older snapshot */
	uint32_t nlb;
	uint64_t last_tick, last_idle_sweep;
	bool draining, stopping;
	bool drain_start;	/* draining began: the HTTP codecs are yet to be told */
	bool listeners_changed; /* a new snapshot's listeners differ: check connections' own */
	uint64_t tcp_drain_due; /* earliest drain deadline of a TCP connection (ms), 0: none */
};

struct proxy {
	struct proxy_config cfg;
	pthread_mutex_t snap_lock; /* guards snap; taken only when the generation moves */
	struct px_snapshot *snap;
	atomic_uint_fast64_t snap_gen;
	int nworkers;
	struct worker workers[PROXY_MAX_WORKERS];
};

/* Single-writer counters: a relaxed store is enough for readers on other threads. */
#define STAT_ADD(wk, field, n)                                                                     \
	__atomic_store_n(&(wk)->stats.field, (wk)->stats.field + (n), __ATOMIC_RELAXED)
#define STAT_INC(wk, field) STAT_ADD(wk, field, 1)
#define STAT_DEC(wk, field) STAT_ADD(wk, field, (uint64_t)-1)

/* An I/O buffer from this worker's pool, counted while a connection holds it. */
static inline struct buf *worker_buf_get(struct worker *wk)
{
	struct buf *b = bufpool_get(&wk->pool);

	if (b) {
		STAT_INC(wk, io_buf_active);
		__atomic_store_n(&wk->stats.io_buf_pooled, wk->pool.nfree, __ATOMIC_RELAXED);
	}
	return b;
}

static inline void worker_buf_put(struct worker *wk, struct buf *b)
{
	bufpool_put(&wk->pool, b);
	STAT_DEC(wk, io_buf_active);
	__atomic_store_n(&wk->stats.io_buf_pooled, wk->pool.nfree, __ATOMIC_RELAXED);
}

/* Room for n field lines in wk->scratch_h1 (it only grows: to the largest max_headers_count of
 * this worker's listeners). NULL when out of memory. */
struct http1_header *worker_h1_hdrs(struct worker *wk, size_t n);

void workload_put(struct proxy_workload *w);
/* Asks the loop to run the HTTP timers no later than `at`. */
static inline void worker_timer(struct worker *wk, uint64_t at)
{
	if (at && (!wk->next_timer || at < wk->next_timer))
		wk->next_timer = at;
}

static inline void worker_defer_init(struct wk_deferred *d,
				     void (*run)(struct worker *wk, struct wk_deferred *d))
{
	list_init(&d->node);
	d->run = run;
}
static inline void worker_defer(struct worker *wk, struct wk_deferred *d)
{
	if (!list_linked(&d->node))
		list_add_tail(&d->node, &wk->deferred);
}
static inline void worker_defer_cancel(struct wk_deferred *d)
{
	if (list_linked(&d->node))
		list_del_init(&d->node);
}

void worker_run_deferred(struct worker *wk);

/* A recv that returned less than it asked for emptied the socket: with edge-triggered epoll
 * the next byte to arrive raises a new event, so the usual read that ends in EAGAIN is one
 * syscall per message for nothing. Not when the peer's FIN is already known (the read that
 * returns 0 is still due), nor on sockets in the SOCKHASH: data queued before the socket went
 * in and data redirected by sk_msg sit in two queues, and one recv may read only one. */
static inline bool recv_drained(ssize_t got, size_t asked, bool rdhup, bool sockmap)
{
	return got >= 0 && (size_t)got < asked && !rdhup && !sockmap;
}

/* The worker's balancer state for a cluster of its current snapshot. */
struct px_lb_state *worker_lb(struct worker *wk, const struct px_snapshot *s,
			      const struct px_cluster *c);
void workload_get(struct proxy_workload *w);

/* tcp_proxy.c: connections. */
void tcp_accept(struct worker *wk, struct listener *l);
void tcp_on_event(struct worker *wk, struct ev_handler *h, uint32_t events);
void tcp_pump_ready(struct worker *wk);
void tcp_timers(struct worker *wk, bool idle_sweep);
void tcp_close_all(struct worker *wk, const char *why);
/* Connections of listeners or chains the worker's snapshot no longer has get the drain time. */
void tcp_drain_listeners(struct worker *wk);
void tcp_free_dead(struct worker *wk);

#endif
