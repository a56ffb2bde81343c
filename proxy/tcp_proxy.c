/* The TCP proxy: accept on 15001/15006, connect to the original destination from inside the
 * pod, copy both ways with half-close and backpressure, enforce timeouts, log each connection. */
#include <bpf/bpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/addr.h"
#include "lib/log.h"
#include "proxy/accesslog.h"
#include "proxy/h1_down.h"
#include "proxy/h2.h"
#include "proxy/orig_dst.h"
#include "proxy/rbac.h"
#include "proxy/sniff.h"
#include "proxy/tlsio.h"
#include "proxy/tunnel.h"
#include "proxy/upstream.h"
#include "proxy/worker.h"

struct conn;

/* One socket of a connection; registered in epoll with itself as the handler. */
struct conn_side {
	struct ev_handler h;
	struct conn *c;
	int fd;
	bool readable, writable;
	bool rdhup; /* the peer's FIN or an error was reported: read until 0 */
	struct tlsio tls;
};

/* One direction of the copy. A buffer is held only while it has bytes in flight. A tunnel
 * starts with bytes the HTTP codecs already hold (pre): they go out first, through the buffer,
 * before anything is read from the source. */
struct pipe_dir {
	struct buf *buf;
	uint32_t off, len;
	struct strbuf pre;
	size_t pre_off;
	bool src_eof, dst_shut;
	uint64_t bytes;
};

enum conn_state {
	CONN_INSPECTING, /* listener filters peek at the first bytes */
	CONN_TLS_DOWN,	 /* the filter chain terminates TLS: downstream handshake */
	CONN_CONNECTING,
	CONN_TLS_UP, /* the cluster originates TLS: upstream handshake */
	CONN_OPEN,
	CONN_CLOSED
};

struct conn {
	struct conn_side down, up;
	struct pipe_dir d2u, u2d;
	struct proxy_workload *w;
	struct px_snapshot *snap; /* the config this connection started on (a reference) */
	const struct px_cluster *cluster;
	const struct px_transport *up_transport; /* the endpoint's, or the cluster's */
	int endpoint;		   /* index in cluster->endpoints, -1 for ORIGINAL_DST */
	struct px_cb_state *cb_cx; /* its upstream connection in the cluster's breaker */
	bool bound_local;	   /* upstream bound to the cluster's upstream_bind_config */
	bool handed_off;	   /* the socket went to the HTTP codec: no log, no count here */
	/* An HTTP upgrade or CONNECT turned tunnel: logged as its HTTP stream when it ends. */
	struct accesslog_http *http_log;
	bool tunnel;
	uint32_t idle_timeout_ms;
	enum proxy_listener_kind kind;
	enum conn_state state;
	struct list_head node;	/* wk->conns, then wk->dead */
	struct list_head tnode; /* wk->connecting */
	struct list_head rnode; /* wk->ready */
	uint64_t start_ms, connect_deadline, last_activity;
	struct timespec start_real;
	struct shunt_addr down_remote, down_local, up_host;
	__u16 down_remote_port, down_local_port, up_host_port;
	const char *flags;
	const char *details;
	const char *failure;
	/* A network RBAC filter denied it: the policy that matched (NULL: none), for the log. */
	bool rbac_denied;
	const char *rbac_policy;
	/* What the listener filters found; allocated only on listeners that have them. */
	struct conn_sniffed *sniffed;
	const struct px_listener *listener;  /* resolved at accept, from snap */
	const struct px_filter_chain *chain; /* chosen by conn_route, from snap */
	uint64_t drain_deadline;	     /* its listener changed: closed then (ms; 0: no) */
	struct shunt_addr orig;
	__u16 orig_port;
};

/* The listener filters' findings, as strings the filter-chain matcher reads. */
struct conn_sniffed {
	const char *transport;
	char sni[PX_TLS_SNI_MAX + 1];
	const char *alpn[PX_TLS_ALPN_MAX];
	uint32_t nalpn;
	char alpn_buf[PX_TLS_ALPN_MAX * 256];
};

/* Bytes peeked at most: a ClientHello of PX_TLS_HELLO_MAX split into small records needs room
 * for their headers too. */
#define INSPECT_PEEK_MAX (PX_TLS_HELLO_MAX + 4096)

/* ---- closing and logging ------------------------------------------------------------------ */

/* The tunnel's stream, with what went through it. */
static void tunnel_log(struct worker *wk, struct conn *c)
{
	struct accesslog_http *e = c->http_log;

	e->bytes_received += c->d2u.bytes;
	e->bytes_sent += c->u2d.bytes;
	e->duration_ms = wk->now_ms - c->start_ms;
	if (strcmp(c->flags, "-"))
		e->flags = c->flags;
	if (strcmp(c->details, "-"))
		e->details = c->details;
	accesslog_http_format(&wk->log, e, wk->p->cfg.access_log_json);
}

static void conn_log(struct worker *wk, struct conn *c)
{
	char up_host[ADDR_STRLEN] = "-", up_local[ADDR_STRLEN] = "-", dl[ADDR_STRLEN] = "-",
	     dr[ADDR_STRLEN] = "-", rbac[PX_RBAC_DETAILS_MAX];
	struct accesslog_tcp e = {0};
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (wk->p->cfg.access_log_fd < 0)
		return;
	if (c->http_log) {
		tunnel_log(wk, c);
		return;
	}
	if (c->up_host_port)
		addr_port_fmt(&c->up_host, c->up_host_port, up_host, sizeof(up_host));
	if (c->up.fd >= 0 && getsockname(c->up.fd, (struct sockaddr *)&ss, &len) == 0) {
		struct shunt_addr a;
		__u16 port;

		if (addr_from_sockaddr(&a, &port, (struct sockaddr *)&ss) == 0 && port)
			addr_port_fmt(&a, port, up_local, sizeof(up_local));
	}
	addr_port_fmt(&c->down_local, c->down_local_port, dl, sizeof(dl));
	addr_port_fmt(&c->down_remote, c->down_remote_port, dr, sizeof(dr));
	e.start = c->start_real;
	e.duration_ms = wk->now_ms - c->start_ms;
	e.bytes_received = c->d2u.bytes;
	e.bytes_sent = c->u2d.bytes;
	e.flags = c->flags;
	e.details = c->details;
	if (c->rbac_denied) {
		px_rbac_details(rbac, sizeof(rbac), c->rbac_policy);
		e.details = rbac;
	}
	e.failure_reason = c->failure;
	e.upstream_host = up_host;
	e.upstream_cluster = c->cluster ? c->cluster->name : NULL;
	e.upstream_local = up_local;
	e.downstream_local = dl;
	e.downstream_remote = dr;
	accesslog_tcp_format(&wk->log, &e, wk->p->cfg.access_log_json);
}

