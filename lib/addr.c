/* Conversions between sockaddrs, text and shunt's normalized 16-byte addresses. */
#include "lib/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void addr_from_v4(struct shunt_addr *a, const struct in_addr *in)
{
	a->ip[0] = 0;
	a->ip[1] = 0;
	a->ip[2] = htonl(0xffff);
	a->ip[3] = in->s_addr;
}

void addr_from_v6(struct shunt_addr *a, const struct in6_addr *in6)
{
	memcpy(a->ip, in6->s6_addr, sizeof(a->ip));
}

bool addr_is_v4(const struct shunt_addr *a)
{
	return a->ip[0] == 0 && a->ip[1] == 0 && a->ip[2] == htonl(0xffff);
}

int addr_from_sockaddr(struct shunt_addr *a, __u16 *port, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		addr_from_v4(a, &sin->sin_addr);
		*port = ntohs(sin->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		addr_from_v6(a, &sin6->sin6_addr);
		*port = ntohs(sin6->sin6_port);
		return 0;
	}
	return -EAFNOSUPPORT;
}

socklen_t addr_to_sockaddr(const struct shunt_addr *a, __u16 port, int family,
			   struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET && addr_is_v4(a)) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = a->ip[3];
		return sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	memcpy(sin6->sin6_addr.s6_addr, a->ip, sizeof(a->ip));
	return sizeof(*sin6);
}

const char *addr_fmt(const struct shunt_addr *a, char *buf, size_t len)
{
	if (addr_is_v4(a))
		inet_ntop(AF_INET, &a->ip[3], buf, (socklen_t)len);
	else
		inet_ntop(AF_INET6, a->ip, buf, (socklen_t)len);
	return buf;
}

const char *addr_port_fmt(const struct shunt_addr *a, __u16 port, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	addr_fmt(a, ip, sizeof(ip));
	snprintf(buf, len, addr_is_v4(a) ? "%s:%u" : "[%s]:%u", ip, port);
	return buf;
}

int addr_parse(struct shunt_addr *a, const char *s)
{
	struct in_addr in;
	struct in6_addr in6;

	if (inet_pton(AF_INET, s, &in) == 1) {
		addr_from_v4(a, &in);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &in6) == 1) {
		addr_from_v6(a, &in6);
		return 0;
	}
	return -EINVAL;
}

int sock_key_of_fd(int fd, __u64 netns, struct shunt_sock_key *key)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	__u16 port;
	int err;

	memset(key, 0, sizeof(*key));
	key->netns = netns;
	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return -errno;
	err = addr_from_sockaddr(&key->local, &port, (struct sockaddr *)&ss);
	if (err)
		return err;
	key->local_port = port;
	len = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &len))
		return -errno;
	err = addr_from_sockaddr(&key->remote, &port, (struct sockaddr *)&ss);
	if (err)
		return err;
	key->remote_port = port;
	return 0;
}

void sock_key_reverse(struct shunt_sock_key *out, const struct shunt_sock_key *in)
{
	struct shunt_sock_key tmp = *in;

	out->netns = tmp.netns;
	out->local = tmp.remote;
	out->remote = tmp.local;
	out->local_port = tmp.remote_port;
	out->remote_port = tmp.local_port;
}

int sock_listen(const struct shunt_addr *a, __u16 port, int backlog)
{
	struct sockaddr_storage ss;
	int family = addr_is_v4(a) ? AF_INET : AF_INET6, one = 1, fd;
	socklen_t len = addr_to_sockaddr(a, port, family, &ss);

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, backlog)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}
