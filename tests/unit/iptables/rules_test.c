/* Tests iptables/rules.c: every Istio golden reproduced rule for rule, and flag parsing errors. */
#include "iptables/rules.h"
#include "tests/lib/tap.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <sys/stat.h>

#define MAX_ARGS  32
#define MAX_LINES 256

/* Where the reference data lives: the copy of Istio's goldens in tests/fixtures (Apache-2.0, see
 * its README and LICENSE); SHUNT_ISTIO_REF overrides it. */
static const char *ref_dir(void)
{
	static const char *const candidates[] = {"tests/fixtures/istio-reference/iptables"};
	static char env_dir[512];
	const char *env = getenv("SHUNT_ISTIO_REF");
	struct stat st;

	if (env) {
		snprintf(env_dir, sizeof(env_dir), "%s/iptables", env);
		return stat(env_dir, &st) == 0 ? env_dir : NULL;
	}
	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++)
		if (stat(candidates[i], &st) == 0 && S_ISDIR(st.st_mode))
			return candidates[i];
	return NULL;
}

struct lines {
	int n;
	char *line[MAX_LINES];
	char *buf;
};

/* Splits text into lines in place; a missing final newline (Istio's goldens) is fine. */
static void split_lines(char *text, struct lines *l)
{
	char *p = text;

	l->n = 0;
	l->buf = text;
	while (*p && l->n < MAX_LINES) {
		char *nl = strchr(p, '\n');

		l->line[l->n++] = p;
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
	}
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;
	FILE *m;
	int c;

	if (!f)
		return NULL;
	m = open_memstream(&buf, &len);
	while ((c = fgetc(f)) != EOF)
		fputc(c, m);
	fclose(f);
	fclose(m);
	return buf;
}

/* The capture goldens record what Istio's DependenciesStub executed: an "iptables-save" and
 * "ip6tables-save" probe first (VerifyIptablesState), the restore input, then a deferred
 * "iptables-save" (and "ip6tables-save" with IPv6) dumping the final state. Those probe lines
 * are the stub's, not rules; they are removed here, at exactly those places, and nowhere else. */
static int strip_stub_lines(struct lines *l, bool ipv6)
{
	int tail = ipv6 ? 2 : 1;

	if (l->n < 2 + tail || strcmp(l->line[0], "iptables-save") ||
	    strcmp(l->line[1], "ip6tables-save") || strcmp(l->line[l->n - tail], "iptables-save") ||
	    (ipv6 && strcmp(l->line[l->n - 1], "ip6tables-save")))
		return -1;
	memmove(l->line, l->line + 2, (size_t)(l->n - 2) * sizeof(l->line[0]));
	l->n -= 2 + tail;
	for (int i = 0; i < l->n; i++)
		if (strstr(l->line[i], "tables-save"))
			return -1;
	return 0;
}

struct golden_case {
	const char *golden; /* path below the reference iptables/ directory */
	bool sidecar;	    /* start from ipt_config_init_sidecar() instead of istio-iptables' */
	const char *args[MAX_ARGS];
};

/* Settings from CASES.md, written as istio-iptables flags. Capture cases start from the base
 * config of Istio's capture tests (= istio-iptables defaults); CNI cases from the sidecar. */
