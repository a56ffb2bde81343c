/* Istio-compatible capture rules: istio-iptables settings, their parsing, and the rule builder. */
#include "iptables/rules.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <linux/types.h>
#include "bpf/lib/shunt_maps.h"

#define IPT_CHAINS_MAX 16 /* distinct chains one table may declare; Istio uses at most 7 */
#define IPT_UID_MAX    4294967294UL /* (uid_t)-1 means "no owner" and cannot be matched */

static const char *const table_names[IPT_TABLE_COUNT] = {"filter", "mangle", "nat", "raw"};

const char *ipt_table_name(enum ipt_table t)
{
	return t < IPT_TABLE_COUNT ? table_names[t] : "?";
}

bool ipt_is_builtin(const char *chain)
{
	static const char *const builtin[] = {"INPUT",	     "OUTPUT", "FORWARD", "PREROUTING",
					      "POSTROUTING", "ACCEPT", "RETURN",  "DROP"};

	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
		if (strcmp(chain, builtin[i]) == 0)
			return true;
	return false;
}

/* ---- settings ---------------------------------------------------------------------------- */

static void list_set1(struct ipt_list *l, const char *item)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->item[0], sizeof(l->item[0]), "%s", item);
	l->n = 1;
}

void ipt_config_init(struct ipt_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->proxy_port = IPT_PROXY_PORT_DEFAULT;
	cfg->inbound_capture_port = IPT_INBOUND_CAPTURE_PORT_DEFAULT;
	cfg->inbound_tunnel_port = IPT_INBOUND_TUNNEL_PORT_DEFAULT;
	list_set1(&cfg->proxy_uids, IPT_PROXY_UID_DEFAULT);
	cfg->mode = IPT_MODE_REDIRECT;
	cfg->tproxy_mark = IPT_TPROXY_MARK_DEFAULT;
	cfg->tproxy_route_table = IPT_TPROXY_ROUTE_TABLE_DEFAULT;
	cfg->owner_groups.all = true;
	snprintf(cfg->loopback_cidr, sizeof(cfg->loopback_cidr), "%s", IPT_LOOPBACK_CIDR_DEFAULT);
	cfg->shunt_mark = SHUNT_MARK_DEFAULT;
}

void ipt_config_init_sidecar(struct ipt_config *cfg)
{
	/* What Istio's injector and CNI plugin pass for a pod without annotations. */
	static const char *const exclude_in[] = {"15020", "15021", "15090"};

	ipt_config_init(cfg);
	cfg->inbound_ports.all = true;
	cfg->outbound_cidrs.all = true;
	for (size_t i = 0; i < sizeof(exclude_in) / sizeof(exclude_in[0]); i++)
		snprintf(cfg->inbound_ports_exclude.item[cfg->inbound_ports_exclude.n++],
			 IPT_ITEM_MAX, "%s", exclude_in[i]);
	list_set1(&cfg->outbound_ports_exclude, "15020");
}

bool ipt_config_dns_active(const struct ipt_config *cfg)
{
	return cfg->redirect_dns &&
	       (cfg->capture_all_dns || cfg->dns_servers_v4.n > 0 || cfg->dns_servers_v6.n > 0);
}

/* ---- value parsers ----------------------------------------------------------------------- */

/* Kinds of setting values; each has one parser below. */
enum ipt_kind {
	K_PORT,	      /* one port, 1-65535 */
	K_PORTS,      /* comma list of ports */
	K_PORTS_ALL,  /* comma list of ports, or "*" */
	K_CIDRS,      /* comma list of CIDRs */
	K_CIDRS_ALL,  /* comma list of CIDRs, or "*" */
	K_IFACES,     /* comma list of interface names */
	K_OWNERS,     /* comma list of user or group ids or names */
	K_OWNERS_ALL, /* the same, or "*" */
	K_ADDRS4,     /* comma list of IPv4 addresses */
	K_ADDRS6,     /* comma list of IPv6 addresses */
	K_MODE,	      /* REDIRECT or TPROXY */
	K_U32,	      /* a non-zero 32-bit number (marks, route tables) */
	K_BOOL,
	K_LOOPBACK, /* an IPv4 loopback CIDR with a /8 to /32 mask */
	K_IGNORED,  /* accepted for command-line compatibility, no effect on the rules */
};

struct ipt_flag {
	const char *name;
	char short_name;
	enum ipt_kind kind;
	size_t off;
	const char *arg; /* placeholder in the usage text; NULL for booleans */
	const char *help;
};

#define CFG(field) offsetof(struct ipt_config, field)

/* istio-iptables' flag names and short letters; the last group are Istio environment settings
 * (ISTIO_OUTBOUND_OWNER_GROUPS...) and shunt's additions, spelled the same way. */