static void pipe_release(struct worker *wk, struct pipe_dir *d)
{
	if (d->buf) {
		worker_buf_put(wk, d->buf);
		d->buf = NULL;
	}
	d->off = d->len = 0;
}

/* reset: abort the downstream with RST (the app sees an error, not a clean EOF). */
static void conn_close(struct worker *wk, struct conn *c, bool reset)
{
	if (c->state == CONN_CLOSED)
		return;
	if (!c->handed_off)
		conn_log(wk, c);
	if (reset && c->down.fd >= 0) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};

		setsockopt(c->down.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	} else if (c->down.fd >= 0) {
		tlsio_shutdown(&c->down.tls);
	}
	if (c->up.fd >= 0)
		tlsio_shutdown(&c->up.tls);
	tlsio_free(&c->down.tls);
	tlsio_free(&c->up.tls);
	if (c->down.fd >= 0)
		close(c->down.fd);
	if (c->up.fd >= 0)
		close(c->up.fd);
	c->down.fd = c->up.fd = -1;
	if (c->cluster && c->endpoint >= 0)
		px_lb_release(worker_lb(wk, c->snap, c->cluster), (uint32_t)c->endpoint);
	px_cb_release(&c->cb_cx, PX_CB_CX);
	pipe_release(wk, &c->d2u);
	pipe_release(wk, &c->u2d);
	strbuf_release(&c->d2u.pre);
	strbuf_release(&c->u2d.pre);
	free(c->sniffed);
	c->sniffed = NULL;
	free(c->http_log);
	c->http_log = NULL;
	if (list_linked(&c->tnode))
		list_del_init(&c->tnode);
	if (list_linked(&c->rnode))
		list_del_init(&c->rnode);
	list_del_init(&c->node);
	list_add_tail(&c->node, &wk->dead);
	c->state = CONN_CLOSED;
	if (!c->handed_off)
		STAT_DEC(wk, downstream_cx_active);
	if (c->tunnel)
		STAT_DEC(wk, http_tunnel_active);
}

static void conn_fail(struct worker *wk, struct conn *c, const char *flags, const char *details,
		      bool reset)
{
	if (!c->flags || strcmp(c->flags, "-") == 0)
		c->flags = flags;
	if (!c->details || strcmp(c->details, "-") == 0)
		c->details = details;
	conn_close(wk, c, reset);
}

void tcp_free_dead(struct worker *wk)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &wk->dead) {
		struct conn *c = list_entry(pos, struct conn, node);

		list_del_init(&c->node);
		workload_put(c->w);
		px_snapshot_put(c->snap);
		free(c);
	}
}

void tcp_close_all(struct worker *wk, const char *why)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &wk->conns) {
		struct conn *c = list_entry(pos, struct conn, node);

		STAT_INC(wk, cx_drained);
		conn_fail(wk, c, "-", why, false);
	}
}

/* ---- copying -------------------------------------------------------------------------------- */

enum pump_result {
	PUMP_IDLE,
	PUMP_BUDGET,
	PUMP_ERR_SRC,
	PUMP_ERR_DST
};

static enum pump_result pump(struct worker *wk, struct conn *c, struct conn_side *src,
			     struct conn_side *dst, struct pipe_dir *d, size_t *budget,
			     uint64_t *rx_stat)
{
	for (;;) {
		if (d->len) {
			ssize_t n;

			if (!dst->writable)
				return PUMP_IDLE;
			n = tlsio_send(&dst->tls, dst->fd, d->buf->data + d->off, d->len);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					dst->writable = false;
					return PUMP_IDLE;
				}
				if (errno == EINTR)
					continue;
				return PUMP_ERR_DST;
			}
			d->off += (uint32_t)n;
			d->len -= (uint32_t)n;
			c->last_activity = wk->now_ms;
			continue;
		}
		if (d->pre_off < d->pre.len) {
			if (!d->buf) {
				d->buf = worker_buf_get(wk);
				if (!d->buf)
					return PUMP_BUDGET;
			}
			size_t k = d->pre.len - d->pre_off < BUF_SIZE ? d->pre.len - d->pre_off
								      : BUF_SIZE;

			memcpy(d->buf->data, d->pre.buf + d->pre_off, k);
			d->pre_off += k;
			d->off = 0;
			d->len = (uint32_t)k;
			if (d->pre_off == d->pre.len) {
				strbuf_release(&d->pre);
				d->pre_off = 0;
			}
			continue;
		}
		if (d->src_eof) {
			pipe_release(wk, d);
			if (!d->dst_shut) {
				tlsio_shutdown(&dst->tls);
				shutdown(dst->fd, SHUT_WR);
				d->dst_shut = true;
			}
			return PUMP_IDLE;
		}
		if (!src->readable) {
			pipe_release(wk, d);
			return PUMP_IDLE;
		}
		if (*budget == 0)
			return PUMP_BUDGET;
		if (!d->buf) {
			d->buf = worker_buf_get(wk);
			if (!d->buf)
				return PUMP_BUDGET; /* retry on the next iteration */
		}
		ssize_t n = tlsio_recv(&src->tls, src->fd, d->buf->data, BUF_SIZE);

		if (n > 0) {
			if (tlsio_drained(&src->tls, n, BUF_SIZE, src->rdhup, c->w->sockmap))
				src->readable = false;
			d->off = 0;
			d->len = (uint32_t)n;
			d->bytes += (uint64_t)n;
			*rx_stat += (uint64_t)n;
			*budget = (size_t)n >= *budget ? 0 : *budget - (size_t)n;
			c->last_activity = wk->now_ms;
		} else if (n == 0) {
			d->src_eof = true;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			src->readable = false;
		} else if (errno != EINTR) {
			return PUMP_ERR_SRC;
		}
	}
}

