/* Where did an accepted connection want to go? From shunt's BPF map or SO_ORIGINAL_DST. */
#ifndef SHUNT_PROXY_ORIG_DST_H
#define SHUNT_PROXY_ORIG_DST_H

#include <linux/types.h>

#include "lib/addr.h"

/* accepted: the key of the proxy's accepted socket (its own view). map_fd: orig_dst_by_tuple
 * or -1. Tries the map (eBPF capture), then SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST (iptables
 * REDIRECT, or shunt's getsockopt program). -ENOENT if neither knows. */
int orig_dst_lookup(int map_fd, int fd, const struct shunt_sock_key *accepted,
		    struct shunt_addr *addr, __u16 *port);

#endif
