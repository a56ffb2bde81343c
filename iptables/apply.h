/* Loads and removes the Istio rule set inside one pod's network namespace, all or nothing. */
#ifndef SHUNT_IPTABLES_APPLY_H
#define SHUNT_IPTABLES_APPLY_H

#include <stddef.h>
#include <sys/types.h>

#include "iptables/rules.h"

#define IPT_LOCK_WAIT_SECONDS 10 /* how long the legacy back-end waits for the xtables lock */

/* Which iptables binaries run: whatever iptables-restore is on this machine (Debian's
 * alternatives), or iptables-nft-* / iptables-legacy-* explicitly. */
enum ipt_backend {
	IPT_BACKEND_DEFAULT,
	IPT_BACKEND_NFT,
	IPT_BACKEND_LEGACY
};

/* "default" (or "auto"), "nft", "legacy". Returns 0 or -EINVAL. */
int ipt_backend_parse(const char *name, enum ipt_backend *be);
const char *ipt_backend_name(enum ipt_backend be);

/* Opens /proc/PID/ns/net. Refuses (-EPERM) the namespace of the caller and of pid 1: the
 * host's tables are never touched. Returns the fd (O_CLOEXEC) or -errno with err filled. */
int ipt_netns_open(pid_t pid, char *err, size_t errlen);

/* Loads the rules of cfg (IPv4, and IPv6 when cfg->ipv6) with iptables-restore --noflush run
 * inside netns_fd. All or nothing: the tables it touches are saved first and restored if any
 * part fails, so a failing IPv6 block also takes the IPv4 one back. Refuses (-EEXIST) a netns
 * that already has ISTIO_* chains. Returns 0, or -errno with a one-line reason in err. */
int ipt_apply_netns(int netns_fd, const struct ipt_config *cfg, enum ipt_backend be, char *err,
		    size_t errlen);

/* Removes what apply added, per family that has ISTIO_* chains: cfg's rules in built-in chains
 * that do not jump to an ISTIO_* chain (only those present), every rule jumping to an ISTIO_*
 * chain from another chain, then the ISTIO_* chains. Other rules stay. Nothing to remove is
 * success. Same all-or-nothing handling as apply. Returns 0 or -errno with err filled. */
int ipt_clean_netns(int netns_fd, const struct ipt_config *cfg, enum ipt_backend be, char *err,
		    size_t errlen);

/* The same for the network namespace of a process. */
int ipt_apply(pid_t pid, const struct ipt_config *cfg, enum ipt_backend be, char *err,
	      size_t errlen);
int ipt_clean(pid_t pid, const struct ipt_config *cfg, enum ipt_backend be, char *err,
	      size_t errlen);

#endif