static void conn_pump(struct worker *wk, struct conn *c)
{
	size_t budget = WORKER_PUMP_BUDGET;
	uint64_t down_rx = 0, up_rx = 0;
	enum pump_result r1, r2;

	if (c->state != CONN_OPEN)
		return;
	r1 = pump(wk, c, &c->down, &c->up, &c->d2u, &budget, &down_rx);
	r2 = (r1 == PUMP_ERR_SRC || r1 == PUMP_ERR_DST)
		     ? PUMP_IDLE
		     : pump(wk, c, &c->up, &c->down, &c->u2d, &budget, &up_rx);
	STAT_ADD(wk, bytes_downstream_rx, down_rx);
	STAT_ADD(wk, bytes_upstream_rx, up_rx);

	if (r1 == PUMP_ERR_SRC || r2 == PUMP_ERR_DST) {
		conn_fail(wk, c, "DC", "downstream_connection_error", false);
		return;
	}
	if (r1 == PUMP_ERR_DST || r2 == PUMP_ERR_SRC) {
		conn_fail(wk, c, "UC", "upstream_connection_error", true);
		return;
	}
	if (c->d2u.dst_shut && c->u2d.dst_shut) {
		conn_close(wk, c, false);
		return;
	}
	if ((r1 == PUMP_BUDGET || r2 == PUMP_BUDGET) && !list_linked(&c->rnode))
		list_add_tail(&c->rnode, &wk->ready);
}

void tcp_pump_ready(struct worker *wk)
{
	struct list_head batch, *pos, *tmp;

	if (list_empty(&wk->ready))
		return;
	/* Take the current list so that connections re-queued while pumping wait their turn. */
	batch = wk->ready;
	batch.next->prev = &batch;
	batch.prev->next = &batch;
	list_init(&wk->ready);
	list_for_each_safe (pos, tmp, &batch) {
		struct conn *c = list_entry(pos, struct conn, rnode);

		list_del_init(&c->rnode);
		conn_pump(wk, c);
	}
}

/* ---- connecting upstream -------------------------------------------------------------------- */

static int epoll_add_side(struct worker *wk, struct conn_side *s)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
				 .data.ptr = &s->h};

	return epoll_ctl(wk->epfd, EPOLL_CTL_ADD, s->fd, &ev) ? -errno : 0;
}

static void sockmap_insert(struct worker *wk, struct proxy_workload *w, int fd)
{
	struct shunt_sock_key key;
	__u64 value = (__u64)fd;

	if (!w->sockmap)
		return;
	if (sock_key_of_fd(fd, w->netns_cookie, &key)) {
		STAT_INC(wk, sockmap_insert_fail);
		return;
	}
	/* A fallback mark of an earlier connection with this tuple would pin us to TCP. */
	if (wk->p->cfg.msg_fallback_fd >= 0)
		bpf_map_delete_elem(wk->p->cfg.msg_fallback_fd, &key);
	if (bpf_map_update_elem(wk->p->cfg.sock_pairs_fd, &key, &value, BPF_ANY) == 0) {
		STAT_INC(wk, sockmap_inserted);
	} else if (errno == EBUSY) {
		/* sockops got there first (shuntd runs below --cgroup, as in Kubernetes). */
		STAT_INC(wk, sockmap_present);
	} else {
		/* EOPNOTSUPP: the peer already closed (only established sockets go in). */
		STAT_INC(wk, sockmap_insert_fail);
		pr_debug("%s: cannot insert socket into sock_pairs: %m", w->name);
	}
}

static int upstream_open(struct worker *wk, struct conn *c)
{
	int fd;

	/* The cluster's max_connections, over every worker (Envoy's TCP pool: UO). */
	if (!px_cb_acquire(c->cluster, PX_CB_CX, false, &c->cb_cx))
		return -EBUSY;
	fd = upstream_connect(wk, c->w, c->cluster, &c->up_host, c->up_host_port, &c->bound_local);
	if (fd < 0)
		return fd;
	c->up.fd = fd;
	return epoll_add_side(wk, &c->up);
}

static void conn_open(struct worker *wk, struct conn *c)
{
	list_del_init(&c->tnode);
	c->state = CONN_OPEN;
	c->last_activity = wk->now_ms;
	/* Bound to 127.0.0.6/::6: the upstream is the app in this pod, an in-pod hop. TLS bytes
	 * are OpenSSL's to read and write, so a TLS socket never goes into the SOCKHASH. */
	if (c->bound_local && !c->up.tls.ssl)
		sockmap_insert(wk, c->w, c->up.fd);
	conn_pump(wk, c);
}

static void upstream_tls_step(struct worker *wk, struct conn *c)
{
	enum tlsio_hs r = tlsio_handshake(&c->up.tls);

	if (r == TLSIO_HS_AGAIN)
		return;
	tlsio_count(wk, &c->up.tls, r);
	if (r == TLSIO_HS_FAILED) {
		STAT_INC(wk, upstream_cx_connect_fail);
		c->failure = c->up.tls.err;
		conn_fail(wk, c, "UF", "upstream_connect_error", true);
		return;
	}
	conn_open(wk, c);
}