static const struct golden_case golden_cases[] = {
	{"empty.golden", false, {NULL}},
	{"ipv6-empty-inbound-ports.golden", false, {"--ipv6"}},
	{"ip-range.golden",
	 false,
	 {"--istio-service-exclude-cidr", "1.1.0.0/16", "--istio-service-cidr", "9.9.0.0/16",
	  "--redirect-dns", "--proxy-gid", "1,2", "--proxy-uid", "3,4", "--dns-servers-v4",
	  "127.0.0.53"}},
	{"tproxy.golden",
	 false,
	 {"-m", "TPROXY", "-b", "*", "-x", "1.1.0.0/16", "-i", "9.9.0.0/16", "--redirect-dns",
	  "--dns-servers-v4", "127.0.0.53", "-g", "1337", "-u", "1337", "-c", "not-istio-nic",
	  "--ipv6"}},
	{"ipv6-inbound-ports.golden", false, {"--istio-inbound-ports", "4000,5000", "--ipv6"}},
	{"ipv6-virt-interfaces.golden",
	 false,
	 {"-b", "4000,5000", "--kube-virt-interfaces", "eth0,eth1", "--ipv6"}},
	{"ipv6-ipnets.golden",
	 false,
	 {"-b", "4000,5000", "--istio-local-exclude-ports", "6000,7000,", "-k", "eth0,eth1", "-x",
	  "2001:db8::/32", "-i", "2001:db8::/32", "--ipv6"}},
	{"ipv6-uid-gid.golden",
	 false,
	 {"-b", "4000,5000", "-d", "6000,7000", "-k", "eth0,eth1", "-g", "1,2", "-u", "3,4",
	  "--ipv6", "-x", "2001:db8::/32", "-i", "2001:db8::/32"}},
	{"ipv6-outbound-ports.golden", false, {"--istio-outbound-ports", "32000,31000", "--ipv6"}},
	{"kube-virt-interfaces.golden", false, {"-k", "eth1,eth2", "-i", "*"}},
	{"ipnets.golden", false, {"--istio-service-cidr", "10.0.0.0/8"}},
	{"ipnets-with-kube-virt-interfaces.golden", false, {"-k", "eth1,eth2", "-i", "10.0.0.0/8"}},
	{"inbound-ports-include.golden", false, {"-b", "32000,31000"}},
	{"inbound-ports-wildcard.golden", false, {"-b", "*"}},
	{"inbound-ports-tproxy.golden",
	 false,
	 {"-b", "32000,31000", "--istio-inbound-interception-mode", "TPROXY"}},
	{"inbound-ports-wildcard-tproxy.golden", false, {"-b", "*", "-m", "TPROXY"}},
	{"dns-uid-gid.golden",
	 false,
	 {"--redirect-dns", "--dns-servers-v4", "127.0.0.53", "--dns-servers-v6", "::127.0.0.53",
	  "-g", "1,2", "-u", "3,4", "--ipv6"}},
	{"ipv6-dns-uid-gid.golden", false, {"--ipv6", "--redirect-dns", "-g", "1,2", "-u", "3,4"}},
	{"outbound-owner-groups.golden", false, {"--istio-outbound-owner-groups", "java,202"}},
	{"outbound-owner-groups-exclude.golden",
	 false,
	 {"--istio-outbound-owner-groups-exclude", "888,ftp"}},
	{"ipv6-dns-outbound-owner-groups.golden",
	 false,
	 {"--ipv6", "--redirect-dns", "--istio-outbound-owner-groups=java,202"}},
	{"ipv6-dns-outbound-owner-groups-exclude.golden",
	 false,
	 {"--ipv6", "--redirect-dns", "--istio-outbound-owner-groups-exclude=888,ftp"}},
	{"outbound-ports-include.golden", false, {"-q", "32000,31000"}},
	{"loopback-outbound-iprange.golden",
	 false,
	 {"-i", "127.1.2.3/32", "--redirect-dns", "--dns-servers-v4", "127.0.0.53", "-g", "1,2",
	  "-u", "3,4"}},
	{"basic-exclude-nic.golden", false, {"--istio-exclude-interfaces", "not-istio-nic"}},
	{"drop-invalid.golden", false, {"--drop-invalid"}},
	{"host-ipv4-loopback-cidr.golden",
	 false,
	 {"--istio-outbound-ipv4-loopback-cidr", "127.0.0.1/8"}},
	/* The default sidecar twice: from the preset, and spelled out as flags. */
	{"cni-plugin/basic.txt.golden", true, {NULL}},
	{"cni-plugin/basic.txt.golden",
	 false,
	 {"-p", "15001",    "-z", "15006", "-e", "15008", "-u", "1337", "-g", "1337",
	  "-m", "REDIRECT", "-i", "*",	   "-x", "",	  "-b", "*",	"-d", "15020,15021,15090",
	  "-o", "15020"}},
	{"cni-plugin/dns.txt.golden", true, {"--redirect-dns", "--capture-all-dns"}},
	{"cni-plugin/include-exclude-ip.txt.golden",
	 true,
	 {"-i", "127.0.0.0/8", "-x", "10.0.0.0/8"}},
	{"cni-plugin/include-exclude-ports.txt.golden",
	 true,
	 {"-b", "1111,2222", "-d", "3333,4444,15020,15021,15090", "-o", "5555,6666"}},
	{"cni-plugin/tproxy.txt.golden", true, {"-m", "TPROXY"}},
};

/* Test names are one TAP line each, whatever bytes the bad input holds. */
static const char *one_line(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s && s[i] && i + 1 < len; i++)
		buf[i] = s[i] == '\n' ? '?' : s[i];
	buf[i] = '\0';
	return buf;
}

