/* shuntd: parses flags and hands them to the agent; everything else lives in agent/ and proxy/. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/bootstrap.h"
#include "bpf/lib/shunt_maps.h"
#include "iptables/apply.h"
#include "iptables/rules.h"
#include "lib/log.h"
#include "proxy/proxy.h"

#define EXIT_USAGE   2
#define MAX_PATH_ARG 200 /* room for the pin and socket names appended to path flags */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shuntd [options]\n"
		"  --cgroup PATH            parent cgroup of the pods; programs attach here\n"
		"                           [the kubepods cgroup if present, else required]\n"
		"  --bpffs-dir DIR          where maps and links are pinned [/sys/fs/bpf/shunt]\n"
		"  --run-dir DIR            admin.sock and pid file [/run/shunt]\n"
		"  --config FILE            Envoy-style bootstrap (YAML/JSON)\n"
		"  --service-node ID        node.id sent to the control plane (overrides "
		"--config's)\n"
		"  --service-cluster NAME   node.cluster (overrides --config's)\n"
		"  --service-zone ZONE      node.locality.zone (overrides --config's)\n"
		"  --mode auto|ebpf|iptables  capture mechanism [auto]\n"
		"  --admin-port N           Prometheus + readiness port, 0 disables [15020]\n"
		"  --admin-address ADDR     address of the admin port [0.0.0.0]\n"
		"  --workers N              proxy worker threads [number of CPUs]\n"
		"  --log-level LEVEL        error, warn, info, debug [info]\n"
		"  --access-log PATH        access log file, - for stdout, none to disable [-]\n"
		"  --access-log-format text|json  [text]\n"
		"  --fail-closed            refuse pod connections while no proxy listens\n"
		"                           (default: they go direct)\n"
		"  --no-sockmap             keep app<->proxy hops on the TCP stack\n"
		"  --exclude-inbound-ports LIST   ports never captured inbound (comma separated)\n"
		"  --exclude-outbound-ports LIST  ports never captured outbound\n"
		"  --connect-timeout MS     upstream connect timeout [%u]\n"
		"  --idle-timeout MS        close connections idle this long [%u]\n"
		"  --drain-timeout MS       at SIGTERM, wait this long for connections [%u]\n"
		"  --drain-time-s S         a listener an update removes or changes: its\n"
		"                           connections drain, and are closed after this [%u]\n"
		"  --mark N                 SO_MARK of the proxy's sockets [0x%x]\n"
		"  --iptables-backend default|nft|legacy  iptables binaries for iptables capture\n"
		"  --istio-...              istio-iptables' long settings shape iptables capture\n"
		"                           (defaults: the injected sidecar's; the list is in\n"
		"                           `shuntctl iptables --help`)\n"
		"  --help\n",
		PROXY_CONNECT_TIMEOUT_MS_DEF, PROXY_IDLE_TIMEOUT_MS_DEF, PROXY_DRAIN_TIMEOUT_MS_DEF,
		PROXY_DRAIN_TIME_MS_DEF / 1000, SHUNT_MARK_DEFAULT);
}

static void bad(const char *flag, const char *why)
{
	fprintf(stderr, "shuntd: %s: %s\n", flag, why);
	usage(stderr);
	exit(EXIT_USAGE);
}

/* Takes istio-iptables' long settings (--istio-service-cidr ..., --redirect-dns) out of argv,
 * into cfg, leaving shuntd's own flags for getopt. Exits 2 on a bad value. */
static void take_ipt_flags(int *argc, char **argv, struct ipt_config *cfg)
{
	char err[IPT_ERR_MAX];
	int out = 1, i = 1;

	while (i < *argc) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < *argc)
				argv[out++] = argv[i++];
			break;
		}
		if (strncmp(argv[i], "--", 2) == 0) {
			int j = i, rc = ipt_config_arg(cfg, *argc, argv, &j, err, sizeof(err));

			if (rc == 0) {
				i = j;
				continue;
			}
			if (rc != -ENOENT) {
				fprintf(stderr, "shuntd: %s\n", err);
				exit(EXIT_USAGE);
			}
		}
		argv[out++] = argv[i++];
	}
	argv[out] = NULL;
	*argc = out;
}

static unsigned long parse_num(const char *flag, const char *s, unsigned long min,
			       unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		char why[96];

		snprintf(why, sizeof(why), "\"%s\" is not a number in %lu..%lu", s, min, max);
		bad(flag, why);
	}
	return v;
}