static void upstream_connected(struct worker *wk, struct conn *c)
{
	int err = upstream_connect_result(c->up.fd);

	if (err) {
		STAT_INC(wk, upstream_cx_connect_fail);
		c->failure = strerror(-err);
		conn_fail(wk, c, "UF", "upstream_connect_error", true);
		return;
	}
	if (!c->up_transport || !c->up_transport->tls) {
		conn_open(wk, c);
		return;
	}
	/* The handshake runs on the connect deadline, which is still armed. */
	if (tlsio_start(&c->up.tls, c->up_transport->tls, c->up.fd, c->up_transport->sni)) {
		conn_fail(wk, c, "UF", "out_of_memory", true);
		return;
	}
	c->state = CONN_TLS_UP;
	upstream_tls_step(wk, c);
}

/* ---- accepting ------------------------------------------------------------------------------ */

static struct conn *conn_new(struct worker *wk, struct listener *l, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->down.h.type = c->up.h.type = EV_CONN;
	c->down.c = c->up.c = c;
	c->down.fd = fd;
	c->up.fd = -1;
	c->w = l->w;
	workload_get(c->w);
	c->snap = wk->snap;
	px_snapshot_get(c->snap);
	c->endpoint = -1;
	c->idle_timeout_ms = wk->p->cfg.idle_timeout_ms;
	c->kind = l->kind;
	c->state = CONN_CONNECTING;
	c->flags = "-";
	c->details = "-";
	c->failure = "-";
	list_init(&c->tnode);
	list_init(&c->rnode);
	list_add_tail(&c->node, &wk->conns);
	c->start_ms = c->last_activity = wk->now_ms;
	clock_gettime(CLOCK_REALTIME, &c->start_real);
	STAT_INC(wk, downstream_cx_total);
	STAT_INC(wk, downstream_cx_active);
	if (c->kind == PROXY_LISTENER_OUTBOUND)
		STAT_INC(wk, outbound_cx_total);
	else
		STAT_INC(wk, inbound_cx_total);
	return c;
}

/* Where the connection wanted to go. Outbound: the original destination recorded by capture.
 * Inbound: the address the SYN was sent to (sk_lookup keeps it as our local address), or
 * SO_ORIGINAL_DST when iptables REDIRECT rewrote it to 15006. */
static int conn_original_dst(struct worker *wk, struct conn *c, struct shunt_addr *dst, __u16 *port)
{
	struct shunt_sock_key key;
	int err;

	err = sock_key_of_fd(c->down.fd, c->w->netns_cookie, &key);
	if (err)
		return err;
	c->down_remote = key.remote;
	c->down_remote_port = (__u16)key.remote_port;
	c->down_local = key.local;
	c->down_local_port = (__u16)key.local_port;

	if (c->kind == PROXY_LISTENER_BOUND ||
	    (c->kind == PROXY_LISTENER_INBOUND && key.local_port != SHUNT_PORT_INBOUND)) {
		*dst = key.local;
		*port = (__u16)key.local_port;
		return 0;
	}
	err = orig_dst_lookup(wk->p->cfg.orig_dst_map_fd, c->down.fd, &key, dst, port);
	if (err)
		return err;
	/* A connection made straight to a proxy port would loop back into the proxy. */
	if (*port == SHUNT_PORT_OUTBOUND || *port == SHUNT_PORT_INBOUND)
		return -ELOOP;
	c->down_local = *dst;
	c->down_local_port = *port;
	return 0;
}

static const char *pick_weighted_cluster(struct worker *wk, const struct px_tcp_proxy *tp)
{
	uint64_t r;

	if (tp->cluster)
		return tp->cluster;
	r = px_hash_bytes(&wk->now_ms, sizeof(wk->now_ms)) ^ (uint64_t)(uintptr_t)tp ^
	    wk->stats.downstream_cx_total * 0x9E3779B97F4A7C15ULL;
	r %= tp->total_weight;
	for (uint32_t i = 0; i < tp->nweighted; i++) {
		if (r < tp->weighted[i].weight)
			return tp->weighted[i].cluster;
		r -= tp->weighted[i].weight;
	}
	return tp->weighted[tp->nweighted - 1].cluster;
}

/* The filter chain runs the HTTP connection manager: the HTTP/1 codec takes the socket over
 * and this TCP connection ends without a log line of its own. Returns 1 (handed over). */
static void conn_proceed(struct worker *wk, struct conn *c);

/* Over TLS the codec is what ALPN chose (h2: HTTP/2 at once); in the clear, HTTP/1 unless the
 * h2c preface shows up. */
static bool http_over_h2(const struct conn *c, const struct px_filter_chain *fc)
{
	char alpn[32];

	if (fc->http.codec != PX_CODEC_AUTO)
		return fc->http.codec == PX_CODEC_HTTP2;
	return c->down.tls.ssl && !strcmp(tlsio_alpn(&c->down.tls, alpn, sizeof(alpn)), "h2");
}

static int conn_to_http(struct worker *wk, struct conn *c, const struct px_filter_chain *fc,
			const struct shunt_addr *orig, __u16 orig_port)
{
	struct tlsio *tls = c->down.tls.ssl ? &c->down.tls : NULL;
	int err =
		tls && http_over_h2(c, fc)
			? h2_down_start(wk, c->down.fd, c->w, c->snap, c->listener, fc,
					&c->down_remote, c->down_remote_port, orig, orig_port, NULL,
					0, tls)
			: h1_down_start(wk, c->down.fd, c->w, c->snap, c->listener, fc,
					&c->down_remote, c->down_remote_port, orig, orig_port, tls);

	if (err) {
		c->flags = "-";
		c->details = "http_setup_failed";
		return -1;
	}
	c->down.fd = -1;
	c->handed_off = true;
	return 1;
}

