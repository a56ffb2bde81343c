/* Addresses in shunt's normalized form (struct shunt_addr: 16 bytes, IPv4 as ::ffff:a.b.c.d). */
#ifndef SHUNT_LIB_ADDR_H
#define SHUNT_LIB_ADDR_H

#include <linux/types.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "bpf/lib/shunt_maps.h"

/* "255.255.255.255:65535" and "[ffff:...:ffff]:65535" both fit. */
#define ADDR_STRLEN 56

void addr_from_v4(struct shunt_addr *a, const struct in_addr *in);
void addr_from_v6(struct shunt_addr *a, const struct in6_addr *in6);
bool addr_is_v4(const struct shunt_addr *a);
/* Fills *a and *port (host order) from a sockaddr of either family; -EAFNOSUPPORT otherwise. */
int addr_from_sockaddr(struct shunt_addr *a, __u16 *port, const struct sockaddr *sa);
/* Builds a sockaddr for connecting to (a, port): sockaddr_in when v4 and family is AF_INET,
 * sockaddr_in6 (v4-mapped if needed) when family is AF_INET6. Returns its length. */
socklen_t addr_to_sockaddr(const struct shunt_addr *a, __u16 port, int family,
			   struct sockaddr_storage *ss);
/* "10.0.0.2" / "fd00::2"; with port: "10.0.0.2:80" / "[fd00::2]:80". */
const char *addr_fmt(const struct shunt_addr *a, char *buf, size_t len);
const char *addr_port_fmt(const struct shunt_addr *a, __u16 port, char *buf, size_t len);
/* Parses "10.0.0.2" or "fd00::2" into *a; -EINVAL if neither. */
int addr_parse(struct shunt_addr *a, const char *s);

/* Key of fd's connection from fd's own side: (netns, local, remote). */
int sock_key_of_fd(int fd, __u64 netns, struct shunt_sock_key *key);
void sock_key_reverse(struct shunt_sock_key *out, const struct shunt_sock_key *in);
/* A non-blocking listening TCP socket on (a, port), in the caller's netns: AF_INET for IPv4,
 * AF_INET6 (v6-only) otherwise, SO_REUSEADDR. The fd, or -errno. */
int sock_listen(const struct shunt_addr *a, __u16 port, int backlog);

#endif
