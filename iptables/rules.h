/* Istio-compatible capture rules: istio-iptables settings, validation, iptables-restore text. */
#ifndef SHUNT_IPTABLES_RULES_H
#define SHUNT_IPTABLES_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Istio's numbers (tools/istio-iptables constants), used as defaults and in fixed rules. */
#define IPT_PROXY_PORT_DEFAULT		 15001
#define IPT_INBOUND_CAPTURE_PORT_DEFAULT 15006
#define IPT_INBOUND_TUNNEL_PORT_DEFAULT	 15008
#define IPT_PROXY_UID_DEFAULT		 "1337"
#define IPT_TPROXY_MARK_DEFAULT		 1337
#define IPT_TPROXY_ROUTE_TABLE_DEFAULT	 133
#define IPT_OUTBOUND_MARK		 1338 /* set on proxy->app packets in TPROXY mode */
#define IPT_DNS_PORT			 53
#define IPT_DNS_AGENT_PORT		 15053 /* istio-agent's DNS proxy */
#define IPT_LOOPBACK_CIDR_DEFAULT	 "127.0.0.1/32"
#define IPT_INBOUND_SRC_V4		 "127.0.0.6/32" /* proxy->app source, never captured */
#define IPT_INBOUND_SRC_V6		 "::6/128"
#define IPT_LOOPBACK_V6			 "::1/128"

/* Limits of the settings. A list longer than IPT_LIST_MAX is rejected; Istio itself caps the
 * owner-group include list at 64 because it becomes one rule with that many matches. */
#define IPT_LIST_MAX 64
#define IPT_ITEM_MAX 64	 /* longest item text: an IPv6 CIDR is at most 49 characters */
#define IPT_NAME_MAX 32	 /* user and group names, as useradd allows */
#define IPT_ERR_MAX  256 /* room for one error line */

/* Tables, in the order iptables-restore input lists them (alphabetical, as Istio writes them). */
enum ipt_table {
	IPT_FILTER,
	IPT_MANGLE,
	IPT_NAT,
	IPT_RAW,
	IPT_TABLE_COUNT
};

enum ipt_mode {
	IPT_MODE_REDIRECT,
	IPT_MODE_TPROXY
};

/* A comma list of one kind of value, kept in canonical text form (ports in decimal, CIDRs as
 * Go's netip prints them) so rendering is plain string pasting. all = the list was "*". */
struct ipt_list {
	int n;
	bool all;
	char item[IPT_LIST_MAX][IPT_ITEM_MAX];
};

/* Every istio-iptables setting that changes the rules, plus shunt's own mark exemption.
 * Plain data that owns no memory; at about 60 KB (fixed-size lists) it belongs on the heap,
 * not on a small thread stack. */
struct ipt_config {
	uint16_t proxy_port;	       /* --envoy-port, -p */
	uint16_t inbound_capture_port; /* --inbound-capture-port, -z */
	uint16_t inbound_tunnel_port;  /* --inbound-tunnel-port, -e */
	struct ipt_list proxy_uids;    /* --proxy-uid, -u */
	struct ipt_list proxy_gids;    /* --proxy-gid, -g; empty means "same as the uids" */
	enum ipt_mode mode;	       /* --istio-inbound-interception-mode, -m */
	uint32_t tproxy_mark;	       /* --istio-inbound-tproxy-mark, -t */
	uint32_t
		tproxy_route_table; /* --istio-inbound-tproxy-route-table, -r (routes, not rules) */
	struct ipt_list inbound_ports; /* --istio-inbound-ports, -b; empty = no inbound capture */
	struct ipt_list
		inbound_ports_exclude;	/* --istio-local-exclude-ports, -d; only with -b '*' */
	struct ipt_list outbound_ports; /* --istio-outbound-ports, -q */
	struct ipt_list outbound_ports_exclude; /* --istio-local-outbound-ports-exclude, -o */
	struct ipt_list outbound_cidrs; /* --istio-service-cidr, -i; empty = none by address */
	struct ipt_list outbound_cidrs_exclude; /* --istio-service-exclude-cidr, -x */
	struct ipt_list kube_virt_ifaces;	/* --kube-virt-interfaces, -k */
	struct ipt_list exclude_ifaces;		/* --istio-exclude-interfaces, -c */
	struct ipt_list owner_groups;		/* ISTIO_OUTBOUND_OWNER_GROUPS, '*' = all */
	struct ipt_list owner_groups_exclude;	/* ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE */
	struct ipt_list dns_servers_v4;		/* resolv.conf servers whose port 53 is captured */
	struct ipt_list dns_servers_v6;
	char loopback_cidr[IPT_ITEM_MAX]; /* ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR */
	bool redirect_dns;		  /* --redirect-dns */
	bool capture_all_dns;		  /* --capture-all-dns: port 53 to any server */
	bool drop_invalid;		  /* --drop-invalid */
	bool ipv6;			  /* --ipv6: also render the ip6tables block */
	bool shunt_mark_exempt;		  /* --shunt-mark-exempt: never capture shunt's sockets */
	uint32_t shunt_mark;		  /* --shunt-mark: the SO_MARK shunt's proxy sets */
};

