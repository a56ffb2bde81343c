/* HTTP routing as Envoy's RouteConfiguration describes it: virtual hosts by authority, routes by
 * path, headers and query parameters, and what a matched route does. Part of a config
 * snapshot: immutable once finalised; regexes are compiled then. */
#ifndef SHUNT_PROXY_ROUTE_H
#define SHUNT_PROXY_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PX_ROUTE_TIMEOUT_MS_DEF 15000 /* Envoy's route timeout default */

struct pcre2_real_code_8;

/* A string matcher: Envoy's StringMatcher (and the old header matcher forms). */
enum px_str_match {
	PX_STR_EXACT,
	PX_STR_PREFIX,
	PX_STR_SUFFIX,
	PX_STR_CONTAINS,
	PX_STR_REGEX, /* safe_regex, matched against the whole value */
};

struct px_string_matcher {
	enum px_str_match kind;
	const char *value; /* the literal, or the regex source */
	bool ignore_case;
	struct pcre2_real_code_8 *re; /* compiled by px_route_config_finalize */
};

enum px_hdr_match {
	PX_HDR_STRING,	/* string_match (and exact/prefix/suffix/contains/safe_regex forms) */
	PX_HDR_PRESENT, /* present_match */
	PX_HDR_RANGE,	/* range_match: integer in [start, end) */
};

struct px_header_matcher {
	const char *name; /* lower case; pseudo-headers :method :authority :path :scheme too */
	enum px_hdr_match kind;
	struct px_string_matcher str;
	bool present; /* for PX_HDR_PRESENT: true = must be present */
	int64_t range_start, range_end;
	bool invert;
	bool treat_missing_as_empty;
};

struct px_query_matcher {
	const char *name;
	bool present_only; /* present_match */
	struct px_string_matcher str;
};

enum px_path_match {
	PX_PATH_PREFIX,
	PX_PATH_EXACT,
	PX_PATH_REGEX,
	PX_PATH_SEPARATED_PREFIX, /* path_separated_prefix: prefix ending at '/', '?' or the end */
	PX_PATH_CONNECT,	  /* connect_matcher: CONNECT requests, and only they */
};

struct px_route_match {
	enum px_path_match kind;
	const char *path; /* prefix, path or regex source */
	bool case_insensitive;
	struct pcre2_real_code_8 *re;
	struct px_header_matcher *headers;
	uint32_t nheaders;
	struct px_query_matcher *query;
	uint32_t nquery;
};

/* retry_on conditions, as bits. */
#define PX_RETRY_5XX			(1u << 0)
#define PX_RETRY_GATEWAY_ERROR		(1u << 1)
#define PX_RETRY_RESET			(1u << 2)
#define PX_RETRY_CONNECT_FAILURE	(1u << 3)
#define PX_RETRY_REFUSED_STREAM		(1u << 4)
#define PX_RETRY_RETRIABLE_4XX		(1u << 5)
#define PX_RETRY_RETRIABLE_STATUS_CODES (1u << 6)
#define PX_RETRY_UNAVAILABLE		(1u << 7)  /* gRPC status 14 */
#define PX_RETRY_CANCELLED		(1u << 8)  /* gRPC status 1 */
#define PX_RETRY_DEADLINE_EXCEEDED	(1u << 9)  /* gRPC status 4 */
#define PX_RETRY_RESOURCE_EXHAUSTED	(1u << 10) /* gRPC status 8 */
#define PX_RETRY_INTERNAL		(1u << 11) /* gRPC status 13 */
/* The gRPC status codes those name (the gRPC spec's numbering). */
#define PX_GRPC_CANCELLED	   1
#define PX_GRPC_DEADLINE_EXCEEDED  4
#define PX_GRPC_RESOURCE_EXHAUSTED 8
#define PX_GRPC_INTERNAL	   13
#define PX_GRPC_UNAVAILABLE	   14
#define PX_RETRY_GRPC                                                                              \
	(PX_RETRY_CANCELLED | PX_RETRY_DEADLINE_EXCEEDED | PX_RETRY_RESOURCE_EXHAUSTED |           \
	 PX_RETRY_INTERNAL | PX_RETRY_UNAVAILABLE)

struct px_retry_policy {
	uint32_t retry_on;
	uint32_t num_retries; /* Envoy's default when a policy exists: 1 */
	uint32_t per_try_timeout_ms;
	uint32_t base_interval_ms; /* backoff; Envoy's default 25 ms, max 10x */
	uint32_t max_interval_ms;
	uint16_t *retriable_status_codes;
	uint32_t nretriable_status_codes;
	bool previous_hosts; /* retry_host_predicate previous_hosts */
	uint32_t host_selection_retry_max_attempts;
};

