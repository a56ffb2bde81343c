/* shuntd's control side: set up the data path, keep pods enrolled, serve the admin API, and
 * take everything down again on SIGTERM. */
#ifndef SHUNT_AGENT_AGENT_H
#define SHUNT_AGENT_AGENT_H

#include <linux/types.h>
#include <stdbool.h>

#define AGENT_MAX_PORTS 64

struct ipt_config;

enum agent_mode {
	AGENT_MODE_AUTO,
	AGENT_MODE_EBPF,
	AGENT_MODE_IPTABLES
};

struct agent_opts {
	const char *cgroup; /* NULL: the kubepods cgroup if there is one */
	const char *bpffs_dir;
	const char *run_dir;
	const char *config;
	/* Envoy's --service-node/--service-cluster/--service-zone: override the bootstrap's node. */
	const char *service_node, *service_cluster, *service_zone;
	enum agent_mode mode;
	const char *admin_addr;
	int admin_port; /* 0 disables */
	int workers;
	bool fail_closed;
	bool sockmap;
	const char *access_log; /* path, "-" for stdout, NULL for none */
	bool access_log_json;
	unsigned drain_ms;
	unsigned drain_time_ms; /* connections of a removed or changed listener (--drain-time-s) */
	unsigned connect_timeout_ms;
	unsigned idle_timeout_ms;
	__u32 mark;
	__u16 exclude_in[AGENT_MAX_PORTS];  /* 0-terminated */
	__u16 exclude_out[AGENT_MAX_PORTS]; /* 0-terminated */
	/* The Istio capture settings for the iptables paths (istio-iptables flags; the injected
	 * sidecar's defaults unless given). The agent adds the proxy's mark exemption and the
	 * excluded ports above, and captures with it only the paths eBPF does not serve. */
	const struct ipt_config *ipt;
	int ipt_backend; /* enum ipt_backend */
};

/* Runs until SIGTERM/SIGINT. Returns the process exit status: 0 after a clean stop, 1 when
 * something needed is missing or fails (one line on stderr says what). */
int agent_run(const struct agent_opts *o);
const char *agent_mode_name(enum agent_mode m);

#endif