static int nargs(const char *const *args)
{
	int n = 0;

	while (n < MAX_ARGS && args[n])
		n++;
	return n;
}

static int config_from_args(struct ipt_config *cfg, bool sidecar, const char *const *args,
			    char *err, size_t errlen)
{
	int argc = nargs(args), i = 0;

	if (sidecar)
		ipt_config_init_sidecar(cfg);
	else
		ipt_config_init(cfg);
	while (i < argc) {
		int ret = ipt_config_arg(cfg, argc, (char **)args, &i, err, errlen);

		if (ret < 0)
			return ret;
	}
	return ipt_config_validate(cfg, err, errlen);
}

/* Compares rendered text with expected lines; on a mismatch, says where. */
static bool same_lines(const char *name, char *rendered, struct lines *want)
{
	struct lines got;
	bool same;

	split_lines(rendered, &got);
	/* The rendered text ends with a newline, so its last "line" may be empty. */
	if (got.n > 0 && got.line[got.n - 1][0] == '\0')
		got.n--;
	same = got.n == want->n;
	for (int i = 0; i < got.n && i < want->n; i++) {
		if (strcmp(got.line[i], want->line[i])) {
			tap_diag("%s: line %d differs", name, i + 1);
			tap_diag("  got  %s", got.line[i]);
			tap_diag("  want %s", want->line[i]);
			return false;
		}
	}
	if (!same)
		tap_diag("%s: %d lines rendered, %d in the golden", name, got.n, want->n);
	return same;
}

static void test_goldens(const char *dir)
{
	for (size_t c = 0; c < sizeof(golden_cases) / sizeof(golden_cases[0]); c++) {
		const struct golden_case *gc = &golden_cases[c];
		bool cni = strncmp(gc->golden, "cni-plugin/", 11) == 0;
		char path[768], err[IPT_ERR_MAX] = "", *golden, *rendered = NULL;
		struct ipt_config *cfg = calloc(1, sizeof(*cfg));
		struct lines want;
		size_t len = 0;
		FILE *out;
		int ret;

		snprintf(path, sizeof(path), "%s/%s", dir, gc->golden);
		golden = slurp(path);
		if (!ok(golden != NULL, "%s: golden readable", gc->golden)) {
			free(cfg);
			continue;
		}
		ret = config_from_args(cfg, gc->sidecar, gc->args, err, sizeof(err));
		if (!ok(ret == 0, "%s: settings accepted", gc->golden))
			tap_diag("  %s", err);
		split_lines(golden, &want);
		if (!cni)
			ok(strip_stub_lines(&want, cfg->ipv6) == 0,
			   "%s: stub probe lines found exactly where Istio's stub writes them",
			   gc->golden);
		out = open_memstream(&rendered, &len);
		is_int(ipt_render(cfg, out), 0, "%s: renders", gc->golden);
		fclose(out);
		ok(same_lines(gc->golden, rendered, &want), "%s%s: rule for rule", gc->golden,
		   gc->sidecar ? " (sidecar preset)" : "");
		free(rendered);
		free(golden);
		free(cfg);
	}
}

/* Every golden in the reference directory has a case above, so a new one is not missed. */
static void test_all_goldens_covered(const char *dir)
{
	static const char *const subdirs[] = {"", "cni-plugin/"};

	for (size_t s = 0; s < 2; s++) {
		char path[600];
		struct dirent *de;
		DIR *d;

		snprintf(path, sizeof(path), "%s/%s", dir, subdirs[s]);
		d = opendir(path);
		if (!ok(d != NULL, "reference directory %s listable", path))
			continue;
		while ((de = readdir(d))) {
			char name[300];
			bool found = false;
			size_t n = strlen(de->d_name);

			if (n < 7 || strcmp(de->d_name + n - 7, ".golden"))
				continue;
			snprintf(name, sizeof(name), "%s%s", subdirs[s], de->d_name);
			for (size_t c = 0; c < sizeof(golden_cases) / sizeof(golden_cases[0]); c++)
				found |= !strcmp(golden_cases[c].golden, name);
			ok(found, "%s has a case", name);
		}
		closedir(d);
	}
}

/* istio-init's command for an injected sidecar (CASES.md "the injected default"): Istio ships no
 * golden for it; the expectation is basic.txt.golden with the two documented differences. */