/* Parses Envoy's retry_on list ("5xx,reset,connect-failure"); -EINVAL names the bad item in
 * *bad. Every condition Envoy knows is accepted; those the proxy does not act on add no bit. */
int px_retry_on_parse(const char *list, uint32_t *bits, const char **bad);

/* Envoy's request headers that shape retries (x-envoy-retry-on, x-envoy-retry-grpc-on): the
 * conditions a comma list of v[0..len) names. Unknown names are ignored, as Envoy ignores them,
 * and so are gRPC names in the HTTP list and HTTP names in the gRPC one (grpc picks the list). */
uint32_t px_retry_on_header(const char *v, size_t len, bool grpc);
/* An unsigned decimal header value as Envoy reads one (absl's SimpleAtoi): blanks around it and
 * a '+' allowed; false for anything else, an empty value, a sign or an overflow. */
bool px_header_uint(const char *v, size_t len, uint64_t *out);
/* x-envoy-retriable-status-codes: appends each number of the comma list to codes[n..max) and
 * returns the new count; items that are no number are skipped, as Envoy skips them. Sets
 * *dropped when codes is full before the list ends. */
uint32_t px_status_codes_header(const char *v, size_t len, uint16_t *codes, uint32_t n,
				uint32_t max, bool *dropped);

/* How an attempt ended without a response, as Envoy's stream reset reasons: it never
 * connected (or not in time), the upstream refused the stream (REFUSED_STREAM: not processed)
 * or reset it, the connection closed under it, the upstream broke the protocol, or the proxy
 * itself gave up on it (a per-try timeout, no memory). */
enum px_upstream_reset {
	PX_RESET_CONNECT_FAILURE, /* UF  connection_failure */
	PX_RESET_CONNECT_TIMEOUT, /* UF  connection_timeout */
	PX_RESET_REFUSED_STREAM,  /* UR  remote_refused_stream_reset */
	PX_RESET_REMOTE,	  /* UR  remote_reset */
	PX_RESET_TERMINATION,	  /* UC  connection_termination */
	PX_RESET_PROTOCOL_ERROR,  /* UPE protocol_error */
	PX_RESET_LOCAL,		  /* LR  local_reset */
	PX_RESET_KINDS,
};

/* Whether the policy's retry_on covers a response with this HTTP status and grpc-status (-1
 * when the headers carry none); a NULL policy covers nothing. */
bool px_retry_on_response(const struct px_retry_policy *rp, int status, int grpc_status);
/* Whether it covers an attempt that ended in this kind of reset. */
bool px_retry_on_reset(const struct px_retry_policy *rp, enum px_upstream_reset r);

enum px_header_append {
	PX_APPEND_IF_EXISTS_OR_ADD,
	PX_ADD_IF_ABSENT,
	PX_OVERWRITE_IF_EXISTS_OR_ADD
};

struct px_header_value {
	const char *name; /* lower case */
	const char *value;
	enum px_header_append append;
};

struct px_header_mutation {
	struct px_header_value *add;
	uint32_t nadd;
	const char **remove;
	uint32_t nremove;
};

enum px_hash_kind {
	PX_HASH_HEADER,
	PX_HASH_COOKIE,
	PX_HASH_SOURCE_IP
};

struct px_hash_policy {
	enum px_hash_kind kind;
	const char *name; /* header or cookie name */
	bool terminal;
};

struct px_weighted_route_cluster {
	const char *cluster;
	uint32_t weight;
	struct px_header_mutation request, response;
};

/* One upgrade_configs entry (HCM or route): the Upgrade value ("websocket", ...) or "CONNECT",
 * compared case-insensitively. A route's entry overrides the HCM's enabled flag for that type;
 * a type the HCM does not list is refused whatever the route says, as Envoy does. */
struct px_upgrade {
	const char *type;
	bool enabled;
	bool connect_terminate; /* route only: connect_config, the proxy ends CONNECT itself */
};

