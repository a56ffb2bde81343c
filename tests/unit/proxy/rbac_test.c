/* Tests proxy/rbac.c: a decision table per permission and principal kind, then the actions
 * (ALLOW, DENY, LOG), shadow rules, missing and empty rules, policy order and the details. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lib/addr.h"
#include "lib/arena.h"
#include "proxy/rbac.h"
#include "tests/lib/tap.h"

static struct arena a;

static void bail(const char *what)
{
	printf("Bail out! %s\n", what);
	exit(1);
}

static struct px_rbac_node *node(enum px_rbac_kind k)
{
	struct px_rbac_node *n = arena_new(&a, struct px_rbac_node, 1);

	memset(n, 0, sizeof(*n));
	n->kind = k;
	return n;
}

static struct px_string_matcher str(enum px_str_match k, const char *v)
{
	return (struct px_string_matcher){.kind = k, .value = v};
}

static struct px_rbac_node *hdr(const char *name, enum px_str_match k, const char *v, bool invert)
{
	struct px_rbac_node *n = node(PX_RBAC_HEADER);

	n->header.name = name;
	n->header.kind = PX_HDR_STRING;
	n->header.str = str(k, v);
	n->header.invert = invert;
	return n;
}

static struct px_rbac_node *present(const char *name)
{
	struct px_rbac_node *n = node(PX_RBAC_HEADER);

	n->header.name = name;
	n->header.kind = PX_HDR_PRESENT;
	n->header.present = true;
	return n;
}

static struct px_rbac_node *strnode(enum px_rbac_kind kind, enum px_str_match k, const char *v)
{
	struct px_rbac_node *n = node(kind);

	n->str = str(k, v);
	n->has_str = kind == PX_RBAC_AUTHENTICATED;
	return n;
}

static struct px_rbac_node *cidr(enum px_rbac_kind kind, const char *ip, uint32_t len)
{
	struct px_rbac_node *n = node(kind);

	if (px_cidr_parse(&n->cidr, ip, len))
		bail(ip);
	return n;
}

static struct px_rbac_node *ports(uint32_t lo, uint32_t hi)
{
	struct px_rbac_node *n = node(PX_RBAC_DST_PORT);

	n->ports.lo = lo;
	n->ports.hi = hi;
	return n;
}

/* and/or of the given nodes (copied into one array). */
static struct px_rbac_node *set(enum px_rbac_kind kind, int cnt, ...)
{
	struct px_rbac_node *n = node(kind);
	va_list ap;

	n->set.v = arena_new(&a, struct px_rbac_node, cnt);
	n->set.n = (uint32_t)cnt;
	va_start(ap, cnt);
	for (int i = 0; i < cnt; i++)
		n->set.v[i] = *va_arg(ap, struct px_rbac_node *);
	va_end(ap);
	return n;
}

static struct px_rbac_node *negate(struct px_rbac_node *x)
{
	struct px_rbac_node *n = node(PX_RBAC_NOT);

	n->negated = x;
	return n;
}

/* ---- the request every row looks at ---------------------------------------------------------- */

static struct px_hdr hdrs[] = {
	{"x-user", 6, "alice", 5},
	{"user-agent", 10, "curl/8.0", 8},
};
static struct px_req_view req = {
	.method = "GET",
	.method_len = 3,
	.authority = "api.example.com",
	.authority_len = 15,
	.path = "/api/v1/items?limit=5",
	.path_len = 21,
	.scheme = "http",
	.scheme_len = 4,
	.hdrs = hdrs,
	.nhdrs = 2,
};
static struct shunt_addr dst, peer, client;

static struct px_rbac_input input(void)
{
	return (struct px_rbac_input){
		.req = &req,
		.dst = &dst,
		.dst_port = 8080,
		.direct_remote = &peer,
		.remote = &client,
		.sni = "api.example.com",
		.authenticated = true,
		.principal = "spiffe://cluster.local/ns/foo/sa/bar",
	};
}

/* ALLOW with one policy: the node as permission (principal any) or as principal. */
static bool matches(struct px_rbac_node *n, bool as_principal, const struct px_rbac_input *in)
{
	struct px_rbac_policy p = {.name = "p",
				   .permissions = as_principal ? node(PX_RBAC_ANY) : n,
				   .npermissions = 1,
				   .principals = as_principal ? n : node(PX_RBAC_ANY),
				   .nprincipals = 1};
	struct px_rbac_rules r = {.action = PX_RBAC_ALLOW, .policies = &p, .npolicies = 1};
	struct px_rbac f = {.rules = &r};
	const char *err = NULL;
	const char *pol;
	bool got;

	if (px_rbac_prepare(&a, &f, &err))
		bail(err ? err : "prepare");
	got = px_rbac_rules_allow(&r, in, &pol);
	px_rbac_release(&f);
	return got;
}

