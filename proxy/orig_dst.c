/* Original-destination lookup for the outbound listener. */
#include "proxy/orig_dst.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <string.h>

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

int orig_dst_lookup(int map_fd, int fd, const struct shunt_sock_key *accepted,
		    struct shunt_addr *addr, __u16 *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct shunt_orig_dst od;

	if (map_fd >= 0) {
		struct shunt_sock_key app;

		/* The map is keyed by the app's end: our tuple reversed. */
		sock_key_reverse(&app, accepted);
		if (bpf_map_lookup_elem(map_fd, &app, &od) == 0) {
			*addr = od.addr;
			*port = od.port;
			return 0;
		}
	}
	memset(&ss, 0, sizeof(ss));
	if (addr_is_v4(&accepted->local)) {
		if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len) == 0)
			return addr_from_sockaddr(addr, port, (struct sockaddr *)&ss);
	} else {
		if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len) == 0)
			return addr_from_sockaddr(addr, port, (struct sockaddr *)&ss);
	}
	return -ENOENT;
}