static const struct ipt_flag flags[] = {
	{"envoy-port", 'p', K_PORT, CFG(proxy_port), "PORT", "outbound capture port [15001]"},
	{"inbound-capture-port", 'z', K_PORT, CFG(inbound_capture_port), "PORT",
	 "inbound capture port [15006]"},
	{"inbound-tunnel-port", 'e', K_PORT, CFG(inbound_tunnel_port), "PORT",
	 "HBONE tunnel port, never captured [15008]"},
	{"proxy-uid", 'u', K_OWNERS, CFG(proxy_uids), "IDS",
	 "uids whose traffic is not captured [1337]"},
	{"proxy-gid", 'g', K_OWNERS, CFG(proxy_gids), "IDS",
	 "gids whose traffic is not captured [the uids]"},
	{"istio-inbound-interception-mode", 'm', K_MODE, CFG(mode), "MODE",
	 "REDIRECT or TPROXY [REDIRECT]"},
	{"istio-inbound-tproxy-mark", 't', K_U32, CFG(tproxy_mark), "MARK",
	 "TPROXY packet mark [1337]"},
	{"istio-inbound-tproxy-route-table", 'r', K_U32, CFG(tproxy_route_table), "N",
	 "TPROXY route table, for ip rules [133]"},
	{"istio-inbound-ports", 'b', K_PORTS_ALL, CFG(inbound_ports), "PORTS",
	 "inbound ports to capture, or '*' [none]"},
	{"istio-local-exclude-ports", 'd', K_PORTS, CFG(inbound_ports_exclude), "PORTS",
	 "inbound ports left alone with -b '*'"},
	{"istio-outbound-ports", 'q', K_PORTS, CFG(outbound_ports), "PORTS",
	 "outbound ports always captured"},
	{"istio-local-outbound-ports-exclude", 'o', K_PORTS, CFG(outbound_ports_exclude), "PORTS",
	 "outbound ports never captured"},
	{"istio-service-cidr", 'i', K_CIDRS_ALL, CFG(outbound_cidrs), "CIDRS",
	 "outbound CIDRs to capture, or '*' [none]"},
	{"istio-service-exclude-cidr", 'x', K_CIDRS, CFG(outbound_cidrs_exclude), "CIDRS",
	 "outbound CIDRs never captured"},
	{"kube-virt-interfaces", 'k', K_IFACES, CFG(kube_virt_ifaces), "IFACES",
	 "interfaces whose inbound counts as outbound"},
	{"istio-exclude-interfaces", 'c', K_IFACES, CFG(exclude_ifaces), "IFACES",
	 "interfaces never captured"},
	{"redirect-dns", 0, K_BOOL, CFG(redirect_dns), NULL,
	 "send DNS to the --dns-servers-v4/v6 to :15053"},
	{"capture-all-dns", 0, K_BOOL, CFG(capture_all_dns), NULL,
	 "with --redirect-dns: all of port 53, any server"},
	{"drop-invalid", 0, K_BOOL, CFG(drop_invalid), NULL, "drop conntrack-INVALID packets"},
	{"log_output_level", 0, K_IGNORED, 0, "LEVEL",
	 "accepted for istio-init command lines, ignored"},
	{"istio-outbound-owner-groups", 0, K_OWNERS_ALL, CFG(owner_groups), "GROUPS",
	 "groups whose traffic is captured ['*']"},
	{"istio-outbound-owner-groups-exclude", 0, K_OWNERS, CFG(owner_groups_exclude), "GROUPS",
	 "groups whose traffic is not captured"},
	{"istio-outbound-ipv4-loopback-cidr", 0, K_LOOPBACK, CFG(loopback_cidr), "CIDR",
	 "host loopback CIDR [127.0.0.1/32]"},
	{"dns-servers-v4", 0, K_ADDRS4, CFG(dns_servers_v4), "ADDRS",
	 "IPv4 DNS servers for --redirect-dns"},
	{"dns-servers-v6", 0, K_ADDRS6, CFG(dns_servers_v6), "ADDRS",
	 "IPv6 DNS servers for --redirect-dns"},
	{"ipv6", 0, K_BOOL, CFG(ipv6), NULL, "also the ip6tables rules"},
	{"shunt-mark-exempt", 0, K_BOOL, CFG(shunt_mark_exempt), NULL,
	 "never capture sockets with shunt's SO_MARK"},
	{"shunt-mark", 0, K_U32, CFG(shunt_mark), "MARK", "that mark [0x534e]"},
};

/* Copies s for an error message: at most 40 characters, control bytes shown as '?', so that
 * the message stays on one line whatever the input was. */
static const char *printable(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < len && i < 40; i++)
		buf[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
	buf[i] = '\0';
	if (s[i] && i + 4 < len)
		strcpy(buf + i, "...");
	return buf;
}

static int fail(char *err, size_t errlen, const char *name, const char *value, const char *why)
{
	char shown[48];

	if (err && errlen)
		snprintf(err, errlen, "--%s: \"%s\" %s", name,
			 printable(value, shown, sizeof(shown)), why);
	return -EINVAL;
}

static int fail_no_value(char *err, size_t errlen, const char *name)
{
	if (err && errlen)
		snprintf(err, errlen, "--%s: needs a value", name);
	return -EINVAL;
}