static void test_permissions(void)
{
	struct px_rbac_input in = input();
	struct px_rbac_input plain = input(), net = input(), nosni = input();
	const struct {
		const char *what;
		struct px_rbac_node *n;
		const struct px_rbac_input *in;
		bool want;
	} rows[] = {
		{"any", node(PX_RBAC_ANY), &in, true},
		{"header exact", hdr("x-user", PX_STR_EXACT, "alice", false), &in, true},
		{"header exact, other value", hdr("x-user", PX_STR_EXACT, "bob", false), &in,
		 false},
		{"header prefix", hdr("user-agent", PX_STR_PREFIX, "curl/", false), &in, true},
		{"header suffix", hdr("x-user", PX_STR_SUFFIX, "ice", false), &in, true},
		{"header contains", hdr("user-agent", PX_STR_CONTAINS, "rl/8", false), &in, true},
		{"header safe_regex", hdr("x-user", PX_STR_REGEX, "a[a-z]+e", false), &in, true},
		{"header regex is anchored", hdr("x-user", PX_STR_REGEX, "lic", false), &in, false},
		{"header inverted", hdr("x-user", PX_STR_EXACT, "bob", true), &in, true},
		{"header absent, inverted", hdr("x-none", PX_STR_EXACT, "bob", true), &in, false},
		{"header present", present("x-user"), &in, true},
		{"header present, absent", present("x-none"), &in, false},
		{":method", hdr(":method", PX_STR_EXACT, "GET", false), &in, true},
		{":method POST", hdr(":method", PX_STR_EXACT, "POST", false), &in, false},
		{":path keeps the query", hdr(":path", PX_STR_SUFFIX, "limit=5", false), &in, true},
		{"url_path exact, query dropped",
		 strnode(PX_RBAC_URL_PATH, PX_STR_EXACT, "/api/v1/items"), &in, true},
		{"url_path prefix", strnode(PX_RBAC_URL_PATH, PX_STR_PREFIX, "/api/"), &in, true},
		{"url_path other", strnode(PX_RBAC_URL_PATH, PX_STR_PREFIX, "/admin"), &in, false},
		{"url_path regex", strnode(PX_RBAC_URL_PATH, PX_STR_REGEX, "/api/v[0-9]+/.*"), &in,
		 true},
		{"destination_ip in", cidr(PX_RBAC_DST_IP, "10.0.0.0", 24), &in, true},
		{"destination_ip out", cidr(PX_RBAC_DST_IP, "10.0.1.0", 24), &in, false},
		{"destination_ip /32", cidr(PX_RBAC_DST_IP, "10.0.0.5", 32), &in, true},
		{"destination_port", ports(8080, 8081), &in, true},
		{"destination_port other", ports(80, 81), &in, false},
		{"destination_port_range in", ports(8000, 9000), &in, true},
		{"destination_port_range end excluded", ports(8000, 8080), &in, false},
		{"requested_server_name", strnode(PX_RBAC_SNI, PX_STR_SUFFIX, ".example.com"), &in,
		 true},
		{"requested_server_name other", strnode(PX_RBAC_SNI, PX_STR_EXACT, "x"), &in,
		 false},
		{"requested_server_name none vs exact \"\"", strnode(PX_RBAC_SNI, PX_STR_EXACT, ""),
		 &nosni, true},
		{"not_rule of a match", negate(ports(8080, 8081)), &in, false},
		{"not_rule of a miss", negate(ports(80, 81)), &in, true},
		{"and_rules all", set(PX_RBAC_AND, 2, ports(8080, 8081), present("x-user")), &in,
		 true},
		{"and_rules one misses", set(PX_RBAC_AND, 2, ports(8080, 8081), present("x-none")),
		 &in, false},
		{"or_rules one", set(PX_RBAC_OR, 2, ports(1, 2), present("x-user")), &in, true},
		{"or_rules none", set(PX_RBAC_OR, 2, ports(1, 2), present("x-none")), &in, false},
		{"nested: and(or(miss, hit), negate(miss))",
		 set(PX_RBAC_AND, 2, set(PX_RBAC_OR, 2, ports(1, 2), present("x-user")),
		     negate(present("x-none"))),
		 &in, true},
		{"nested: or(and(hit, miss), negate(hit))",
		 set(PX_RBAC_OR, 2, set(PX_RBAC_AND, 2, ports(8080, 8081), present("x-none")),
		     negate(present("x-user"))),
		 &in, false},
		{"network: header matches nothing", present("x-user"), &net, false},
		{"network: negate(header) matches", negate(present("x-user")), &net, true},
		{"network: url_path matches nothing", strnode(PX_RBAC_URL_PATH, PX_STR_PREFIX, "/"),
		 &net, false},
		{"plain: destination_port still matches", ports(8080, 8081), &plain, true},
	};

	net.req = NULL;
	nosni.sni = NULL;
	plain.authenticated = false;
	plain.principal = NULL;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		is_int(matches(rows[i].n, false, rows[i].in), rows[i].want, "permission %s -> %s",
		       rows[i].what, rows[i].want ? "match" : "no match");
}