/* istio-iptables' own defaults: ports 15001/15006/15008, uid=gid=1337, REDIRECT, nothing
 * captured by port or address until asked (the base of Istio's capture tests, empty.golden). */
void ipt_config_init(struct ipt_config *cfg);

/* The injected sidecar's settings (Istio's CNI plugin defaults, cni-plugin/basic.txt.golden):
 * all inbound ports but 15020,15021,15090, all outbound addresses, outbound port 15020 excluded. */
void ipt_config_init_sidecar(struct ipt_config *cfg);

/* Sets one setting by its flag name without dashes ("istio-service-cidr", "redirect-dns"), as
 * shuntd's config file names them. value NULL means a bare boolean flag. Returns 0, -ENOENT for
 * a name that is not a setting, or -EINVAL with "--name: reason" in err. */
int ipt_config_set(struct ipt_config *cfg, const char *name, const char *value, char *err,
		   size_t errlen);

/* Consumes the setting flag at argv[*i] (--name=value, --name value, -x value, or a bare boolean)
 * and advances *i past it. Returns 0, -ENOENT when argv[*i] is not a setting flag (*i unchanged),
 * or -EINVAL with the reason in err. */
int ipt_config_arg(struct ipt_config *cfg, int argc, char **argv, int *i, char *err, size_t errlen);

/* One line per setting flag: names, value placeholder, meaning and default. */
void ipt_config_usage(FILE *out);

/* Checks a config as a whole, also one filled in directly rather than through the parser
 * (ports, mode, loopback CIDR, no '*' exclude). Returns 0 or -EINVAL with the reason in err. */
int ipt_config_validate(const struct ipt_config *cfg, char *err, size_t errlen);

/* True when DNS capture is on in effect: Istio turns --redirect-dns off when there is neither a
 * server list nor --capture-all-dns. */
bool ipt_config_dns_active(const struct ipt_config *cfg);

/* One rule as Istio's builder records it. line is "-A CHAIN spec" or "-I CHAIN pos spec"; spec
 * points into line, after the chain (and position). */
struct ipt_rule {
	enum ipt_table table;
	char chain[32];
	char *line;
	const char *spec;
};

/* The rules of one address family, in the order they are added. Owns its lines. */
struct ipt_ruleset {
	int family; /* 4 or 6 */
	struct ipt_rule *rule;
	size_t n, cap;
};

/* Builds the rules of family 4 or 6 (6 regardless of cfg->ipv6). Returns 0 or -ENOMEM. */
int ipt_build(const struct ipt_config *cfg, int family, struct ipt_ruleset *rs);
void ipt_ruleset_free(struct ipt_ruleset *rs);

/* Writes a ruleset as iptables-restore --noflush input: per non-empty table "* table", the -N
 * lines (chains owning rules by first use, then other jump targets), the rules, COMMIT. */
int ipt_ruleset_write(const struct ipt_ruleset *rs, FILE *out);

/* Renders the IPv4 block, then the IPv6 block when cfg->ipv6. Returns 0 or -errno. */
int ipt_render(const struct ipt_config *cfg, FILE *out);
/* The same into buf (NUL-terminated). Returns the length, or -ENOSPC if buf is too small. */
int ipt_render_buf(const struct ipt_config *cfg, char *buf, size_t len);
/* One family's block in a malloc'd string (caller frees). Returns 0 or -errno. */
int ipt_render_family(const struct ipt_config *cfg, int family, char **text, size_t *len);

const char *ipt_table_name(enum ipt_table t);
/* True for INPUT, OUTPUT, FORWARD, PREROUTING, POSTROUTING and the ACCEPT/RETURN/DROP verdicts,
 * which are never declared with -N. */
bool ipt_is_builtin(const char *chain);
/* The chain or target a rule's spec ends in ("-j NAME"), copied into buf; NULL if none. */
const char *ipt_rule_jump(const struct ipt_rule *r, char *buf, size_t len);

#endif