static struct px_conn_info conn_info(const struct conn *c)
{
	struct px_conn_info ci = {.dst = c->orig,
				  .dst_port = c->orig_port,
				  .src = c->down_remote,
				  .src_port = c->down_remote_port};

	if (c->sniffed) {
		ci.transport_protocol = c->sniffed->transport;
		ci.server_name = c->sniffed->sni[0] ? c->sniffed->sni : NULL;
		ci.application_protocols = c->sniffed->alpn;
		ci.napplication_protocols = c->sniffed->nalpn;
	}
	return ci;
}

/* The listener that owns the connection, from its snapshot; NULL when none does. */
static const struct px_listener *conn_listener(const struct conn *c)
{
	const struct px_snapshot *s = c->snap;
	struct px_conn_info ci = conn_info(c);

	if (c->kind == PROXY_LISTENER_BOUND)
		return px_listener_bound(s, &ci); /* NULL once a new config dropped it */
	return px_listener_for(
		s, c->kind == PROXY_LISTENER_OUTBOUND ? s->virtual_outbound : s->virtual_inbound,
		&ci);
}

#define ROUTE_TLS_HANDSHAKE 2 /* conn_route: the chain's TLS handshake runs first */

static void downstream_tls_step(struct worker *wk, struct conn *c)
{
	enum tlsio_hs r = tlsio_handshake(&c->down.tls);

	if (r == TLSIO_HS_AGAIN)
		return;
	tlsio_count(wk, &c->down.tls, r);
	if (r == TLSIO_HS_FAILED) {
		c->failure = c->down.tls.err;
		conn_fail(wk, c, "-", "tls_handshake_failed", false);
		return;
	}
	list_del_init(&c->tnode);
	c->state = CONN_CONNECTING;
	c->last_activity = wk->now_ms;
	conn_proceed(wk, c);
}

/* The chain terminates TLS: handshake first (the ClientHello may be there already), then route
 * again with the connection decrypted. A chain whose secret has not arrived is not ready. */
static int downstream_tls_start(struct worker *wk, struct conn *c, const struct px_filter_chain *fc)
{
	if (!fc->transport.tls) {
		STAT_INC(wk, ssl_secret_not_ready);
		snprintf(c->down.tls.err, sizeof(c->down.tls.err), "TLS_error:secret_not_ready:%s",
			 fc->transport.missing_secret);
		c->failure = c->down.tls.err;
		c->details = "filter_chain_not_ready";
		pr_debug("%s: filter chain %s refused a connection: SDS secret %s has not arrived",
			 c->w->name, fc->name ? fc->name : "-", fc->transport.missing_secret);
		return -1;
	}
	if (tlsio_start(&c->down.tls, fc->transport.tls, c->down.fd, NULL)) {
		c->details = "out_of_memory";
		return -1;
	}
	c->state = CONN_TLS_DOWN;
	c->connect_deadline = wk->now_ms + TLSIO_HANDSHAKE_TIMEOUT_MS;
	list_add_tail(&c->tnode, &wk->connecting);
	downstream_tls_step(wk, c);
	return ROUTE_TLS_HANDSHAKE;
}

/* The cluster's transport for the endpoint picked; a TLS one whose secret has not arrived fails
 * the connection (UF), as a connect failure would. */
static int upstream_transport(struct worker *wk, struct conn *c, const struct px_endpoint *ep)
{
	c->up_transport = ep && ep->transport ? ep->transport : &c->cluster->transport;
	if (!c->up_transport->missing_secret)
		return 0;
	STAT_INC(wk, ssl_secret_not_ready);
	snprintf(c->up.tls.err, sizeof(c->up.tls.err), "TLS_error:secret_not_ready:%s",
		 c->up_transport->missing_secret);
	c->failure = c->up.tls.err;
	c->flags = "UF";
	c->details = "upstream_connect_error";
	return -1;
}

/* The chain's network RBAC filters, in order. Envoy decides ONE_TIME_ON_FIRST_BYTE on the first
 * read; every input it looks at (addresses, SNI, the peer's certificate) is known once the chain
 * is chosen and its TLS handshake done, so the decision is the same made here, and a denied
 * connection never reaches the upstream (or the HCM). true: denied. */
static bool conn_rbac_denied(struct worker *wk, struct conn *c, const struct px_filter_chain *fc)
{
	char principal[PX_RBAC_PRINCIPAL_MAX];
	struct px_rbac_input in = {
		.dst = &c->orig,
		.dst_port = c->orig_port,
		.direct_remote = &c->down_remote,
	};

	in.authenticated = tlsio_peer_principal(&c->down.tls, principal, sizeof(principal));
	in.principal = in.authenticated ? principal : NULL;
	in.sni = c->down.tls.ssl		    ? tlsio_sni(&c->down.tls)
		 : c->sniffed && c->sniffed->sni[0] ? c->sniffed->sni
						    : NULL;
	for (uint32_t i = 0; i < fc->nrbac; i++) {
		const char *policy;
		unsigned bits = px_rbac_check(fc->rbac[i].rbac, &in, &policy);

		PX_RBAC_COUNT(wk, tcp, bits);
		if (bits & PX_RBAC_DENIED) {
			c->rbac_denied = true;
			c->rbac_policy = policy; /* in the snapshot the connection holds */
			c->flags = "-";
			return true;
		}
	}
	return false;
}

/* Filter chain -> cluster -> endpoint, from the connection's snapshot. On failure, sets the
 * Envoy response flag and details and returns -1. */