static void test_principals(void)
{
	struct px_rbac_input in = input(), plain = input(), dns = input();
	const char *sp = "spiffe://cluster.local/ns/foo/sa/bar";
	const struct {
		const char *what;
		struct px_rbac_node *n;
		const struct px_rbac_input *in;
		bool want;
	} rows[] = {
		{"any", node(PX_RBAC_ANY), &in, true},
		{"authenticated, no principal_name", node(PX_RBAC_AUTHENTICATED), &in, true},
		{"authenticated, no principal_name, plain", node(PX_RBAC_AUTHENTICATED), &plain,
		 false},
		{"principal_name exact", strnode(PX_RBAC_AUTHENTICATED, PX_STR_EXACT, sp), &in,
		 true},
		{"principal_name exact, other sa",
		 strnode(PX_RBAC_AUTHENTICATED, PX_STR_EXACT,
			 "spiffe://cluster.local/ns/foo/sa/baz"),
		 &in, false},
		{"principal_name prefix (namespace)",
		 strnode(PX_RBAC_AUTHENTICATED, PX_STR_PREFIX, "spiffe://cluster.local/ns/foo/"),
		 &in, true},
		{"principal_name suffix (any trust domain)",
		 strnode(PX_RBAC_AUTHENTICATED, PX_STR_SUFFIX, "/ns/foo/sa/bar"), &in, true},
		{"principal_name regex",
		 strnode(PX_RBAC_AUTHENTICATED, PX_STR_REGEX, "spiffe://[^/]+/ns/foo/sa/.*"), &in,
		 true},
		{"principal_name, plain", strnode(PX_RBAC_AUTHENTICATED, PX_STR_PREFIX, ""), &plain,
		 false},
		{"principal_name against a DNS SAN",
		 strnode(PX_RBAC_AUTHENTICATED, PX_STR_EXACT, "client.example.com"), &dns, true},
		{"direct_remote_ip in", cidr(PX_RBAC_DIRECT_REMOTE_IP, "192.168.1.0", 24), &in,
		 true},
		{"direct_remote_ip is not the XFF client",
		 cidr(PX_RBAC_DIRECT_REMOTE_IP, "203.0.113.9", 32), &in, false},
		{"remote_ip is the trusted client", cidr(PX_RBAC_REMOTE_IP, "203.0.113.0", 24), &in,
		 true},
		{"remote_ip is not the peer", cidr(PX_RBAC_REMOTE_IP, "192.168.1.7", 32), &in,
		 false},
		{"remote_ip without XFF is the peer", cidr(PX_RBAC_REMOTE_IP, "192.168.1.7", 32),
		 &plain, true},
		{"header", hdr("x-user", PX_STR_EXACT, "alice", false), &in, true},
		{"url_path", strnode(PX_RBAC_URL_PATH, PX_STR_EXACT, "/api/v1/items"), &in, true},
		{"not_id of a match", negate(strnode(PX_RBAC_AUTHENTICATED, PX_STR_EXACT, sp)), &in,
		 false},
		{"not_id of a miss, plain", negate(node(PX_RBAC_AUTHENTICATED)), &plain, true},
		{"or_ids (Istio's principals)",
		 set(PX_RBAC_OR, 2,
		     strnode(PX_RBAC_AUTHENTICATED, PX_STR_EXACT,
			     "spiffe://cluster.local/ns/x/sa/y"),
		     strnode(PX_RBAC_AUTHENTICATED, PX_STR_EXACT, sp)),
		 &in, true},
		{"and_ids (Istio's principal + namespace)",
		 set(PX_RBAC_AND, 2, strnode(PX_RBAC_AUTHENTICATED, PX_STR_SUFFIX, "/sa/bar"),
		     strnode(PX_RBAC_AUTHENTICATED, PX_STR_REGEX, ".*/ns/foo/.*")),
		 &in, true},
		{"and_ids, one misses",
		 set(PX_RBAC_AND, 2, strnode(PX_RBAC_AUTHENTICATED, PX_STR_SUFFIX, "/sa/bar"),
		     cidr(PX_RBAC_DIRECT_REMOTE_IP, "10.0.0.0", 8)),
		 &in, false},
	};

	plain.authenticated = false;
	plain.principal = NULL;
	plain.remote = NULL;
	dns.principal = "client.example.com";
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		is_int(matches(rows[i].n, true, rows[i].in), rows[i].want, "principal %s -> %s",
		       rows[i].what, rows[i].want ? "match" : "no match");
}