static void parse_ports(const char *flag, const char *s, __u16 *out)
{
	char buf[512], *save, *tok;
	int n = 0;

	if (strlen(s) >= sizeof(buf))
		bad(flag, "list too long");
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n >= AGENT_MAX_PORTS - 1)
			bad(flag, "too many ports");
		out[n++] = (__u16)parse_num(flag, tok, 1, 65535);
	}
	out[n] = 0;
}

static const char *path_arg(const char *flag, const char *s)
{
	if (!*s)
		bad(flag, "must not be empty");
	if (strlen(s) > MAX_PATH_ARG)
		bad(flag, "path too long");
	return s;
}

static const char *node_arg(const char *flag, const char *s)
{
	char err[160];

	if (bootstrap_node_value_check(flag, s, err, sizeof(err))) {
		fprintf(stderr, "shuntd: %s\n", err);
		usage(stderr);
		exit(EXIT_USAGE);
	}
	return s;
}

int main(int argc, char **argv)
{
	enum {
		O_CGROUP = 256,
		O_BPFFS,
		O_RUNDIR,
		O_CONFIG,
		O_SERVICE_NODE,
		O_SERVICE_CLUSTER,
		O_SERVICE_ZONE,
		O_MODE,
		O_ADMIN_PORT,
		O_ADMIN_ADDR,
		O_WORKERS,
		O_LOG_LEVEL,
		O_ACCESS_LOG,
		O_ACCESS_LOG_FORMAT,
		O_FAIL_CLOSED,
		O_NO_SOCKMAP,
		O_EXCL_IN,
		O_EXCL_OUT,
		O_CONNECT_TIMEOUT,
		O_IDLE_TIMEOUT,
		O_DRAIN_TIMEOUT,
		O_DRAIN_TIME,
		O_MARK,
		O_IPT_BACKEND,
		O_HELP,
	};
	static const struct option opts[] = {
		{"cgroup", required_argument, NULL, O_CGROUP},
		{"bpffs-dir", required_argument, NULL, O_BPFFS},
		{"run-dir", required_argument, NULL, O_RUNDIR},
		{"config", required_argument, NULL, O_CONFIG},
		{"service-node", required_argument, NULL, O_SERVICE_NODE},
		{"service-cluster", required_argument, NULL, O_SERVICE_CLUSTER},
		{"service-zone", required_argument, NULL, O_SERVICE_ZONE},
		{"mode", required_argument, NULL, O_MODE},
		{"admin-port", required_argument, NULL, O_ADMIN_PORT},
		{"admin-address", required_argument, NULL, O_ADMIN_ADDR},
		{"workers", required_argument, NULL, O_WORKERS},
		{"log-level", required_argument, NULL, O_LOG_LEVEL},
		{"access-log", required_argument, NULL, O_ACCESS_LOG},
		{"access-log-format", required_argument, NULL, O_ACCESS_LOG_FORMAT},
		{"fail-closed", no_argument, NULL, O_FAIL_CLOSED},
		{"no-sockmap", no_argument, NULL, O_NO_SOCKMAP},
		{"exclude-inbound-ports", required_argument, NULL, O_EXCL_IN},
		{"exclude-outbound-ports", required_argument, NULL, O_EXCL_OUT},
		{"connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT},
		{"idle-timeout", required_argument, NULL, O_IDLE_TIMEOUT},
		{"drain-timeout", required_argument, NULL, O_DRAIN_TIMEOUT},
		{"drain-time-s", required_argument, NULL, O_DRAIN_TIME},
		{"mark", required_argument, NULL, O_MARK},
		{"iptables-backend", required_argument, NULL, O_IPT_BACKEND},
		{"help", no_argument, NULL, O_HELP},
		{0},
	};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct agent_opts o = {
		.bpffs_dir = "/sys/fs/bpf/shunt",
		.run_dir = "/run/shunt",
		.mode = AGENT_MODE_AUTO,
		.admin_addr = "0.0.0.0",
		.admin_port = SHUNT_PORT_ADMIN,
		.workers =
			ncpu > 0 ? (int)(ncpu < PROXY_MAX_WORKERS ? ncpu : PROXY_MAX_WORKERS) : 1,
		.sockmap = true,
		.access_log = "-",
		.drain_ms = PROXY_DRAIN_TIMEOUT_MS_DEF,
		.drain_time_ms = PROXY_DRAIN_TIME_MS_DEF,
		.connect_timeout_ms = PROXY_CONNECT_TIMEOUT_MS_DEF,
		.idle_timeout_ms = PROXY_IDLE_TIMEOUT_MS_DEF,
		.mark = SHUNT_MARK_DEFAULT,
	};
	static struct ipt_config ipt; /* about 60 KB: not on the stack */
	enum ipt_backend be = IPT_BACKEND_DEFAULT;
	char err[IPT_ERR_MAX];
	int c, lvl;

	log_init("shuntd");
	/* Pods carry IPv6 addresses as often as not; capture both families, as eBPF does. */
	ipt_config_init_sidecar(&ipt);
	ipt.ipv6 = true;
	take_ipt_flags(&argc, argv, &ipt);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_CGROUP:
			o.cgroup = path_arg("--cgroup", optarg);
			break;
		case O_BPFFS:
			o.bpffs_dir = path_arg("--bpffs-dir", optarg);
			break;
		case O_RUNDIR:
			o.run_dir = path_arg("--run-dir", optarg);
			break;
		case O_CONFIG:
			o.config = path_arg("--config", optarg);
			break;
		case O_SERVICE_NODE:
			o.service_node = node_arg("--service-node", optarg);
			break;
		case O_SERVICE_CLUSTER:
			o.service_cluster = node_arg("--service-cluster", optarg);
			break;
		case O_SERVICE_ZONE:
			o.service_zone = node_arg("--service-zone", optarg);
			break;
		case O_MODE:
			if (strcmp(optarg, "auto") == 0)
				o.mode = AGENT_MODE_AUTO;
			else if (strcmp(optarg, "ebpf") == 0)
				o.mode = AGENT_MODE_EBPF;
			else if (strcmp(optarg, "iptables") == 0)
				o.mode = AGENT_MODE_IPTABLES;
			else
				bad("--mode", "must be auto, ebpf or iptables");
			break;
		case O_ADMIN_PORT:
			o.admin_port = (int)parse_num("--admin-port", optarg, 0, 65535);
			break;
		case O_ADMIN_ADDR:
			o.admin_addr = optarg;
			break;
		case O_WORKERS:
			o.workers = (int)parse_num("--workers", optarg, 1, PROXY_MAX_WORKERS);
			break;
		case O_LOG_LEVEL:
			lvl = log_level_parse(optarg);
			if (lvl < 0)
				bad("--log-level", "must be error, warn, info or debug");
			log_threshold = lvl;
			break;
		case O_ACCESS_LOG:
			o.access_log = strcmp(optarg, "none") == 0 ? NULL : optarg;
			break;
		case O_ACCESS_LOG_FORMAT:
			if (strcmp(optarg, "json") == 0)
				o.access_log_json = true;
			else if (strcmp(optarg, "text") != 0)
				bad("--access-log-format", "must be text or json");
			break;
		case O_FAIL_CLOSED:
			o.fail_closed = true;
			break;
		case O_NO_SOCKMAP:
			o.sockmap = false;
			break;
		case O_EXCL_IN:
			parse_ports("--exclude-inbound-ports", optarg, o.exclude_in);
			break;
		case O_EXCL_OUT:
			parse_ports("--exclude-outbound-ports", optarg, o.exclude_out);
			break;
		case O_CONNECT_TIMEOUT:
			o.connect_timeout_ms =
				(unsigned)parse_num("--connect-timeout", optarg, 1, 3600000);
			break;
		case O_IDLE_TIMEOUT:
			o.idle_timeout_ms =
				(unsigned)parse_num("--idle-timeout", optarg, 1, 86400000);
			break;
		case O_DRAIN_TIMEOUT:
			o.drain_ms = (unsigned)parse_num("--drain-timeout", optarg, 0, 3600000);
			break;
		case O_DRAIN_TIME:
			o.drain_time_ms =
				(unsigned)parse_num("--drain-time-s", optarg, 1, 86400) * 1000;
			break;
		case O_MARK:
			o.mark = (__u32)parse_num("--mark", optarg, 1, UINT_MAX);
			break;
		case O_IPT_BACKEND:
			if (ipt_backend_parse(optarg, &be))
				bad("--iptables-backend", "must be default, nft or legacy");
			break;
		case O_HELP:
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "shuntd: unknown or incomplete option %s\n",
				argv[optind - 1]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "shuntd: unexpected argument %s\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!o.config && (o.service_node || o.service_cluster || o.service_zone))
		bad(o.service_node	? "--service-node"
		    : o.service_cluster ? "--service-cluster"
					: "--service-zone",
		    "needs --config (the bootstrap whose node it sets)");
	if (ipt_config_validate(&ipt, err, sizeof(err))) {
		fprintf(stderr, "shuntd: %s\n", err);
		return EXIT_USAGE;
	}
	o.ipt = &ipt;
	o.ipt_backend = (int)be;
	return agent_run(&o);
}