struct px_route_action {
	struct px_upgrade *upgrades;
	uint32_t nupgrades;
	const char *cluster;
	struct px_weighted_route_cluster *weighted;
	uint32_t nweighted;
	uint32_t total_weight;
	const char *cluster_header; /* route to the cluster named by this request header */
	uint32_t timeout_ms;	    /* 0: PX_ROUTE_TIMEOUT_MS_DEF, unless no_timeout */
	bool no_timeout;	    /* timeout: 0s in the config */
	uint32_t idle_timeout_ms;
	/* gRPC requests: the request's grpc-timeout replaces the route timeout (max_stream_duration
	 * .grpc_timeout_header_max, or the older max_grpc_timeout): capped by grpc_timeout_max_ms
	 * (0: no cap; no header: the cap, or none), less grpc_timeout_offset_ms if larger. */
	bool grpc_timeout;
	uint32_t grpc_timeout_max_ms;
	uint32_t grpc_timeout_offset_ms;
	/* The older max_grpc_timeout: Envoy also rewrites the upstream grpc-timeout to the deadline
	 * it enforces (the per-try timeout if shorter), so the server knows the real one. */
	bool grpc_timeout_rewrite;
	const char *prefix_rewrite;
	const char *regex_rewrite_pattern; /* with regex_rewrite_substitution */
	const char *regex_rewrite_substitution;
	struct pcre2_real_code_8 *rewrite_re;
	const char *host_rewrite_literal;
	struct px_retry_policy *retry; /* NULL: the virtual host's, if any */
	struct px_hash_policy *hash;
	uint32_t nhash;
};

struct px_redirect {
	const char *scheme, *host, *path, *prefix_rewrite;
	uint32_t port;
	uint32_t response_code; /* 301 by default */
	bool strip_query;
};

struct px_direct_response {
	uint32_t status;
	const char *body;
};

enum px_route_kind {
	PX_ROUTE_FORWARD,
	PX_ROUTE_REDIRECT,
	PX_ROUTE_DIRECT
};

struct px_rbac; /* proxy/rbac.h */

/* typed_per_filter_config for an RBAC filter (RBACPerRoute): the filter's name and its rbac
 * override; NULL: the filter is disabled here (an empty RBACPerRoute). */
struct px_rbac_override {
	const char *filter;
	const struct px_rbac *rbac;
};

struct px_route {
	const char *name;
	struct px_rbac_override *rbac;
	uint32_t nrbac;
	struct px_route_match match;
	enum px_route_kind kind;
	struct px_route_action action;
	struct px_redirect redirect;
	struct px_direct_response direct;
	struct px_header_mutation request, response;
};

struct px_vhost {
	const char *name;
	struct px_rbac_override *rbac; /* used when the route has none for the filter */
	uint32_t nrbac;
	const char **domains;
	uint32_t ndomains;
	struct px_route *routes;
	uint32_t nroutes;
	struct px_retry_policy *retry;
	bool include_attempt_count; /* include_request_attempt_count (Istio sets it) */
	struct px_header_mutation request, response;
};

struct px_route_config {
	const char *name;
	struct px_vhost *vhosts;
	uint32_t nvhosts;
	struct px_header_mutation request, response;
};

/* One header as a codec hands it over (spans into the codec's buffer). */
struct px_hdr {
	const char *name;
	uint32_t name_len;
	const char *value;
	uint32_t value_len;
};

/* What routing looks at in a request. */
struct px_req_view {
	const char *method, *scheme, *authority, *path; /* path includes the query */
	size_t method_len, scheme_len, authority_len, path_len;
	const struct px_hdr *hdrs;
	uint32_t nhdrs;
};

/* Compiles the regexes; -EINVAL with *err (static text or arena'd) naming the bad one. */
struct arena;
int px_route_config_finalize(struct arena *a, struct px_route_config *rc, const char **err);
void px_route_config_release(struct px_route_config *rc);

/* Envoy's virtual-host selection: an exact domain, then the longest "*.suffix" / "*suffix",
 * then the longest "prefix*", then "*". Case-insensitive. NULL if none. */
const struct px_vhost *px_vhost_match(const struct px_route_config *rc, const char *authority,
				      size_t len);
/* The first route of the virtual host whose path, headers and query parameters all match. */
const struct px_route *px_route_match(const struct px_vhost *vh, const struct px_req_view *r);
bool px_string_match(const struct px_string_matcher *m, const char *s, size_t len);
/* Compiles a PX_STR_REGEX matcher (others need nothing); -EINVAL with *err (arena'd). */
int px_string_matcher_prepare(struct arena *a, struct px_string_matcher *m, const char **err);
void px_string_matcher_release(struct px_string_matcher *m);
/* Envoy's HeaderMatcher over a request (invert_match, treat_missing_header_as_empty). */
bool px_header_match(const struct px_header_matcher *m, const struct px_req_view *r);
/* Envoy's upgrade decision for a request asking for upgrade type (len bytes): the HCM must list
 * it; the route's entry, if any, then decides, else the HCM's enabled flag. */
bool px_upgrade_allowed(const struct px_upgrade *hcm, uint32_t nhcm, const struct px_upgrade *route,
			uint32_t nroute, const char *type, size_t len);
/* A header's value by case-insensitive name (pseudo-headers from the view); NULL if absent. */
const char *px_req_header(const struct px_req_view *r, const char *name, size_t *len);

#endif