/* ---- actions ------------------------------------------------------------------------------------ */

/* Two policies, in name order: "a-admin" (path /admin) and "b-api" (path /api/). */
static struct px_rbac_policy two[2];

static void make_two(void)
{
	two[0] = (struct px_rbac_policy){
		.name = "a-admin",
		.permissions = strnode(PX_RBAC_URL_PATH, PX_STR_PREFIX, "/admin"),
		.npermissions = 1,
		.principals = node(PX_RBAC_ANY),
		.nprincipals = 1,
	};
	two[1] = (struct px_rbac_policy){
		.name = "b-api",
		.permissions = set(PX_RBAC_OR, 2, strnode(PX_RBAC_URL_PATH, PX_STR_PREFIX, "/api/"),
				   ports(1, 2)),
		.npermissions = 1,
		.principals = strnode(PX_RBAC_AUTHENTICATED, PX_STR_PREFIX,
				      "spiffe://cluster.local/ns/foo/"),
		.nprincipals = 1,
	};
}

static void test_actions(void)
{
	struct px_rbac_input api = input(), admin = input(), other = input(), anon = input();
	struct px_req_view radmin = req, rother = req;
	const struct {
		enum px_rbac_action action;
		const struct px_rbac_input *in;
		bool allowed;
		const char *policy;
		const char *what;
	} rows[] = {
		{PX_RBAC_ALLOW, &api, true, "b-api", "ALLOW, matched"},
		{PX_RBAC_ALLOW, &admin, true, "a-admin", "ALLOW, the other policy"},
		{PX_RBAC_ALLOW, &other, false, NULL, "ALLOW, nothing matched"},
		{PX_RBAC_ALLOW, &anon, false, NULL, "ALLOW, permission but no principal"},
		{PX_RBAC_DENY, &api, false, "b-api", "DENY, matched"},
		{PX_RBAC_DENY, &other, true, NULL, "DENY, nothing matched"},
		{PX_RBAC_DENY, &anon, true, NULL, "DENY, principal missing"},
		{PX_RBAC_LOG, &api, true, "b-api", "LOG, matched"},
		{PX_RBAC_LOG, &other, true, NULL, "LOG, nothing matched"},
	};

	radmin.path = "/admin/x";
	radmin.path_len = 8;
	rother.path = "/other";
	rother.path_len = 6;
	admin.req = &radmin;
	other.req = &rother;
	anon.authenticated = false;
	anon.principal = NULL;
	make_two();
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct px_rbac_rules r = {
			.action = rows[i].action, .policies = two, .npolicies = 2};
		const char *pol = "unset";
		bool got = px_rbac_rules_allow(&r, rows[i].in, &pol);

		is_int(got, rows[i].allowed, "%s: %s", rows[i].what,
		       rows[i].allowed ? "allowed" : "denied");
		if (rows[i].policy)
			is_str(pol, rows[i].policy, "%s: policy %s", rows[i].what, rows[i].policy);
		else
			ok(pol == NULL, "%s: no policy", rows[i].what);
	}
}