static int conn_route(struct worker *wk, struct conn *c, const struct shunt_addr *orig,
		      __u16 orig_port)
{
	const struct px_snapshot *s = c->snap;
	struct px_conn_info ci = conn_info(c);
	const struct px_listener *l = c->listener;
	const struct px_filter_chain *fc;
	const char *cluster;

	fc = l ? px_filter_chain_match(l, &ci) : NULL;
	if (!fc) {
		STAT_INC(wk, cx_no_route);
		c->flags = "NR";
		c->details = "filter_chain_not_found";
		return -1;
	}
	c->chain = fc;
	if (px_transport_is_tls(&fc->transport) && !c->down.tls.ssl)
		return downstream_tls_start(wk, c, fc);
	if (fc->nrbac && conn_rbac_denied(wk, c, fc))
		return -1;
	if (fc->kind == PX_NF_HTTP)
		return conn_to_http(wk, c, fc, orig, orig_port);
	if (fc->tcp.idle_timeout_ms)
		c->idle_timeout_ms = fc->tcp.idle_timeout_ms;
	cluster = pick_weighted_cluster(wk, &fc->tcp);
	c->cluster = px_cluster_find(s, cluster);
	if (!c->cluster) {
		STAT_INC(wk, cx_no_cluster);
		c->flags = "NC";
		c->details = "cluster_not_found";
		return -1;
	}
	if (c->cluster->type == PX_CLUSTER_ORIGINAL_DST) {
		c->up_host = *orig;
		c->up_host_port = orig_port;
		return upstream_transport(wk, c, NULL);
	}
	struct px_lb_state *lb = worker_lb(wk, s, c->cluster);
	int ep = px_lb_pick(c->cluster, lb, NULL, NULL, 0);

	if (ep < 0) {
		STAT_INC(wk, cx_no_healthy_upstream);
		c->flags = "UH";
		c->details = "no_healthy_upstream";
		return -1;
	}
	c->endpoint = ep;
	px_lb_acquire(lb, c->cluster, (uint32_t)ep);
	c->up_host = c->cluster->endpoints[ep].addr;
	c->up_host_port = c->cluster->endpoints[ep].port;
	return upstream_transport(wk, c, &c->cluster->endpoints[ep]);
}

/* ---- listener filters ----------------------------------------------------------------------- */

/* Whether each inspector runs for this connection's destination port (filter_disabled). */
static bool inspect_tls(const struct conn *c)
{
	return c->listener->tls_inspector &&
	       !px_filter_disabled_for(&c->listener->tls_inspector_off, c->orig_port);
}

static bool inspect_http(const struct conn *c)
{
	return c->listener->http_inspector &&
	       !px_filter_disabled_for(&c->listener->http_inspector_off, c->orig_port);
}

enum inspect_result {
	INSPECT_DONE,
	INSPECT_MORE,
	INSPECT_TOO_LARGE,
};

static void sniffed_set_tls(struct conn_sniffed *sn, const struct px_client_hello *ch)
{
	size_t used = 0;

	sn->transport = "tls";
	/* SNI is matched case-insensitively; keep it as sent. */
	memcpy(sn->sni, ch->sni.p ? (const char *)ch->sni.p : "", ch->sni.len);
	sn->sni[ch->sni.len] = 0;
	for (uint32_t i = 0; i < ch->nalpn; i++) {
		char *d = sn->alpn_buf + used;

		memcpy(d, ch->alpn[i].p, ch->alpn[i].len);
		d[ch->alpn[i].len] = 0;
		used += ch->alpn[i].len + 1;
		sn->alpn[sn->nalpn++] = d;
	}
}

/* Runs the listener's inspectors over the bytes peeked so far. Envoy's order: the TLS one
 * first; the HTTP one only looks at connections that are not TLS. */
static enum inspect_result inspect_bytes(struct worker *wk, struct conn *c, const uint8_t *buf,
					 size_t n, bool full)
{
	static _Thread_local uint8_t scratch[PX_TLS_HELLO_MAX];
	struct conn_sniffed *sn = c->sniffed;
	bool tls = false;

	if (inspect_tls(c)) {
		struct px_client_hello ch;
		int rc = px_tls_client_hello(buf, n, scratch, &ch);

		if (rc == PX_SNIFF_INCOMPLETE)
			return full ? INSPECT_TOO_LARGE : INSPECT_MORE;
		if (rc > 0) {
			STAT_INC(wk, tls_inspector_tls_found);
			sniffed_set_tls(sn, &ch);
			tls = true;
		} else {
			STAT_INC(wk, tls_inspector_tls_not_found);
		}
	}
	if (inspect_http(c) && !tls) {
		enum px_http_proto p;
		int rc = px_http_sniff(buf, n, &p);

		if (rc == PX_SNIFF_INCOMPLETE && !full)
			return INSPECT_MORE;
		if (rc > 0) {
			STAT_INC(wk, http_inspector_found);
			sn->alpn[0] = px_http_proto_name(p);
			sn->nalpn = 1;
		} else {
			STAT_INC(wk, http_inspector_not_found);
		}
	}
	return INSPECT_DONE;
}

static void inspect_finish(struct worker *wk, struct conn *c)
{
	list_del_init(&c->tnode);
	c->state = CONN_CONNECTING;
	conn_proceed(wk, c);
}

/* Peeks (never reads) what has arrived and decides, or waits for more. */
static void inspect_run(struct worker *wk, struct conn *c)
{
	uint8_t buf[INSPECT_PEEK_MAX];
	ssize_t n = recv(c->down.fd, buf, sizeof(buf), MSG_PEEK);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		STAT_INC(wk, listener_filters_eof);
		c->failure = n < 0 ? strerror(errno) : "peer closed";
		conn_fail(wk, c, "-", "listener_filters_eof", false);
		return;
	}
	c->last_activity = wk->now_ms;
	switch (inspect_bytes(wk, c, buf, (size_t)n, (size_t)n == sizeof(buf))) {
	case INSPECT_MORE:
		/* The peer stopped sending: nothing more will come to decide on. */
		if (c->down.rdhup) {
			STAT_INC(wk, listener_filters_eof);
			conn_fail(wk, c, "-", "listener_filters_eof", false);
		}
		return;
	case INSPECT_TOO_LARGE:
		STAT_INC(wk, tls_inspector_client_hello_too_large);
		conn_fail(wk, c, "-", "client_hello_too_large", true);
		return;
	case INSPECT_DONE:
		inspect_finish(wk, c);
		return;
	}
}