static void test_injected_command(const char *dir)
{
	static const char *const args[] = {"-p",
					   "15001",
					   "-z",
					   "15006",
					   "-u",
					   "1337",
					   "-m",
					   "REDIRECT",
					   "-i",
					   "*",
					   "-x",
					   "",
					   "-b",
					   "*",
					   "-d",
					   "15090,15021,15020",
					   "--log_output_level=default:info",
					   NULL};
	struct ipt_config *cfg = calloc(1, sizeof(*cfg));
	char path[600], err[IPT_ERR_MAX], *golden, *rendered = NULL;
	struct lines want;
	size_t len = 0;
	FILE *out;
	int j = 0;

	snprintf(path, sizeof(path), "%s/cni-plugin/basic.txt.golden", dir);
	golden = slurp(path);
	if (!ok(golden && config_from_args(cfg, false, args, err, sizeof(err)) == 0,
		"istio-init command line accepted")) {
		free(golden);
		free(cfg);
		return;
	}
	split_lines(golden, &want);
	for (int i = 0; i < want.n; i++) {
		if (strstr(want.line[i], "ISTIO_OUTPUT -p tcp --dport 15020 -j RETURN") ||
		    strstr(want.line[i], "ISTIO_OUTPUT -p udp --dport 15020 -j RETURN"))
			continue;
		if (!strcmp(want.line[i], "-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN"))
			want.line[j++] = "-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN";
		else if (!strcmp(want.line[i], "-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN"))
			want.line[j++] = "-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN";
		else
			want.line[j++] = want.line[i];
	}
	want.n = j;
	out = open_memstream(&rendered, &len);
	ipt_render(cfg, out);
	fclose(out);
	ok(same_lines("istio-init", rendered, &want), "istio-init command: derived sidecar rules");
	free(rendered);
	free(golden);
	free(cfg);
}

/* shunt's mark exemption is opt-in: first rule of ISTIO_OUTPUT when on, absent otherwise. */
static void test_shunt_mark(void)
{
	struct ipt_config *cfg = calloc(1, sizeof(*cfg));
	char *buf = malloc(16384);
	const char *jump = "-A OUTPUT -j ISTIO_OUTPUT\n";
	char *at;

	ipt_config_init_sidecar(cfg);
	ok(ipt_render_buf(cfg, buf, 16384) > 0 && !strstr(buf, "--mark 0x534e"),
	   "no mark rule by default");
	cfg->shunt_mark_exempt = true;
	ipt_config_init_sidecar(cfg);
	is_int(ipt_config_set(cfg, "shunt-mark-exempt", NULL, NULL, 0), 0, "shunt-mark-exempt set");
	ok(ipt_render_buf(cfg, buf, 16384) > 0 && (at = strstr(buf, jump)) &&
		   !strncmp(at + strlen(jump), "-A ISTIO_OUTPUT -m mark --mark 0x534e -j RETURN\n",
			    48),
	   "mark 0x534e (SHUNT_MARK_DEFAULT) returns first in ISTIO_OUTPUT");
	cfg->ipv6 = true;
	ok(ipt_render_buf(cfg, buf, 16384) > 0 && (at = strstr(buf, "* nat\n")) &&
		   (at = strstr(at + 1, "* nat\n")) && strstr(at, "--mark 0x534e"),
	   "and in the IPv6 block");
	is_int(ipt_config_set(cfg, "shunt-mark", "4660", NULL, 0), 0, "shunt-mark set");
	ok(ipt_render_buf(cfg, buf, 16384) > 0 && strstr(buf, "-m mark --mark 0x1234 -j RETURN"),
	   "custom mark rendered in hex");
	is_int(ipt_render_buf(cfg, buf, 100), -ENOSPC, "small buffer: -ENOSPC");
	free(buf);
	free(cfg);
}

/* Bad input: the error names the flag and the bad item, the return says why, and the
 * setting keeps its earlier value. */
