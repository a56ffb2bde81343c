/* Opening an upstream socket the way every proxy path must: inside the pod's netns (so the
 * source is the pod's address), marked so that capture never takes it again, bound to the
 * cluster's upstream_bind_config, connecting without blocking. */
#ifndef SHUNT_PROXY_UPSTREAM_H
#define SHUNT_PROXY_UPSTREAM_H

#include <stdbool.h>

#include "lib/addr.h"
#include "proxy/config.h"

struct worker;
struct proxy_workload;

/* Returns the fd (connect in progress) or -errno; *bound_local tells whether it was bound to
 * the cluster's source address (an in-pod hop worth short-circuiting). */
int upstream_connect(struct worker *wk, const struct proxy_workload *w, const struct px_cluster *c,
		     const struct shunt_addr *dst, __u16 port, bool *bound_local);
/* 0 once a non-blocking connect completed, else the error (-errno). */
int upstream_connect_result(int fd);
void upstream_set_nodelay(int fd);

#endif