static void inspect_start(struct worker *wk, struct conn *c)
{
	uint32_t t = c->listener->listener_filters_timeout_ms;

	c->sniffed = calloc(1, sizeof(*c->sniffed));
	if (!c->sniffed) {
		conn_fail(wk, c, "-", "out_of_memory", true);
		return;
	}
	c->state = CONN_INSPECTING;
	c->connect_deadline = t ? wk->now_ms + t : UINT64_MAX;
	list_add_tail(&c->tnode, &wk->connecting);
	inspect_run(wk, c);
}

/* The listener filters ran out of time: match on what is known, or close (Envoy's default). */
static void inspect_timeout(struct worker *wk, struct conn *c)
{
	STAT_INC(wk, listener_filters_timeout);
	if (c->listener->continue_on_listener_filters_timeout) {
		inspect_finish(wk, c);
		return;
	}
	conn_fail(wk, c, "-", "listener_filters_timeout", true);
}

static void conn_start(struct worker *wk, struct conn *c)
{
	int err;

	upstream_set_nodelay(c->down.fd);
	err = epoll_add_side(wk, &c->down);
	if (err) {
		conn_fail(wk, c, "-", "epoll_error", true);
		return;
	}
	struct shunt_addr orig;
	__u16 orig_port;

	err = conn_original_dst(wk, c, &orig, &orig_port);
	if (err) {
		STAT_INC(wk, cx_no_orig_dst);
		c->failure = strerror(-err);
		conn_fail(wk, c, "NR", "no_original_destination", true);
		return;
	}
	c->orig = orig;
	c->orig_port = orig_port;
	c->listener = conn_listener(c);
	/* A listener that may terminate TLS keeps the socket out of the SOCKHASH: OpenSSL reads
	 * and writes it, and sk_msg must not carry its records past us. */
	if (c->kind == PROXY_LISTENER_OUTBOUND && !px_listener_terminates_tls(c->listener))
		sockmap_insert(wk, c->w, c->down.fd);
	if (c->listener && (inspect_tls(c) || inspect_http(c))) {
		inspect_start(wk, c);
		return;
	}
	conn_proceed(wk, c);
}

/* After the listener filters (if any): choose the chain and connect upstream. */
static void conn_proceed(struct worker *wk, struct conn *c)
{
	struct shunt_addr orig = c->orig;
	__u16 orig_port = c->orig_port;
	int err;

	err = conn_route(wk, c, &orig, orig_port);
	if (err == ROUTE_TLS_HANDSHAKE)
		return;
	if (err) {
		conn_close(wk, c, err < 0);
		return;
	}
	err = upstream_open(wk, c);
	if (err == -EBUSY) {
		STAT_INC(wk, upstream_cx_overflow);
		conn_fail(wk, c, "UO", "upstream_overflow", true);
		return;
	}
	if (err) {
		STAT_INC(wk, upstream_cx_connect_fail);
		c->failure = strerror(-err);
		conn_fail(wk, c, "UF", "upstream_connect_error", true);
		return;
	}
	c->connect_deadline =
		wk->now_ms + (c->cluster->connect_timeout_ms ? c->cluster->connect_timeout_ms
							     : wk->p->cfg.connect_timeout_ms);
	list_add_tail(&c->tnode, &wk->connecting);
}

void tcp_accept(struct worker *wk, struct listener *l)
{
	for (int i = 0; i < WORKER_ACCEPT_BUDGET; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				STAT_INC(wk, accept_fail);
				pr_warn("worker %d: accept on %s: %m", wk->id, l->w->name);
			}
			return;
		}
		c = conn_new(wk, l, fd);
		if (!c) {
			close(fd);
			STAT_INC(wk, accept_fail);
			continue;
		}
		conn_start(wk, c);
	}
}

void tcp_on_event(struct worker *wk, struct ev_handler *h, uint32_t events)
{
	struct conn_side *s = (struct conn_side *)h;
	struct conn *c = s->c;

	if (c->state == CONN_CLOSED)
		return; /* closed earlier in this batch */
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		s->readable = true;
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		s->rdhup = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		s->writable = true;
	tlsio_on_events(&s->tls, events, &s->readable, &s->writable);
	switch (c->state) {
	case CONN_INSPECTING:
		if (s == &c->down && s->readable)
			inspect_run(wk, c);
		return;
	case CONN_TLS_DOWN:
		if (s == &c->down)
			downstream_tls_step(wk, c);
		return;
	case CONN_CONNECTING:
		if (s == &c->up && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			upstream_connected(wk, c);
		return;
	case CONN_TLS_UP:
		if (s == &c->up)
			upstream_tls_step(wk, c);
		return;
	default:
		break;
	}
	conn_pump(wk, c);
}

/* The worker's next TCP drain deadline is at t at the latest. */
static void drain_due_at(struct worker *wk, uint64_t t)
{
	if (!wk->tcp_drain_due || t < wk->tcp_drain_due)
		wk->tcp_drain_due = t;
}

void tcp_timers(struct worker *wk, bool idle_sweep)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &wk->connecting) {
		struct conn *c = list_entry(pos, struct conn, tnode);

		if (wk->now_ms < c->connect_deadline)
			continue;
		if (c->state == CONN_INSPECTING) {
			inspect_timeout(wk, c);
			continue;
		}
		if (c->state == CONN_TLS_DOWN) {
			STAT_INC(wk, ssl_handshake_timeout);
			c->failure = "TLS_error:handshake_timeout";
			conn_fail(wk, c, "-", "tls_handshake_timeout", true);
			continue;
		}
		STAT_INC(wk, upstream_cx_connect_timeout);
		STAT_INC(wk, upstream_cx_connect_fail);
		c->failure = "connect timeout";
		conn_fail(wk, c, "UF", "upstream_connect_timeout", true);
	}
	if (wk->tcp_drain_due && wk->now_ms >= wk->tcp_drain_due) {
		wk->tcp_drain_due = 0;
		list_for_each_safe (pos, tmp, &wk->conns) {
			struct conn *c = list_entry(pos, struct conn, node);

			if (!c->drain_deadline)
				continue;
			if (wk->now_ms < c->drain_deadline) {
				drain_due_at(wk, c->drain_deadline);
				continue;
			}
			/* Raw TCP cannot be drained politely: the drain time is all it gets. */
			STAT_INC(wk, listener_drain_cx_closed);
			conn_fail(wk, c, "-", "listener_drained", false);
		}
	}
	if (!idle_sweep)
		return;
	list_for_each_safe (pos, tmp, &wk->conns) {
		struct conn *c = list_entry(pos, struct conn, node);

		if (c->state != CONN_OPEN || wk->now_ms - c->last_activity < c->idle_timeout_ms)
			continue;
		STAT_INC(wk, cx_idle_timeout);
		conn_fail(wk, c, "SI", c->tunnel ? "stream_idle_timeout" : "idle_timeout", false);
	}
}