static void test_parse_errors(void)
{
	static const struct {
		const char *args[4];
		int ret;
		const char *err;
	} cases[] = {
		{{"--istio-service-cidr", "10.0.0/8"},
		 -EINVAL,
		 "--istio-service-cidr: \"10.0.0/8\" is not a CIDR"},
		{{"-i", "10.0.0.0/8,10.0.0.0/33"},
		 -EINVAL,
		 "--istio-service-cidr: \"10.0.0.0/33\" is not a CIDR"},
		{{"-i", "10.0.0.1"}, -EINVAL, "--istio-service-cidr: \"10.0.0.1\" is not a CIDR"},
		{{"-i", "010.0.0.0/8"},
		 -EINVAL,
		 "--istio-service-cidr: \"010.0.0.0/8\" is not a CIDR"},
		{{"-i", "10.0.0.0/08"},
		 -EINVAL,
		 "--istio-service-cidr: \"10.0.0.0/08\" is not a CIDR"},
		{{"-i", "fe80::1%eth0/64"},
		 -EINVAL,
		 "--istio-service-cidr: \"fe80::1%eth0/64\" is not a CIDR"},
		{{"-i", "2001:db8::/129"},
		 -EINVAL,
		 "--istio-service-cidr: \"2001:db8::/129\" is not a CIDR"},
		{{"-i", "*,10.0.0.0/8"},
		 -EINVAL,
		 "--istio-service-cidr: \"*,10.0.0.0/8\" mixes \"*\" with other entries"},
		{{"-x", "*"},
		 -EINVAL,
		 "--istio-service-exclude-cidr: \"*\" cannot be \"*\" here; list the entries"},
		{{"--envoy-port", "70000"},
		 -EINVAL,
		 "--envoy-port: \"70000\" is not a port (1-65535)"},
		{{"--envoy-port=0"}, -EINVAL, "--envoy-port: \"0\" is not a port (1-65535)"},
		{{"-z", "-1"}, -EINVAL, "--inbound-capture-port: \"-1\" is not a port (1-65535)"},
		{{"--envoy-port"}, -EINVAL, "--envoy-port: needs a value"},
		{{"-b", "80,http"},
		 -EINVAL,
		 "--istio-inbound-ports: \"http\" is not a port (1-65535)"},
		{{"-b", "80,80"}, -EINVAL, "--istio-inbound-ports: \"80\" is listed twice"},
		{{"-d", "65536"},
		 -EINVAL,
		 "--istio-local-exclude-ports: \"65536\" is not a port (1-65535)"},
		{{"-o", "*"},
		 -EINVAL,
		 "--istio-local-outbound-ports-exclude: \"*\" cannot be \"*\" here; list the "
		 "entries"},
		{{"-m", "FOO"},
		 -EINVAL,
		 "--istio-inbound-interception-mode: \"FOO\" is not an interception mode (REDIRECT "
		 "or "
		 "TPROXY)"},
		{{"--istio-inbound-interception-mode", "tproxy"},
		 -EINVAL,
		 "--istio-inbound-interception-mode: \"tproxy\" is not an interception mode "
		 "(REDIRECT "
		 "or TPROXY)"},
		{{"-u", "1337 -j ACCEPT"},
		 -EINVAL,
		 "--proxy-uid: \"1337 -j ACCEPT\" is not a user or group id or name"},
		{{"-g", "4294967295"},
		 -EINVAL,
		 "--proxy-gid: \"4294967295\" is not a user or group id or name"},
		{{"-k", "eth0\n-A"},
		 -EINVAL,
		 "--kube-virt-interfaces: \"eth0?-A\" is not an interface name"},
		{{"-c", "averyveryverylongname"},
		 -EINVAL,
		 "--istio-exclude-interfaces: \"averyveryverylongname\" is not an interface name"},
		{{"--dns-servers-v4", "::1"},
		 -EINVAL,
		 "--dns-servers-v4: \"::1\" is not an IPv4 address"},
		{{"--dns-servers-v6", "1.2.3.4"},
		 -EINVAL,
		 "--dns-servers-v6: \"1.2.3.4\" is not an IPv6 address"},
		{{"--redirect-dns=maybe"},
		 -EINVAL,
		 "--redirect-dns: \"maybe\" is not true or false"},
		{{"--istio-outbound-ipv4-loopback-cidr", "10.0.0.1/32"},
		 -EINVAL,
		 "--istio-outbound-ipv4-loopback-cidr: \"10.0.0.1/32\" is not an IPv4 loopback "
		 "CIDR "
		 "with a /8 to /32 mask"},
		{{"--istio-outbound-ipv4-loopback-cidr", "127.0.0.1/7"},
		 -EINVAL,
		 "--istio-outbound-ipv4-loopback-cidr: \"127.0.0.1/7\" is not an IPv4 loopback "
		 "CIDR "
		 "with a /8 to /32 mask"},
		{{"-t", "0"},
		 -EINVAL,
		 "--istio-inbound-tproxy-mark: \"0\" is not a number from 1 to 4294967295"},
		{{"--no-such-flag", "1"}, -ENOENT, ""},
		{{"-P", "1"}, -ENOENT, ""},
		{{"extra"}, -ENOENT, ""},
	};

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct ipt_config *cfg = calloc(1, sizeof(*cfg));
		char err[IPT_ERR_MAX] = "", name[64];
		int argc = nargs(cases[c].args), i = 0, ret;

		ipt_config_init_sidecar(cfg);
		ret = ipt_config_arg(cfg, argc, (char **)cases[c].args, &i, err, sizeof(err));
		is_int(ret, cases[c].ret, "%s %s: rejected", cases[c].args[0],
		       one_line(cases[c].args[1], name, sizeof(name)));
		is_str(err, cases[c].err, "  with a message naming the flag");
		ok(cfg->outbound_cidrs.all && cfg->proxy_port == 15001 &&
			   cfg->inbound_ports_exclude.n == 3 && cfg->mode == IPT_MODE_REDIRECT,
		   "  settings unchanged");
		free(cfg);
	}
}

