/* `shuntctl iptables render|apply|clean`: flags in, rules out or into a pod's netns. */
#include "iptables/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iptables/apply.h"
#include "iptables/rules.h"

#define PROG "shuntctl iptables"

static void usage(FILE *out)
{
	fprintf(out, "usage: " PROG " render|apply|clean [--pid PID] [--backend B] [--sidecar] "
		     "[settings]\n"
		     "\n"
		     "  render   print the rules as iptables-restore input: IPv4, then IPv6 with "
		     "--ipv6\n"
		     "  apply    load them in the network namespace of PID, all or nothing\n"
		     "  clean    remove them from there, leaving every other rule\n"
		     "\n"
		     "  --pid PID       a process in the pod (apply, clean)\n"
		     "  --backend B     default (iptables-restore), nft or legacy [default]\n"
		     "  --sidecar       start from the injected sidecar's settings instead of\n"
		     "                  istio-iptables' defaults: -i '*' -b '*' -d "
		     "15020,15021,15090 -o 15020\n"
		     "\n"
		     "settings, as istio-iptables names them (lists are comma separated):\n");
	ipt_config_usage(out);
	fprintf(out, "\nexit status: 0 done, 1 failed (reason on stderr), 2 bad command line\n");
}

static int __attribute__((format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	return IPT_CLI_USAGE;
}

static int parse_pid(const char *s, int *pid)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > 0x3fffffff)
		return -EINVAL;
	*pid = (int)v;
	return 0;
}

/* Value of "--name V" or "--name=V" at argv[*i]; NULL if argv[*i] is not that flag. */
static const char *own_flag(int argc, char **argv, int *i, const char *name, bool *missing)
{
	size_t n = strlen(name);

	*missing = false;
	if (strncmp(argv[*i], name, n))
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n])
		return NULL;
	if (*i + 1 >= argc) {
		*missing = true;
		return NULL;
	}
	return argv[++*i];
}

int ipt_cli_main(int argc, char **argv)
{
	struct ipt_config *cfg;
	enum ipt_backend be = IPT_BACKEND_DEFAULT;
	char err[IPT_ERR_MAX] = "";
	const char *cmd;
	int pid = 0, ret = IPT_CLI_USAGE;
	bool render;

	if (argc < 2)
		return usage_error("%s", "missing command: render, apply or clean");
	cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return IPT_CLI_OK;
	}
	render = !strcmp(cmd, "render");
	if (!render && strcmp(cmd, "apply") && strcmp(cmd, "clean"))
		return usage_error("unknown command \"%s\" (render, apply or clean)", cmd);
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		fprintf(stderr, PROG ": out of memory\n");
		return IPT_CLI_FAIL;
	}
	/* The preset goes first wherever it is written, so flags after or before it refine it. */
	ipt_config_init(cfg);
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--sidecar"))
			ipt_config_init_sidecar(cfg);

	for (int i = 2; i < argc;) {
		const char *v;
		bool missing;

		if (!strcmp(argv[i], "--sidecar")) {
			i++;
			continue;
		}
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			ret = IPT_CLI_OK;
			goto out;
		}
		if ((v = own_flag(argc, argv, &i, "--pid", &missing)) || missing) {
			if (missing || parse_pid(v, &pid) < 0) {
				ret = usage_error("--pid: \"%s\" is not a pid", missing ? "" : v);
				goto out;
			}
			i++;
			continue;
		}
		if ((v = own_flag(argc, argv, &i, "--backend", &missing)) || missing) {
			if (missing || ipt_backend_parse(v, &be) < 0) {
				ret = usage_error("--backend: \"%s\" is not default, nft or legacy",
						  missing ? "" : v);
				goto out;
			}
			i++;
			continue;
		}
		switch (ipt_config_arg(cfg, argc, argv, &i, err, sizeof(err))) {
		case 0:
			continue;
		case -ENOENT:
			ret = usage_error(argv[i][0] == '-' ? "unknown flag %s"
							    : "unexpected argument %s",
					  argv[i]);
			goto out;
		default:
			ret = usage_error("%s", err);
			goto out;
		}
	}
	if (ipt_config_validate(cfg, err, sizeof(err)) < 0) {
		ret = usage_error("%s", err);
		goto out;
	}
	if (render && pid) {
		ret = usage_error("%s", "--pid is for apply and clean; render only prints");
		goto out;
	}
	if (!render && !pid) {
		ret = usage_error("%s needs --pid PID of a process in the pod", cmd);
		goto out;
	}
	/* Istio silently captures no DNS then; say so, since it is rarely what was meant. */
	if (cfg->redirect_dns && !ipt_config_dns_active(cfg))
		fprintf(stderr, PROG ": warning: --redirect-dns without --dns-servers-v4/-v6 or "
				     "--capture-all-dns captures no DNS (as istio-iptables)\n");

	if (render) {
		int r = ipt_render(cfg, stdout);

		if (r == 0 && fflush(stdout) != 0)
			r = -errno;
		if (r < 0) {
			fprintf(stderr, PROG ": cannot write the rules: %s\n", strerror(-r));
			ret = IPT_CLI_FAIL;
			goto out;
		}
		ret = IPT_CLI_OK;
		goto out;
	}
	if (!strcmp(cmd, "apply"))
		ret = ipt_apply(pid, cfg, be, err, sizeof(err));
	else
		ret = ipt_clean(pid, cfg, be, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, PROG ": %s: %s\n", cmd, err);
		ret = IPT_CLI_FAIL;
		goto out;
	}
	ret = IPT_CLI_OK;
out:
	free(cfg);
	return ret;
}
