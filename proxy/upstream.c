/* Upstream sockets: created in the pod's netns, marked, bound, connecting. */
#include "proxy/upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/netns.h"
#include "proxy/worker.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

void upstream_set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int upstream_connect(struct worker *wk, const struct proxy_workload *w, const struct px_cluster *c,
		     const struct shunt_addr *dst, __u16 port, bool *bound_local)
{
	struct sockaddr_storage ss;
	int family = addr_is_v4(dst) ? AF_INET : AF_INET6;
	socklen_t len = addr_to_sockaddr(dst, port, family, &ss);
	__u32 mark = wk->p->cfg.mark;
	int fd, one = 1, err;

	*bound_local = false;
	fd = netns_socket_home(wk->home_netns_fd, w->netns_fd, family,
			       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	if (mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)))
		goto fail;
	upstream_set_nodelay(fd);
	if (family == AF_INET ? c->has_bind4 : c->has_bind6) {
		/* upstream_bind_config: Istio's inbound clusters reach the app from 127.0.0.6 (::6),
		 * which capture lets through. */
		struct sockaddr_storage src;
		socklen_t slen = addr_to_sockaddr(family == AF_INET ? &c->bind4 : &c->bind6, 0,
						  family, &src);

		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, slen))
			goto fail;
		*bound_local = true;
	}
	if (connect(fd, (struct sockaddr *)&ss, len) && errno != EINPROGRESS)
		goto fail;
	return fd;
fail:
	err = -errno;
	close(fd);
	return err;
}

int upstream_connect_result(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		return -errno;
	return -err;
}
