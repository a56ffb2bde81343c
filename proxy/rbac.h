/* Envoy's RBAC engine (envoy.config.rbac.v3): policies of permissions and principals, decided
 * per request (HTTP filter) or per connection (network filter).
 *
 * The translator builds a px_rbac in the snapshot's arena, compiling each regex as it goes
 * (px_string_matcher_prepare); they live outside the arena until px_rbac_release, which the
 * snapshot calls for every config on its list. Evaluation reads the tree only: no allocation
 * beyond what a regex match itself takes (route.c's matcher).
 */
#ifndef SHUNT_PROXY_RBAC_H
#define SHUNT_PROXY_RBAC_H

#include <linux/types.h>
#include <stdbool.h>
#include <stdint.h>

#include "proxy/config.h"
#include "proxy/route.h"

enum px_rbac_action {
	PX_RBAC_ALLOW, /* allowed iff a policy matches */
	PX_RBAC_DENY,  /* denied iff a policy matches */
	PX_RBAC_LOG,   /* never denies */
};

/* One node of a permission or principal tree; the translator only puts permission kinds under
 * permissions and principal kinds under principals. */
enum px_rbac_kind {
	PX_RBAC_ANY,
	PX_RBAC_AND,
	PX_RBAC_OR,
	PX_RBAC_NOT,
	PX_RBAC_HEADER,		  /* header: px_header_matcher over the request */
	PX_RBAC_URL_PATH,	  /* url_path: str over the path without its query */
	PX_RBAC_DST_IP,		  /* destination_ip */
	PX_RBAC_DST_PORT,	  /* destination_port, destination_port_range: [lo, hi) */
	PX_RBAC_SNI,		  /* requested_server_name: str over the SNI ("" when none) */
	PX_RBAC_AUTHENTICATED,	  /* authenticated: any verified peer, or str over its principal */
	PX_RBAC_DIRECT_REMOTE_IP, /* direct_remote_ip, source_ip: the connection's peer */
	PX_RBAC_REMOTE_IP,	  /* remote_ip: the client address the HCM trusts (XFF) */
};

struct px_rbac_node {
	enum px_rbac_kind kind;
	bool has_str; /* PX_RBAC_AUTHENTICATED: principal_name given */
	union {
		struct {
			struct px_rbac_node *v;
			uint32_t n;
		} set;			      /* AND, OR */
		struct px_rbac_node *negated; /* NOT */
		struct px_header_matcher header;
		struct px_string_matcher str; /* URL_PATH, SNI, AUTHENTICATED */
		struct px_cidr cidr;	      /* DST_IP, *_REMOTE_IP */
		struct {
			uint32_t lo, hi;
		} ports;
	};
};

/* A policy matches when any permission and any principal match. */
struct px_rbac_policy {
	const char *name;
	struct px_rbac_node *permissions;
	uint32_t npermissions;
	struct px_rbac_node *principals;
	uint32_t nprincipals;
};

/* One RBAC message. Policies are sorted by name: Envoy evaluates them in lexicographic order
 * and names the first one that matched. */
struct px_rbac_rules {
	enum px_rbac_action action;
	struct px_rbac_policy *policies;
	uint32_t npolicies;
};

/* An RBAC filter's configuration (HTTP or network). No rules: everything is allowed; shadow
 * rules are evaluated and counted, never enforced. */
struct px_rbac {
	struct px_rbac_rules *rules;  /* NULL: allow all */
	struct px_rbac_rules *shadow; /* NULL: none */
	struct px_rbac *next;	      /* the snapshot's list of configs to release */
};

/* What the rules look at. req is NULL for the network filter (header and url_path then match
 * nothing, as in Envoy where a connection has no headers). */
struct px_rbac_input {
	const struct px_req_view *req;
	const struct shunt_addr *dst;
	__u16 dst_port;
	const struct shunt_addr *direct_remote; /* the connection's peer */
	const struct shunt_addr *remote;	/* the client the HCM trusts; NULL: the peer */
	const char *sni;			/* NULL: none */
	bool authenticated;			/* a peer certificate was presented and verified */
	/* The peer's identity as Envoy reads it for principal_name: the first URI SAN, else the
	 * first DNS SAN, else the subject. NULL: no certificate. */
	const char *principal;
};

/* One evaluation: whether the rules allow, and the first policy that matched (NULL: none). */
struct px_rbac_verdict {
	bool allowed;
	const char *policy;
};

/* Whether the rules allow the input; *policy: the matched policy's name, or NULL. */
bool px_rbac_rules_allow(const struct px_rbac_rules *r, const struct px_rbac_input *in,
			 const char **policy);

/* The filter's decision: enforced (its rules) and shadow (its shadow rules, if any). */
struct px_rbac_decision {
	struct px_rbac_verdict enforced;
	bool has_shadow;
	struct px_rbac_verdict shadow;
};

void px_rbac_eval(const struct px_rbac *f, const struct px_rbac_input *in,
		  struct px_rbac_decision *d);

/* One filter run as the proxy counts it (Envoy's rbac.allowed/denied/shadow_*): a set of these
 * bits, PX_RBAC_DENIED when its rules deny (*policy: the one that matched, NULL for none). A
 * filter without rules counts and denies nothing but its shadow. */
#define PX_RBAC_ALLOWED	       1u
#define PX_RBAC_DENIED	       2u
#define PX_RBAC_SHADOW_ALLOWED 4u
#define PX_RBAC_SHADOW_DENIED  8u
unsigned px_rbac_check(const struct px_rbac *f, const struct px_rbac_input *in,
		       const char **policy);
/* Adds a run's bits to the worker's counters of one filter kind (http or tcp). */
#define PX_RBAC_COUNT(wk, kind, bits)                                                              \
	do {                                                                                       \
		if ((bits)&PX_RBAC_ALLOWED)                                                        \
			STAT_INC(wk, kind##_rbac_allowed);                                         \
		if ((bits)&PX_RBAC_DENIED)                                                         \
			STAT_INC(wk, kind##_rbac_denied);                                          \
		if ((bits)&PX_RBAC_SHADOW_ALLOWED)                                                 \
			STAT_INC(wk, kind##_rbac_shadow_allowed);                                  \
		if ((bits)&PX_RBAC_SHADOW_DENIED)                                                  \
			STAT_INC(wk, kind##_rbac_shadow_denied);                                   \
	} while (0)

#define PX_RBAC_DETAILS_MAX   320 /* a details string; a longer policy name is cut */
#define PX_RBAC_PRINCIPAL_MAX 256 /* a peer principal; a longer one is cut (and matches less) */

/* Envoy's response code details for a denial: rbac_access_denied_matched_policy[NAME], [none]
 * when nothing matched (an ALLOW that found no policy). Writes at most len bytes. */
void px_rbac_details(char *buf, size_t len, const char *policy);

/* Compiles the regexes of a tree built without them (by hand: tests); -EINVAL with *err
 * (arena'd) naming the bad one. */
int px_rbac_prepare(struct arena *a, struct px_rbac *f, const char **err);
void px_rbac_release(struct px_rbac *f);

#endif