/* Strict decimal: digits only, no sign, no leading zero (so "015001" is not silently 15001). */
static int parse_decimal(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (!*s || (s[0] == '0' && s[1]))
		return -EINVAL;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_port(const char *s, uint16_t *port)
{
	unsigned long v;

	if (parse_decimal(s, UINT16_MAX, &v) < 0 || v == 0)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* Go's netip.Addr.String() for IPv6: lowercase, the longest run of two or more zero groups
 * (the first of equal runs) as "::", and ::ffff:a.b.c.d for IPv4-mapped addresses. Istio
 * prints CIDRs that way, so the rules match its text for any spelling of the input. */
static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void format_v6(const uint8_t a[16], char *out, size_t len)
{
	int best = -1, best_len = 0;
	size_t off = 0;
	uint16_t g[8];

	if (memcmp(a, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
		snprintf(out, len, "::ffff:%u.%u.%u.%u", a[12], a[13], a[14], a[15]);
		return;
	}
	for (int i = 0; i < 8; i++)
		g[i] = (uint16_t)(a[2 * i] << 8 | a[2 * i + 1]);
	for (int i = 0, j; i < 8; i = j + 1) {
		for (j = i; j < 8 && g[j] == 0; j++)
			;
		if (j - i >= 2 && j - i > best_len) {
			best = i;
			best_len = j - i;
		}
	}
	out[0] = '\0';
	for (int i = 0; i < 8 && off < len;) {
		if (i == best) {
			off += (size_t)snprintf(out + off, len - off, "::");
			i += best_len;
			continue;
		}
		off += (size_t)snprintf(out + off, len - off, "%s%x",
					i > 0 && i != best + best_len ? ":" : "", g[i]);
		i++;
	}
}

/* Parses "addr/bits" as Go's netip.ParsePrefix does: explicit bits, no zone, no leading zeros;
 * an address with ':' is IPv6 (IPv4-mapped ones too). */
static int cidr_parse(const char *s, int *family, uint8_t addr[16], int *bits)
{
	char host[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	unsigned long b;
	size_t hl;

	if (!slash || (hl = (size_t)(slash - s)) == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (strchr(host, ':')) {
		if (inet_pton(AF_INET6, host, addr) != 1)
			return -EINVAL;
		*family = 6;
	} else {
		if (inet_pton(AF_INET, host, addr) != 1)
			return -EINVAL;
		*family = 4;
	}
	if (parse_decimal(slash + 1, *family == 4 ? 32 : 128, &b) < 0)
		return -EINVAL;
	*bits = (int)b;
	return 0;
}

static void cidr_format(int family, const uint8_t addr[16], int bits, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (family == 4)
		inet_ntop(AF_INET, addr, host, sizeof(host));
	else
		format_v6(addr, host, sizeof(host));
	snprintf(out, len, "%s/%d", host, bits);
}

/* Loopback as Go's IsLoopback: 127/8 for IPv4 (also when IPv4-mapped), ::1 for IPv6. */
static bool cidr_is_loopback(const char *canonical)
{
	static const uint8_t v6_loopback[16] = {[15] = 1};
	uint8_t a[16];
	int family, bits;

	if (cidr_parse(canonical, &family, a, &bits) < 0)
		return false;
	if (family == 4)
		return a[0] == 127;
	if (memcmp(a, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0)
		return a[12] == 127;
	return memcmp(a, v6_loopback, sizeof(a)) == 0;
}

static int cidr_family(const char *canonical)
{
	return strchr(canonical, ':') ? 6 : 4;
}

/* Interface names as the kernel accepts them (dev_valid_name), minus what would break an
 * iptables-restore line or read as an option: quotes, '#', '\', a leading '-' or '!'. */
static bool iface_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= IFNAMSIZ || !strcmp(s, ".") || !strcmp(s, "..") || s[0] == '-' ||
	    s[0] == '!')
		return false;
	for (; *s; s++)
		if (!isgraph((unsigned char)*s) || strchr("/:\"'#\\", *s))
			return false;
	return true;
}

/* A uid/gid number, or a user/group name as useradd allows it. */
static bool owner_valid(const char *s)
{
	unsigned long v;

	if (isdigit((unsigned char)s[0]))
		return parse_decimal(s, IPT_UID_MAX, &v) == 0;
	if (strlen(s) > IPT_NAME_MAX || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
			return false;
	return true;
}

/* Splits a comma list as Istio's config.Split does (empty items are dropped), checks and
 * canonicalises every item, and replaces *l only if all of them are good. */
static int parse_list(const struct ipt_flag *f, const char *value, struct ipt_list *l, char *err,
		      size_t errlen)
{
	bool star_ok = f->kind == K_PORTS_ALL || f->kind == K_CIDRS_ALL || f->kind == K_OWNERS_ALL;
	struct ipt_list *out = calloc(1, sizeof(*out));
	const char *p = value;
	int ret = 0;

	if (!out)
		return -ENOMEM;
	if (star_ok && strcmp(value, "*") == 0) {
		out->all = true;
		goto done;
	}
	while (*p) {
		size_t len = strcspn(p, ",");
		char item[IPT_ITEM_MAX], canon[IPT_ITEM_MAX];

		if (len == 0) {
			p++;
			continue;
		}
		if (len >= sizeof(item)) {
			char shown[IPT_ITEM_MAX];

			snprintf(shown, sizeof(shown), "%.*s", (int)(sizeof(shown) - 1), p);
			ret = fail(err, errlen, f->name, shown, "is too long");
			goto out;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		p += len;
		if (strcmp(item, "*") == 0) {
			ret = fail(err, errlen, f->name, value,
				   star_ok ? "mixes \"*\" with other entries"
					   : "cannot be \"*\" here; list the entries");
			goto out;
		}
		snprintf(canon, sizeof(canon), "%s", item);
		switch (f->kind) {
		case K_PORTS:
		case K_PORTS_ALL: {
			uint16_t port;

			if (parse_port(item, &port) < 0) {
				ret = fail(err, errlen, f->name, item, "is not a port (1-65535)");
				goto out;
			}
			snprintf(canon, sizeof(canon), "%u", port);
			break;
		}
		case K_CIDRS:
		case K_CIDRS_ALL: {
			uint8_t a[16];
			int fam, bits;

			if (cidr_parse(item, &fam, a, &bits) < 0) {
				ret = fail(err, errlen, f->name, item, "is not a CIDR");
				goto out;
			}
			cidr_format(fam, a, bits, canon, sizeof(canon));
			break;
		}
		case K_IFACES:
			if (!iface_valid(item)) {
				ret = fail(err, errlen, f->name, item, "is not an interface name");
				goto out;
			}
			break;
		case K_OWNERS:
		case K_OWNERS_ALL:
			if (!owner_valid(item)) {
				ret = fail(err, errlen, f->name, item,
					   "is not a user or group id or name");
				goto out;
			}
			break;
		case K_ADDRS4:
		case K_ADDRS6: {
			uint8_t a[16];

			if (inet_pton(f->kind == K_ADDRS4 ? AF_INET : AF_INET6, item, a) != 1) {
				ret = fail(err, errlen, f->name, item,
					   f->kind == K_ADDRS4 ? "is not an IPv4 address"
							       : "is not an IPv6 address");
				goto out;
			}
			break;
		}
		default:
			break;
		}
		for (int i = 0; i < out->n; i++) {
			if (strcmp(out->item[i], canon) == 0) {
				ret = fail(err, errlen, f->name, item, "is listed twice");
				goto out;
			}
		}
		if (out->n == IPT_LIST_MAX) {
			char why[64];

			snprintf(why, sizeof(why), "has more than %d entries", IPT_LIST_MAX);
			ret = fail(err, errlen, f->name, value, why);
			goto out;
		}
		memcpy(out->item[out->n++], canon, sizeof(canon));
	}
done:
	*l = *out;
out:
	free(out);
	return ret;
}

static int parse_bool(const char *value, bool *out)
{
	if (!value || !strcmp(value, "true") || !strcmp(value, "1"))
		*out = true;
	else if (!strcmp(value, "false") || !strcmp(value, "0"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

static int loopback_check(const char *value, char *canon, size_t len)
{
	uint8_t a[16];
	int fam, bits;

	if (cidr_parse(value, &fam, a, &bits) < 0 || fam != 4 || a[0] != 127 || bits < 8)
		return -EINVAL;
	cidr_format(fam, a, bits, canon, len);
	return 0;
}

static int set_flag(struct ipt_config *cfg, const struct ipt_flag *f, const char *value, char *err,
		    size_t errlen)
{
	char *field = (char *)cfg + f->off;
	unsigned long v;

	if (f->kind != K_BOOL && !value)
		return fail_no_value(err, errlen, f->name);
	switch (f->kind) {
	case K_PORT:
		if (parse_port(value, (uint16_t *)field) < 0)
			return fail(err, errlen, f->name, value, "is not a port (1-65535)");
		return 0;
	case K_MODE:
		if (!strcmp(value, "REDIRECT") || !*value)
			*(enum ipt_mode *)field = IPT_MODE_REDIRECT;
		else if (!strcmp(value, "TPROXY"))
			*(enum ipt_mode *)field = IPT_MODE_TPROXY;
		else
			return fail(err, errlen, f->name, value,
				    "is not an interception mode (REDIRECT or TPROXY)");
		return 0;
	case K_U32:
		if (parse_decimal(value, UINT32_MAX, &v) < 0 || v == 0)
			return fail(err, errlen, f->name, value,
				    "is not a number from 1 to 4294967295");
		*(uint32_t *)field = (uint32_t)v;
		return 0;
	case K_BOOL:
		if (parse_bool(value, (bool *)field) < 0)
			return fail(err, errlen, f->name, value, "is not true or false");
		return 0;
	case K_LOOPBACK:
		if (loopback_check(value, field, IPT_ITEM_MAX) < 0)
			return fail(err, errlen, f->name, value,
				    "is not an IPv4 loopback CIDR with a /8 to /32 mask");
		return 0;
	case K_IGNORED:
		return 0;
	default:
		return parse_list(f, value, (struct ipt_list *)field, err, errlen);
	}
}

static const struct ipt_flag *flag_by_name(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (strlen(flags[i].name) == len && !strncmp(flags[i].name, name, len))
			return &flags[i];
	return NULL;
}

static const struct ipt_flag *flag_by_letter(char letter)
{
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (flags[i].short_name && flags[i].short_name == letter)
			return &flags[i];
	return NULL;
}

void ipt_config_usage(FILE *out)
{
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		const struct ipt_flag *f = &flags[i];
		char left[64];

		snprintf(left, sizeof(left), "%c%c%s--%s %s", f->short_name ? '-' : ' ',
			 f->short_name ? f->short_name : ' ', f->short_name ? ", " : "  ", f->name,
			 f->arg ? f->arg : "");
		fprintf(out, "  %-50s %s\n", left, f->help);
	}
}

int ipt_config_set(struct ipt_config *cfg, const char *name, const char *value, char *err,
		   size_t errlen)
{
	const struct ipt_flag *f = flag_by_name(name, strlen(name));

	if (!f)
		return -ENOENT;
	return set_flag(cfg, f, value, err, errlen);
}

int ipt_config_arg(struct ipt_config *cfg, int argc, char **argv, int *i, char *err, size_t errlen)
{
	const char *arg = argv[*i], *value = NULL;
	const struct ipt_flag *f;
	int ret;

	if (arg[0] != '-' || !arg[1])
		return -ENOENT;
	if (arg[1] == '-') {
		const char *name = arg + 2, *eq = strchr(name, '=');

		f = flag_by_name(name, eq ? (size_t)(eq - name) : strlen(name));
		if (eq)
			value = eq + 1;
	} else {
		if (arg[2] && arg[2] != '=')
			return -ENOENT;
		f = flag_by_letter(arg[1]);
		if (arg[2] == '=')
			value = arg + 3;
	}
	if (!f)
		return -ENOENT;
	/* Booleans never take the next word, as with Go's pflag: "--redirect-dns -p 1" works. */
	if (!value && f->kind != K_BOOL) {
		if (*i + 1 >= argc)
			return fail_no_value(err, errlen, f->name);
		value = argv[++*i];
	}
	ret = set_flag(cfg, f, value, err, errlen);
	if (ret == 0)
		++*i;
	return ret;
}

int ipt_config_validate(const struct ipt_config *cfg, char *err, size_t errlen)
{
	const struct {
		const char *name;
		uint16_t port;
	} ports[] = {{"envoy-port", cfg->proxy_port},
		     {"inbound-capture-port", cfg->inbound_capture_port},
		     {"inbound-tunnel-port", cfg->inbound_tunnel_port}};
	char canon[IPT_ITEM_MAX];

	for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++)
		if (ports[i].port == 0)
			return fail(err, errlen, ports[i].name, "0", "is not a port (1-65535)");
	if (cfg->mode != IPT_MODE_REDIRECT && cfg->mode != IPT_MODE_TPROXY)
		return fail(err, errlen, "istio-inbound-interception-mode", "?",
			    "is not an interception mode (REDIRECT or TPROXY)");
	if (loopback_check(cfg->loopback_cidr, canon, sizeof(canon)) < 0)
		return fail(err, errlen, "istio-outbound-ipv4-loopback-cidr", cfg->loopback_cidr,
			    "is not an IPv4 loopback CIDR with a /8 to /32 mask");
	if (cfg->outbound_cidrs_exclude.all)
		return fail(err, errlen, "istio-service-exclude-cidr", "*",
			    "cannot be \"*\" here; list the entries");
	return 0;
}

/* ---- rule builder ------------------------------------------------------------------------ */

/* State of one build: the first error sticks and later adds do nothing, so the rule program
 * below reads like Istio's list of rules instead of a ladder of error checks. */
struct bld {
	const struct ipt_config *cfg;
	struct ipt_ruleset *rs;
	int fam;
	int err;
};

static void __attribute__((format(printf, 5, 6)))
add(struct bld *b, enum ipt_table t, const char *chain, int pos, const char *fmt, ...)
{
	struct ipt_ruleset *rs = b->rs;
	struct ipt_rule *r;
	char *spec, *line;
	va_list ap;
	int n, off;

	if (b->err)
		return;
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 64;
		struct ipt_rule *nr = realloc(rs->rule, cap * sizeof(*nr));

		if (!nr) {
			b->err = -ENOMEM;
			return;
		}
		rs->rule = nr;
		rs->cap = cap;
	}
	va_start(ap, fmt);
	n = vasprintf(&spec, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = -ENOMEM;
		return;
	}
	if (pos)
		n = asprintf(&line, "-I %s %d %n%s", chain, pos, &off, spec);
	else
		n = asprintf(&line, "-A %s %n%s", chain, &off, spec);
	free(spec);
	if (n < 0) {
		b->err = -ENOMEM;
		return;
	}
	r = &rs->rule[rs->n++];
	r->table = t;
	snprintf(r->chain, sizeof(r->chain), "%s", chain);
	r->line = line;
	r->spec = line + off;
}

#define A(b, t, chain, ...) add(b, t, chain, 0, __VA_ARGS__)

static const struct ipt_list *proxy_uids(const struct ipt_config *cfg)
{
	static const struct ipt_list def = {.n = 1, .item = {IPT_PROXY_UID_DEFAULT}};

	return cfg->proxy_uids.n ? &cfg->proxy_uids : &def;
}

static const struct ipt_list *proxy_gids(const struct ipt_config *cfg)
{
	return cfg->proxy_gids.n ? &cfg->proxy_gids : proxy_uids(cfg);
}

static void inbound_rules(struct bld *b)
{
	const struct ipt_config *cfg = b->cfg;
	const struct ipt_list *in = &cfg->inbound_ports;
	bool tproxy = cfg->mode == IPT_MODE_TPROXY;
	enum ipt_table t = tproxy ? IPT_MANGLE : IPT_NAT;
	const char *lo = b->fam == 4 ? cfg->loopback_cidr : IPT_LOOPBACK_V6;

	if (!in->all && in->n == 0)
		return;
	if (tproxy) {
		/* Marked packets are routed to lo by the TPROXY route table, where the
		 * transparent listener picks them up. */
		A(b, IPT_MANGLE, "ISTIO_DIVERT", "-j MARK --set-mark %u", cfg->tproxy_mark);
		A(b, IPT_MANGLE, "ISTIO_DIVERT", "-j ACCEPT");
		A(b, IPT_MANGLE, "ISTIO_TPROXY",
		  "! -d %s -p tcp -j TPROXY --tproxy-mark %u/0xffffffff --on-port %u", lo,
		  cfg->tproxy_mark, cfg->inbound_capture_port);
	}
	A(b, t, "PREROUTING", "-p tcp -j ISTIO_INBOUND");
	if (in->all) {
		/* Exclusions only mean something against "all ports", as in Istio. */
		for (int i = 0; i < cfg->inbound_ports_exclude.n; i++)
			A(b, t, "ISTIO_INBOUND", "-p tcp --dport %s -j RETURN",
			  cfg->inbound_ports_exclude.item[i]);
		if (tproxy) {
			A(b, IPT_MANGLE, "ISTIO_INBOUND",
			  "-p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT");
			A(b, IPT_MANGLE, "ISTIO_INBOUND", "-p tcp -j ISTIO_TPROXY");
		} else {
			A(b, IPT_NAT, "ISTIO_INBOUND", "-p tcp -j ISTIO_IN_REDIRECT");
		}
		return;
	}
	for (int i = 0; i < in->n; i++) {
		if (tproxy) {
			A(b, IPT_MANGLE, "ISTIO_INBOUND",
			  "-p tcp --dport %s -m conntrack --ctstate RELATED,ESTABLISHED -j "
			  "ISTIO_DIVERT",
			  in->item[i]);
			A(b, IPT_MANGLE, "ISTIO_INBOUND", "-p tcp --dport %s -j ISTIO_TPROXY",
			  in->item[i]);
		} else {
			A(b, IPT_NAT, "ISTIO_INBOUND", "-p tcp --dport %s -j ISTIO_IN_REDIRECT",
			  in->item[i]);
		}
	}
}

/* The three rules per proxy uid (or gid) that keep the proxy's own traffic out of capture. */
static void owner_rules(struct bld *b, const char *kind, const struct ipt_list *ids, bool dns,
			bool include_has_loopback)
{
	const struct ipt_config *cfg = b->cfg;
	const char *lo = b->fam == 4 ? cfg->loopback_cidr : IPT_LOOPBACK_V6;
	/* Istio keeps TCP port 53 out of the hairpin redirect for uids only, not for gids. */
	bool dns_ports = dns && !strcmp(kind, "uid");

	for (int i = 0; i < ids->n; i++) {
		const char *id = ids->item[i];

		/* The proxy calling its own pod through a service VIP goes back to the inbound
		 * listener: app -> proxy (outbound) -> proxy (inbound) -> app. */
		if (dns_ports)
			A(b, IPT_NAT, "ISTIO_OUTPUT",
			  "-o lo ! -d %s -p tcp -m multiport ! --dports %d,%u -m owner --%s-owner "
			  "%s "
			  "-j ISTIO_IN_REDIRECT",
			  lo, IPT_DNS_PORT, cfg->inbound_tunnel_port, kind, id);
		else
			A(b, IPT_NAT, "ISTIO_OUTPUT",
			  "-o lo ! -d %s -p tcp ! --dport %u -m owner --%s-owner %s -j "
			  "ISTIO_IN_REDIRECT",
			  lo, cfg->inbound_tunnel_port, kind, id);
		/* The app calling itself by its own address is left alone, unless the user asked
		 * for loopback addresses to be captured. */
		if (!include_has_loopback) {
			if (dns)
				A(b, IPT_NAT, "ISTIO_OUTPUT",
				  "-o lo -p tcp ! --dport %d -m owner ! --%s-owner %s -j RETURN",
				  IPT_DNS_PORT, kind, id);
			else
				A(b, IPT_NAT, "ISTIO_OUTPUT",
				  "-o lo -m owner ! --%s-owner %s -j RETURN", kind, id);
		}
		/* Everything else the proxy sends goes out as is: no loops. */
		A(b, IPT_NAT, "ISTIO_OUTPUT", "-m owner --%s-owner %s -j RETURN", kind, id);
	}
}

static void owner_group_rules(struct bld *b)
{
	const struct ipt_config *cfg = b->cfg;

	if (cfg->owner_groups.all) {
		for (int i = 0; i < cfg->owner_groups_exclude.n; i++)
			A(b, IPT_NAT, "ISTIO_OUTPUT", "-m owner --gid-owner %s -j RETURN",
			  cfg->owner_groups_exclude.item[i]);
		return;
	}
	/* Only the listed groups are captured: one rule returning when the packet's group is
	 * none of them (with no groups at all, that returns everything, as in Istio). */
	char *spec = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&spec, &len);

	if (!f) {
		b->err = -ENOMEM;
		return;
	}
	for (int i = 0; i < cfg->owner_groups.n; i++)
		fprintf(f, "-m owner ! --gid-owner %s ", cfg->owner_groups.item[i]);
	fputs("-j RETURN", f);
	if (fclose(f) != 0) {
		free(spec);
		b->err = -ENOMEM;
		return;
	}
	A(b, IPT_NAT, "ISTIO_OUTPUT", "%s", spec);
	free(spec);
}

static void dns_rules(struct bld *b)
{
	const struct ipt_config *cfg = b->cfg;
	const struct ipt_list *servers = b->fam == 4 ? &cfg->dns_servers_v4 : &cfg->dns_servers_v6;
	const char *host_bits = b->fam == 4 ? "32" : "128";
	bool all = cfg->capture_all_dns;

	A(b, IPT_RAW, "OUTPUT", "-j ISTIO_OUTPUT_DNS");
	/* No jump in a family without servers, so that family has no empty chain to follow. */
	if (all || servers->n > 0)
		A(b, IPT_NAT, "ISTIO_OUTPUT", "-j ISTIO_OUTPUT_DNS");
	/* Only the resolv.conf servers by default: a local resolver chain
	 * (app -> agent -> dnsmasq -> upstream) must not loop back into the agent. */
	if (all)
		A(b, IPT_NAT, "ISTIO_OUTPUT_DNS", "-p tcp --dport %d -j REDIRECT --to-ports %d",
		  IPT_DNS_PORT, IPT_DNS_AGENT_PORT);
	else
		for (int i = 0; i < servers->n; i++)
			A(b, IPT_NAT, "ISTIO_OUTPUT_DNS",
			  "-p tcp --dport %d -d %s/%s -j REDIRECT --to-ports %d", IPT_DNS_PORT,
			  servers->item[i], host_bits, IPT_DNS_AGENT_PORT);
	/* "--to-port" (singular) for UDP is Istio's spelling; iptables takes both. */
	if (all)
		A(b, IPT_NAT, "ISTIO_OUTPUT_DNS", "-p udp --dport %d -j REDIRECT --to-port %d",
		  IPT_DNS_PORT, IPT_DNS_AGENT_PORT);
	else
		for (int i = 0; i < servers->n; i++)
			A(b, IPT_NAT, "ISTIO_OUTPUT_DNS",
			  "-p udp --dport %d -d %s/%s -j REDIRECT --to-port %d", IPT_DNS_PORT,
			  servers->item[i], host_bits, IPT_DNS_AGENT_PORT);

	/* Separate conntrack zones for agent<->upstream (1) and app<->agent (2): with one zone,
	 * UDP conntrack entries of the two legs collide and replies get lost. */
	const struct ipt_list *ids[2] = {proxy_uids(cfg), proxy_gids(cfg)};
	const char *kinds[2] = {"uid", "gid"};

	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < ids[k]->n; i++) {
			A(b, IPT_RAW, "ISTIO_OUTPUT_DNS",
			  "-p udp --dport %d -m owner --%s-owner %s -j CT --zone 1", IPT_DNS_PORT,
			  kinds[k], ids[k]->item[i]);
			A(b, IPT_RAW, "ISTIO_OUTPUT_DNS",
			  "-p udp --sport %d -m owner --%s-owner %s -j CT --zone 2",
			  IPT_DNS_AGENT_PORT, kinds[k], ids[k]->item[i]);
		}
	}
	if (all) {
		A(b, IPT_RAW, "PREROUTING", "-j ISTIO_INBOUND");
		A(b, IPT_RAW, "ISTIO_OUTPUT_DNS", "-p udp --dport %d -j CT --zone 2", IPT_DNS_PORT);
		A(b, IPT_RAW, "ISTIO_INBOUND", "-p udp --sport %d -j CT --zone 1", IPT_DNS_PORT);
		return;
	}
	if (servers->n > 0)
		A(b, IPT_RAW, "PREROUTING", "-j ISTIO_INBOUND");
	for (int i = 0; i < servers->n; i++) {
		A(b, IPT_RAW, "ISTIO_OUTPUT_DNS", "-p udp --dport %d -d %s/%s -j CT --zone 2",
		  IPT_DNS_PORT, servers->item[i], host_bits);
		A(b, IPT_RAW, "ISTIO_INBOUND", "-p udp --sport %d -s %s/%s -j CT --zone 1",
		  IPT_DNS_PORT, servers->item[i], host_bits);
	}
}

static void outbound_include_rules(struct bld *b)
{
	const struct ipt_config *cfg = b->cfg;
	const struct ipt_list *inc = &cfg->outbound_cidrs, *virt = &cfg->kube_virt_ifaces;

	if (inc->all) {
		A(b, IPT_NAT, "ISTIO_OUTPUT", "-j ISTIO_REDIRECT");
		/* Traffic from VMs on virtual interfaces counts as outbound. */
		for (int i = 0; i < virt->n; i++)
			add(b, IPT_NAT, "PREROUTING", 1, "-i %s -j ISTIO_REDIRECT", virt->item[i]);
		return;
	}
	for (int c = 0; c < inc->n; c++) {
		if (cidr_family(inc->item[c]) != b->fam)
			continue;
		for (int i = 0; i < virt->n; i++)
			add(b, IPT_NAT, "PREROUTING", 1, "-i %s -d %s -j ISTIO_REDIRECT",
			    virt->item[i], inc->item[c]);
		A(b, IPT_NAT, "ISTIO_OUTPUT", "-d %s -j ISTIO_REDIRECT", inc->item[c]);
	}
}

static void tproxy_tail_rules(struct bld *b)
{
	const struct ipt_config *cfg = b->cfg;
	const char *lo = b->fam == 4 ? cfg->loopback_cidr : IPT_LOOPBACK_V6;
	const struct ipt_list *ids[2] = {proxy_uids(cfg), proxy_gids(cfg)};
	const char *kinds[2] = {"uid", "gid"};
	uint32_t mark = cfg->tproxy_mark;

	/* The mark the original_src listener filter sets becomes the connection's mark. */
	A(b, IPT_MANGLE, "PREROUTING", "-p tcp -m mark --mark %u -j CONNMARK --save-mark", mark);
	/* Already marked: proxy -> app traffic, do not mark it again. */
	A(b, IPT_MANGLE, "OUTPUT", "-p tcp -o lo -m mark --mark %u -j RETURN", mark);
	/* app -> VIP -> proxy outbound -> (mark 1338) -> proxy inbound -> app */
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < ids[k]->n; i++)
			A(b, IPT_MANGLE, "OUTPUT",
			  "! -d %s -p tcp -o lo -m owner --%s-owner %s -j MARK --set-mark %d", lo,
			  kinds[k], ids[k]->item[i], IPT_OUTBOUND_MARK);
	A(b, IPT_MANGLE, "OUTPUT", "-p tcp -m connmark --mark %u -j CONNMARK --restore-mark", mark);
	/* Loop guards first in ISTIO_INBOUND: marked packets, the proxy's 127.0.0.6 source, and
	 * app -> own pod IP traffic on lo that the proxy did not mark. */
	add(b, IPT_MANGLE, "ISTIO_INBOUND", 1, "-p tcp -m mark --mark %u -j RETURN", mark);
	add(b, IPT_MANGLE, "ISTIO_INBOUND", 2, "-p tcp -s %s -i lo -j RETURN",
	    b->fam == 4 ? IPT_INBOUND_SRC_V4 : IPT_INBOUND_SRC_V6);
	add(b, IPT_MANGLE, "ISTIO_INBOUND", 3, "-p tcp -i lo -m mark ! --mark %d -j RETURN",
	    IPT_OUTBOUND_MARK);
}

/* Istio's rule program (tools/istio-iptables/pkg/capture/run.go), in its order: the order
 * decides both the output text and which rule wins. */
int ipt_build(const struct ipt_config *cfg, int family, struct ipt_ruleset *rs)
{
	struct bld bld = {.cfg = cfg, .rs = rs, .fam = family}, *b = &bld;
	const char *lo = family == 4 ? cfg->loopback_cidr : IPT_LOOPBACK_V6;
	bool tproxy = cfg->mode == IPT_MODE_TPROXY, dns = ipt_config_dns_active(cfg);
	bool include_has_loopback = false;

	memset(rs, 0, sizeof(*rs));
	rs->family = family;
	if (family != 4 && family != 6)
		return -EINVAL;
	/* Loopback in either family's include list turns the lo RETURN rules off in both. */
	for (int i = 0; i < cfg->outbound_cidrs.n; i++)
		include_has_loopback |= cidr_is_loopback(cfg->outbound_cidrs.item[i]);

	for (int i = 0; i < cfg->exclude_ifaces.n; i++) {
		A(b, IPT_NAT, "PREROUTING", "-i %s -j RETURN", cfg->exclude_ifaces.item[i]);
		A(b, IPT_NAT, "OUTPUT", "-o %s -j RETURN", cfg->exclude_ifaces.item[i]);
	}
	if (tproxy) {
		for (int i = 0; i < cfg->exclude_ifaces.n; i++) {
			A(b, IPT_MANGLE, "PREROUTING", "-i %s -j RETURN",
			  cfg->exclude_ifaces.item[i]);
			A(b, IPT_MANGLE, "OUTPUT", "-o %s -j RETURN", cfg->exclude_ifaces.item[i]);
		}
	}
	for (int i = 0; i < cfg->kube_virt_ifaces.n; i++)
		add(b, IPT_NAT, "PREROUTING", 1, "-i %s -j RETURN", cfg->kube_virt_ifaces.item[i]);
	/* Out-of-window packets are dropped instead of answered with a reset. */
	if (cfg->drop_invalid) {
		A(b, IPT_MANGLE, "PREROUTING", "-m conntrack --ctstate INVALID -j ISTIO_DROP");
		A(b, IPT_MANGLE, "ISTIO_DROP", "-j DROP");
	}
	A(b, IPT_NAT, "ISTIO_INBOUND", "-p tcp --dport %u -j RETURN", cfg->inbound_tunnel_port);
	A(b, IPT_NAT, "ISTIO_REDIRECT", "-p tcp -j REDIRECT --to-ports %u", cfg->proxy_port);
	A(b, IPT_NAT, "ISTIO_IN_REDIRECT", "-p tcp -j REDIRECT --to-ports %u",
	  cfg->inbound_capture_port);
	inbound_rules(b);

	A(b, IPT_NAT, "OUTPUT", "-j ISTIO_OUTPUT");
	/* shunt's proxy runs as root outside the pod, so no owner rule below exempts it; its
	 * sockets carry SO_MARK instead. */
	if (cfg->shunt_mark_exempt)
		A(b, IPT_NAT, "ISTIO_OUTPUT", "-m mark --mark 0x%x -j RETURN", cfg->shunt_mark);
	for (int i = 0; i < cfg->outbound_ports_exclude.n; i++) {
		A(b, IPT_NAT, "ISTIO_OUTPUT", "-p tcp --dport %s -j RETURN",
		  cfg->outbound_ports_exclude.item[i]);
		A(b, IPT_NAT, "ISTIO_OUTPUT", "-p udp --dport %s -j RETURN",
		  cfg->outbound_ports_exclude.item[i]);
	}
	/* The proxy's inbound passthrough connects to the app from 127.0.0.6 (::6). */
	A(b, IPT_NAT, "ISTIO_OUTPUT", "-o lo -s %s -j RETURN",
	  family == 4 ? IPT_INBOUND_SRC_V4 : IPT_INBOUND_SRC_V6);
	owner_rules(b, "uid", proxy_uids(cfg), dns, include_has_loopback);
	owner_rules(b, "gid", proxy_gids(cfg), dns, include_has_loopback);
	owner_group_rules(b);
	if (dns)
		dns_rules(b);
	/* Apps that talk to localhost on purpose (Envoy-aware apps, sidecar to sidecar). */
	A(b, IPT_NAT, "ISTIO_OUTPUT", "-d %s -j RETURN", lo);
	for (int i = 0; i < cfg->outbound_cidrs_exclude.n; i++)
		if (cidr_family(cfg->outbound_cidrs_exclude.item[i]) == family)
			A(b, IPT_NAT, "ISTIO_OUTPUT", "-d %s -j RETURN",
			  cfg->outbound_cidrs_exclude.item[i]);
	for (int i = 0; i < cfg->outbound_ports.n; i++)
		A(b, IPT_NAT, "ISTIO_OUTPUT", "-p tcp --dport %s -j ISTIO_REDIRECT",
		  cfg->outbound_ports.item[i]);
	outbound_include_rules(b);
	if (tproxy)
		tproxy_tail_rules(b);

	if (b->err)
		ipt_ruleset_free(rs);
	return b->err;
}

void ipt_ruleset_free(struct ipt_ruleset *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		free(rs->rule[i].line);
	free(rs->rule);
	rs->rule = NULL;
	rs->n = rs->cap = 0;
}

const char *ipt_rule_jump(const struct ipt_rule *r, char *buf, size_t len)
{
	const char *j = strstr(r->spec, "-j "), *next;

	if (!j)
		return NULL;
	while ((next = strstr(j + 3, " -j ")))
		j = next + 1;
	j += 3;
	if (strchr(j, ' ') || strlen(j) >= len)
		return NULL;
	strcpy(buf, j);
	return buf;
}

/* ---- iptables-restore text --------------------------------------------------------------- */

static int declare(char chains[][32], int *n, const char *chain)
{
	if (ipt_is_builtin(chain))
		return 0;
	for (int i = 0; i < *n; i++)
		if (!strcmp(chains[i], chain))
			return 0;
	if (*n == IPT_CHAINS_MAX)
		return -E2BIG;
	snprintf(chains[(*n)++], 32, "%s", chain);
	return 1;
}

int ipt_ruleset_write(const struct ipt_ruleset *rs, FILE *out)
{
	for (int t = 0; t < IPT_TABLE_COUNT; t++) {
		char chains[IPT_CHAINS_MAX][32], jump[32];
		int n = 0, ret;
		bool any = false;

		for (size_t i = 0; i < rs->n; i++)
			any |= rs->rule[i].table == (enum ipt_table)t;
		if (!any)
			continue;
		fprintf(out, "* %s\n", table_names[t]);
		/* Chains that own rules, by first use, then chains only jumped to. */
		for (size_t i = 0; i < rs->n; i++) {
			if (rs->rule[i].table != (enum ipt_table)t)
				continue;
			if ((ret = declare(chains, &n, rs->rule[i].chain)) < 0)
				return ret;
			if (ret)
				fprintf(out, "-N %s\n", rs->rule[i].chain);
		}
		for (size_t i = 0; i < rs->n; i++) {
			if (rs->rule[i].table != (enum ipt_table)t ||
			    !ipt_rule_jump(&rs->rule[i], jump, sizeof(jump)))
				continue;
			if ((ret = declare(chains, &n, jump)) < 0)
				return ret;
			if (ret)
				fprintf(out, "-N %s\n", jump);
		}
		for (size_t i = 0; i < rs->n; i++)
			if (rs->rule[i].table == (enum ipt_table)t)
				fprintf(out, "%s\n", rs->rule[i].line);
		fputs("COMMIT\n", out);
	}
	return ferror(out) ? -EIO : 0;
}

int ipt_render_family(const struct ipt_config *cfg, int family, char **text, size_t *len)
{
	struct ipt_ruleset rs;
	FILE *f;
	int ret;

	*text = NULL;
	*len = 0;
	f = open_memstream(text, len);
	if (!f)
		return -ENOMEM;
	ret = ipt_build(cfg, family, &rs);
	if (ret == 0) {
		ret = ipt_ruleset_write(&rs, f);
		ipt_ruleset_free(&rs);
	}
	if (fclose(f) != 0 && ret == 0)
		ret = -ENOMEM;
	if (ret < 0) {
		free(*text);
		*text = NULL;
	}
	return ret;
}

int ipt_render(const struct ipt_config *cfg, FILE *out)
{
	for (int family = 4; family <= 6; family += 2) {
		char *text;
		size_t len;
		int ret;

		if (family == 6 && !cfg->ipv6)
			break;
		ret = ipt_render_family(cfg, family, &text, &len);
		if (ret < 0)
			return ret;
		fwrite(text, 1, len, out);
		free(text);
	}
	return ferror(out) ? -EIO : 0;
}

int ipt_render_buf(const struct ipt_config *cfg, char *buf, size_t len)
{
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	int ret;

	if (!f)
		return -ENOMEM;
	ret = ipt_render(cfg, f);
	if (fclose(f) != 0 && ret == 0)
		ret = -ENOMEM;
	if (ret == 0) {
		if (n + 1 > len || n > INT32_MAX) {
			ret = -ENOSPC;
		} else {
			memcpy(buf, text, n + 1);
			ret = (int)n;
		}
	}
	free(text);
	return ret;
}