/* Values are kept as Istio prints them: Go's netip text for CIDRs, decimal ports. */
static void test_canonical_values(void)
{
	static const struct {
		const char *name, *value, *want;
	} cases[] = {
		{"istio-service-cidr", "2001:DB8:0:0:0:0:0:0/32", "2001:db8::/32"},
		{"istio-service-cidr", "1:0:0:1:0:0:1:1/128", "1::1:0:0:1:1/128"},
		{"istio-service-cidr", "1:0:0:0:1:0:0:0/128", "1::1:0:0:0/128"},
		{"istio-service-cidr", "0:0:0:0:0:0:0:1/128", "::1/128"},
		{"istio-service-cidr", "1:2:3:4:5:6:7:0/128", "1:2:3:4:5:6:7:0/128"},
		{"istio-service-cidr", "::FFFF:10.1.2.3/128", "::ffff:10.1.2.3/128"},
		{"istio-service-cidr", "::127.0.0.53/128", "::7f00:35/128"},
		{"istio-service-cidr", "10.1.2.3/8", "10.1.2.3/8"},
		{"istio-inbound-ports", ",80,,443,", "80"},
		{"dns-servers-v6", "::127.0.0.53", "::127.0.0.53"},
		{"proxy-uid", "istio-proxy", "istio-proxy"},
	};

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct ipt_config *cfg = calloc(1, sizeof(*cfg));
		char err[IPT_ERR_MAX] = "";
		struct ipt_list *l;

		ipt_config_init(cfg);
		is_int(ipt_config_set(cfg, cases[c].name, cases[c].value, err, sizeof(err)), 0,
		       "--%s %s accepted", cases[c].name, cases[c].value);
		if (!strcmp(cases[c].name, "istio-service-cidr"))
			l = &cfg->outbound_cidrs;
		else if (!strcmp(cases[c].name, "istio-inbound-ports"))
			l = &cfg->inbound_ports;
		else if (!strcmp(cases[c].name, "dns-servers-v6"))
			l = &cfg->dns_servers_v6;
		else
			l = &cfg->proxy_uids;
		is_str(l->item[0], cases[c].want, "  kept as %s", cases[c].want);
		free(cfg);
	}

	struct ipt_config *cfg = calloc(1, sizeof(*cfg));
	char *argv[] = {"-p=15002", "--redirect-dns", "-b", "8080", "--redirect-dns=false", NULL};
	int i = 0, argc = 5;

	ipt_config_init(cfg);
	while (i < argc && ipt_config_arg(cfg, argc, argv, &i, NULL, 0) == 0)
		;
	is_int(i, argc, "-p=V, bare and =false booleans all consumed");
	ok(cfg->proxy_port == 15002 && !cfg->redirect_dns && cfg->inbound_ports.n == 1,
	   "  with their values");
	is_int(ipt_config_set(cfg, "istio-inbound-ports", "", NULL, 0), 0, "empty list accepted");
	ok(cfg->inbound_ports.n == 0 && !cfg->inbound_ports.all, "  and clears the list");
	is_int(ipt_config_set(cfg, "no-such-setting", "1", NULL, 0), -ENOENT,
	       "unknown setting name: -ENOENT");
	free(cfg);
}

int main(void)
{
	const char *dir = ref_dir();

	if (!ok(dir != NULL,
		"Istio reference data found (tests/fixtures/istio-reference from the repo root, "
		"or $SHUNT_ISTIO_REF)")) {
		tap_diag("cwd must be the repo root; the goldens are the spec and cannot be "
			 "skipped");
		return done_testing();
	}
	test_all_goldens_covered(dir);
	test_goldens(dir);
	test_injected_command(dir);
	test_shunt_mark();
	test_parse_errors();
	test_canonical_values();
	return done_testing();
}