static void test_first_policy_named(void)
{
	struct px_rbac_input in = input();
	struct px_rbac_policy p[2] = {
		{.name = "ns[foo]-policy[a]-rule[0]",
		 .permissions = node(PX_RBAC_ANY),
		 .npermissions = 1,
		 .principals = node(PX_RBAC_ANY),
		 .nprincipals = 1},
		{.name = "ns[foo]-policy[b]-rule[0]",
		 .permissions = node(PX_RBAC_ANY),
		 .npermissions = 1,
		 .principals = node(PX_RBAC_ANY),
		 .nprincipals = 1},
	};
	struct px_rbac_rules r = {.action = PX_RBAC_DENY, .policies = p, .npolicies = 2};
	const char *pol;
	char details[PX_RBAC_DETAILS_MAX];

	ok(!px_rbac_rules_allow(&r, &in, &pol), "DENY with two matching policies denies");
	is_str(pol, "ns[foo]-policy[a]-rule[0]", "the first one (in name order) is named");
	px_rbac_details(details, sizeof(details), pol);
	is_str(details, "rbac_access_denied_matched_policy[ns[foo]-policy[a]-rule[0]]",
	       "details name the policy");
	px_rbac_details(details, sizeof(details), NULL);
	is_str(details, "rbac_access_denied_matched_policy[none]", "details without a policy");
	px_rbac_details(details, sizeof(details), "has space");
	is_str(details, "rbac_access_denied_matched_policy[has_space]", "details stay one token");
}

static void test_filter(void)
{
	struct px_rbac_input in = input(), other = input();
	struct px_req_view rother = req;
	struct px_rbac_rules allow = {.action = PX_RBAC_ALLOW, .policies = two, .npolicies = 2};
	struct px_rbac_rules deny = {.action = PX_RBAC_DENY, .policies = two, .npolicies = 2};
	struct px_rbac_rules empty_allow = {.action = PX_RBAC_ALLOW};
	struct px_rbac_rules empty_deny = {.action = PX_RBAC_DENY};
	struct px_rbac f;
	struct px_rbac_decision d;

	rother.path = "/other";
	rother.path_len = 6;
	other.req = &rother;
	make_two();

	f = (struct px_rbac){0};
	px_rbac_eval(&f, &other, &d);
	ok(d.enforced.allowed && !d.has_shadow, "no rules: allowed, no shadow");

	f = (struct px_rbac){.rules = &empty_allow};
	px_rbac_eval(&f, &in, &d);
	ok(!d.enforced.allowed && !d.enforced.policy, "ALLOW with no policies denies everything");
	f = (struct px_rbac){.rules = &empty_deny};
	px_rbac_eval(&f, &in, &d);
	ok(d.enforced.allowed, "DENY with no policies allows everything");

	f = (struct px_rbac){.shadow = &deny};
	px_rbac_eval(&f, &in, &d);
	ok(d.enforced.allowed, "shadow only: enforced allows");
	ok(d.has_shadow && !d.shadow.allowed, "shadow DENY matched: shadow denied");
	is_str(d.shadow.policy, "b-api", "shadow names its policy");

	f = (struct px_rbac){.rules = &allow, .shadow = &deny};
	px_rbac_eval(&f, &in, &d);
	ok(d.enforced.allowed && !d.shadow.allowed, "rules allow while shadow would deny");
	px_rbac_eval(&f, &other, &d);
	ok(!d.enforced.allowed && d.shadow.allowed, "rules deny while shadow would allow");

	/* What a run counts: enforced only with rules, shadow only with shadow rules. */
	const char *policy = "unset";

	f = (struct px_rbac){0};
	ok(px_rbac_check(&f, &in, &policy) == 0 && !policy, "check, no rules: counts nothing");
	f = (struct px_rbac){.shadow = &deny};
	ok(px_rbac_check(&f, &in, &policy) == PX_RBAC_SHADOW_DENIED,
	   "check, shadow only: shadow denied, nothing enforced");
	f = (struct px_rbac){.rules = &allow, .shadow = &deny};
	ok(px_rbac_check(&f, &in, &policy) == (PX_RBAC_ALLOWED | PX_RBAC_SHADOW_DENIED),
	   "check: allowed, shadow denied");
	ok(px_rbac_check(&f, &other, &policy) == (PX_RBAC_DENIED | PX_RBAC_SHADOW_ALLOWED) &&
		   !policy,
	   "check: denied by an ALLOW nothing matched (no policy), shadow allowed");
	f = (struct px_rbac){.rules = &deny};
	ok(px_rbac_check(&f, &in, &policy) == PX_RBAC_DENIED && policy && !strcmp(policy, "b-api"),
	   "check: a DENY names the policy that matched");
}

int main(void)
{
	if (addr_parse(&dst, "10.0.0.5") || addr_parse(&peer, "192.168.1.7") ||
	    addr_parse(&client, "203.0.113.9"))
		bail("addr_parse");
	test_permissions();
	test_principals();
	test_actions();
	test_first_policy_named();
	test_filter();
	arena_free(&a);
	return done_testing();
}