void tcp_drain_listeners(struct worker *wk)
{
	struct list_head *pos, *tmp;

	list_for_each_safe (pos, tmp, &wk->conns) {
		struct conn *c = list_entry(pos, struct conn, node);

		if (c->drain_deadline || !c->listener || c->snap == wk->snap ||
		    px_listener_keeps(wk->snap, c->listener, c->chain))
			continue;
		STAT_INC(wk, listener_drain_cx);
		c->drain_deadline = wk->now_ms + wk->p->cfg.drain_time_ms;
		drain_due_at(wk, c->drain_deadline);
	}
}

/* ---- tunnels handed over by the HTTP codecs ------------------------------------------------- */

/* The socket sits in the epoll set under its codec's handler: point it at this side. Edges may
 * have come and gone while the codec held it, so assume both ways ready until EAGAIN says not. */
static int tunnel_side(struct worker *wk, struct conn_side *s)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
				 .data.ptr = &s->h};

	if (epoll_ctl(wk->epfd, EPOLL_CTL_MOD, s->fd, &ev) &&
	    epoll_ctl(wk->epfd, EPOLL_CTL_ADD, s->fd, &ev))
		return -errno;
	s->readable = s->writable = true;
	return 0;
}

/* The end's TLS state becomes the side's. */
static void tunnel_take_tls(struct conn_side *side, struct tunnel_end *e)
{
	side->tls = e->tls;
	memset(&e->tls, 0, sizeof(e->tls));
}

static void tunnel_end_drop(struct tunnel_end *e)
{
	tlsio_free(&e->tls);
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
	strbuf_release(&e->rx);
	strbuf_release(&e->tx);
}

/* What goes from one end to the other first: what was queued for dst, then what src sent past
 * its head. Moves the strbufs. */
static int tunnel_preload(struct pipe_dir *d, struct tunnel_end *src, struct tunnel_end *dst)
{
	d->pre = dst->tx;
	strbuf_init(&dst->tx);
	strbuf_add(&d->pre, src->rx.buf ? src->rx.buf : "", src->rx.len);
	d->bytes = src->rx.len;
	d->src_eof = src->eof;
	strbuf_release(&src->rx);
	return d->pre.err ? -ENOMEM : 0;
}

int tcp_tunnel_start(struct worker *wk, struct tunnel_end *down, struct tunnel_end *up,
		     const struct tunnel_desc *d)
{
	struct conn *c = calloc(1, sizeof(*c));
	int err;

	if (!c) {
		tunnel_end_drop(down);
		tunnel_end_drop(up);
		free(d->log);
		return -ENOMEM;
	}
	c->down.h.type = c->up.h.type = EV_CONN;
	c->down.c = c->up.c = c;
	c->down.fd = down->fd;
	c->up.fd = up->fd;
	down->fd = up->fd = -1;
	tunnel_take_tls(&c->down, down);
	tunnel_take_tls(&c->up, up);
	c->w = d->w;
	workload_get(c->w);
	c->snap = d->snap;
	px_snapshot_get(c->snap);
	c->listener = d->listener;
	c->chain = d->chain;
	c->endpoint = -1;
	c->idle_timeout_ms = d->idle_timeout_ms ? d->idle_timeout_ms : wk->p->cfg.idle_timeout_ms;
	c->kind = PROXY_LISTENER_BOUND;
	c->tunnel = true;
	c->http_log = d->log;
	c->state = CONN_OPEN;
	c->flags = c->details = c->failure = "-";
	list_init(&c->tnode);
	list_init(&c->rnode);
	list_add_tail(&c->node, &wk->conns);
	c->start_ms = d->start_ms;
	c->last_activity = wk->now_ms;
	STAT_INC(wk, http_tunnel_total);
	STAT_INC(wk, http_tunnel_active);
	err = tunnel_preload(&c->d2u, down, up);
	if (!err)
		err = tunnel_preload(&c->u2d, up, down);
	if (err) {
		tunnel_end_drop(down);
		tunnel_end_drop(up);
		conn_fail(wk, c, "-", "out_of_memory", true);
		return err;
	}
	err = tunnel_side(wk, &c->down);
	if (!err)
		err = tunnel_side(wk, &c->up);
	if (err) {
		conn_fail(wk, c, "-", "epoll_error", true);
		return err;
	}
	conn_pump(wk, c);
	return 0;
}
