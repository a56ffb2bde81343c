/* Tests proxy/route.c: virtual-host selection, route matching by path, headers and query
 * parameters, retry_on parsing. Each table row is one request and the route it must reach. */
#include <errno.h>
#include <string.h>

#include "lib/arena.h"
#include "proxy/route.h"
#include "tests/lib/tap.h"

static struct arena a;

/* ---- virtual hosts ---------------------------------------------------------------------------- */

static const char *d_exact[] = {"reviews", "reviews:9080", "reviews.default.svc.cluster.local"};
static const char *d_suffix[] = {"*.example.com"};
static const char *d_longer_suffix[] = {"*.api.example.com"};
static const char *d_prefix[] = {"foo.*"};
static const char *d_any[] = {"*"};

static struct px_vhost vhosts[] = {
	{.name = "any", .domains = d_any, .ndomains = 1},
	{.name = "suffix", .domains = d_suffix, .ndomains = 1},
	{.name = "longer-suffix", .domains = d_longer_suffix, .ndomains = 1},
	{.name = "prefix", .domains = d_prefix, .ndomains = 1},
	{.name = "exact", .domains = d_exact, .ndomains = 3},
};

static const struct {
	const char *authority, *want;
} vh_cases[] = {
	{"reviews", "exact"},
	{"REVIEWS:9080", "exact"},
	{"reviews.default.svc.cluster.local", "exact"},
	{"www.example.com", "suffix"},
	{"v1.api.example.com", "longer-suffix"},
	{"example.com", "any"}, /* "*.example.com" needs something before the dot */
	{"foo.bar", "prefix"},
	{"foo.api.example.com", "longer-suffix"}, /* suffix wildcards beat prefix wildcards */
	{"ratings:9080", "any"},
};

static void test_vhosts(void)
{
	struct px_route_config rc = {.name = "80", .vhosts = vhosts, .nvhosts = 5};

	for (size_t i = 0; i < sizeof(vh_cases) / sizeof(vh_cases[0]); i++) {
		const struct px_vhost *vh =
			px_vhost_match(&rc, vh_cases[i].authority, strlen(vh_cases[i].authority));

		is_str(vh ? vh->name : NULL, vh_cases[i].want, "host %s -> %s",
		       vh_cases[i].authority, vh_cases[i].want);
	}
	rc.nvhosts = 4;
	rc.vhosts = &vhosts[1];
	ok(px_vhost_match(&rc, "ratings", 7) == NULL,
	   "no wildcard vhost: an unknown host has none");
}

/* ---- routes ------------------------------------------------------------------------------------ */

static struct px_header_matcher h_v2[] = {
	{.name = "x-version", .kind = PX_HDR_STRING, .str = {.kind = PX_STR_EXACT, .value = "v2"}}};
static struct px_header_matcher h_canary[] = {
	{.name = "cookie",
	 .kind = PX_HDR_STRING,
	 .str = {.kind = PX_STR_REGEX, .value = "^(.*?;)?(user=jason)(;.*)?$"}}};
static struct px_header_matcher h_not_mobile[] = {
	{.name = "user-agent",
	 .kind = PX_HDR_STRING,
	 .str = {.kind = PX_STR_CONTAINS, .value = "mobile", .ignore_case = true},
	 .invert = true}};
static struct px_header_matcher h_present[] = {
	{.name = "x-debug", .kind = PX_HDR_PRESENT, .present = true}};
static struct px_header_matcher h_range[] = {
	{.name = "x-tier", .kind = PX_HDR_RANGE, .range_start = 1, .range_end = 10}};
static struct px_header_matcher h_method[] = {
	{.name = ":method", .kind = PX_HDR_STRING, .str = {.kind = PX_STR_EXACT, .value = "POST"}}};
static struct px_query_matcher q_debug[] = {{.name = "debug", .present_only = true}};
static struct px_query_matcher q_lang[] = {
	{.name = "lang", .str = {.kind = PX_STR_PREFIX, .value = "en"}}};

static struct px_route routes[] = {
	{.name = "exact-health", .match = {.kind = PX_PATH_EXACT, .path = "/healthz"}},
	{.name = "v2-header",
	 .match = {.kind = PX_PATH_PREFIX, .path = "/api", .headers = h_v2, .nheaders = 1}},
	{.name = "canary-cookie",
	 .match = {.kind = PX_PATH_PREFIX, .path = "/api", .headers = h_canary, .nheaders = 1}},
	{.name = "debug-query",
	 .match = {.kind = PX_PATH_PREFIX, .path = "/api", .query = q_debug, .nquery = 1}},
	{.name = "lang-query",
	 .match = {.kind = PX_PATH_PREFIX, .path = "/docs", .query = q_lang, .nquery = 1}},
	{.name = "regex-id", .match = {.kind = PX_PATH_REGEX, .path = "/users/[0-9]+"}},
	{.name = "post-only",
	 .match = {.kind = PX_PATH_PREFIX, .path = "/submit", .headers = h_method, .nheaders = 1}},
	{.name = "debug-header",
	 .match = {.kind = PX_PATH_PREFIX, .path = "/x", .headers = h_present, .nheaders = 1}},
	{.name = "tier-range",
	 .match = {.kind = PX_PATH_PREFIX, .path = "/x", .headers = h_range, .nheaders = 1}},
	{.name = "desktop",
	 .match = {.kind = PX_PATH_PREFIX, .path = "/app", .headers = h_not_mobile, .nheaders = 1}},
	{.name = "ci-prefix",
	 .match = {.kind = PX_PATH_PREFIX, .path = "/CASE", .case_insensitive = true}},
	{.name = "separated", .match = {.kind = PX_PATH_SEPARATED_PREFIX, .path = "/v1"}},
	{.name = "api", .match = {.kind = PX_PATH_PREFIX, .path = "/api"}},
	{.name = "catch-all", .match = {.kind = PX_PATH_PREFIX, .path = "/"}},
};

/* clang-format off: one request per line. */
static const struct {
	const char *method, *path, *hname, *hvalue;
	const char *want;
} rt_cases[] = {
	{"GET", "/healthz", NULL, NULL, "exact-health"},
	{"GET", "/healthz?verbose=1", NULL, NULL, "exact-health"}, /* the query is not the path */
	{"GET", "/healthz/x", NULL, NULL, "catch-all"},
	{"GET", "/api/items", "x-version", "v2", "v2-header"},
	{"GET", "/api/items", "X-Version", "v2",
	 "v2-header"}, /* header names are case-insensitive */
	{"GET", "/api/items", "x-version", "v3", "api"},
	{"GET", "/api/items", "cookie", "a=b;user=jason;c=d", "canary-cookie"},
	{"GET", "/api/items", "cookie", "user=jasonx", "api"},
	{"GET", "/api/items?debug", NULL, NULL, "debug-query"},
	{"GET", "/api/items?x=1&debug=true", NULL, NULL, "debug-query"},
	{"GET", "/api/items?debugx=1", NULL, NULL, "api"},
	{"GET", "/docs?lang=en-GB", NULL, NULL, "lang-query"},
	{"GET", "/docs?lang=fr", NULL, NULL, "catch-all"},
	{"GET", "/users/42", NULL, NULL, "regex-id"},
	{"GET", "/users/42?x=y", NULL, NULL, "regex-id"},
	{"GET", "/users/42/posts", NULL, NULL, "catch-all"}, /* safe_regex matches the whole path */
	{"GET", "/users/abc", NULL, NULL, "catch-all"},
	{"POST", "/submit", NULL, NULL, "post-only"},
	{"GET", "/submit", NULL, NULL, "catch-all"},
	{"GET", "/x", "x-debug", "", "debug-header"},
	{"GET", "/x", "x-tier", "5", "tier-range"},
	{"GET", "/x", "x-tier", "10", "catch-all"}, /* [1, 10) */
	{"GET", "/x", "x-tier", "5a", "catch-all"},
	{"GET", "/app", "user-agent", "Desktop Firefox", "desktop"},
	{"GET", "/app", "user-agent", "Some MOBILE browser", "catch-all"},
	{"GET", "/app", NULL, NULL, "catch-all"}, /* absent header: an inverted match still fails */
	{"GET", "/case/x", NULL, NULL, "ci-prefix"},
	{"GET", "/v1", NULL, NULL, "separated"},
	{"GET", "/v1/users", NULL, NULL, "separated"},
	{"GET", "/v1beta", NULL, NULL, "catch-all"},
	{"GET", "/API", NULL, NULL, "catch-all"}, /* prefixes are case-sensitive by default */
};
/* clang-format on */

static void test_routes(void)
{
	struct px_vhost vh = {
		.name = "vh", .routes = routes, .nroutes = sizeof(routes) / sizeof(routes[0])};
	struct px_route_config rc = {.vhosts = &vh, .nvhosts = 1};
	const char *err;

	ok(px_route_config_finalize(&a, &rc, &err) == 0, "regexes compile");
	for (size_t i = 0; i < sizeof(rt_cases) / sizeof(rt_cases[0]); i++) {
		struct px_hdr h = {0};
		struct px_req_view r = {.method = rt_cases[i].method,
					.method_len = strlen(rt_cases[i].method),
					.path = rt_cases[i].path,
					.path_len = strlen(rt_cases[i].path)};
		const struct px_route *rt;

		if (rt_cases[i].hname) {
			h = (struct px_hdr){rt_cases[i].hname, (uint32_t)strlen(rt_cases[i].hname),
					    rt_cases[i].hvalue,
					    (uint32_t)strlen(rt_cases[i].hvalue)};
			r.hdrs = &h;
			r.nhdrs = 1;
		}
		rt = px_route_match(&vh, &r);
		is_str(rt ? rt->name : NULL, rt_cases[i].want, "%s %s%s%s%s -> %s",
		       rt_cases[i].method, rt_cases[i].path, rt_cases[i].hname ? " [" : "",
		       rt_cases[i].hname ? rt_cases[i].hname : "", rt_cases[i].hname ? "]" : "",
		       rt_cases[i].want);
	}
	px_route_config_release(&rc);

	struct px_route bad = {.name = "bad", .match = {.kind = PX_PATH_REGEX, .path = "/a(b"}};
	struct px_vhost bvh = {.routes = &bad, .nroutes = 1};
	struct px_route_config brc = {.vhosts = &bvh, .nvhosts = 1};

	is_int(px_route_config_finalize(&a, &brc, &err), -EINVAL, "a bad regex is refused");
	ok(err && strstr(err, "regex \"/a(b\": ") != NULL, "and named: %s", err ? err : "");
}

/* CONNECT only reaches connect_matcher routes, and those take nothing else; an upgrade is
 * allowed when the HCM lists its type and the route, if it says anything, does not disable it. */
static void test_connect_and_upgrades(void)
{
	static struct px_route croutes[] = {
		{.name = "connect", .match = {.kind = PX_PATH_CONNECT, .path = ""}},
		{.name = "all", .match = {.kind = PX_PATH_PREFIX, .path = ""}},
	};
	struct px_vhost vh = {.name = "vh", .routes = croutes + 1, .nroutes = 1};
	struct px_req_view conn = {.method = "CONNECT", .method_len = 7, .path = NULL};
	struct px_req_view get = {.method = "GET", .method_len = 3, .path = "/x", .path_len = 2};
	const struct px_route *rt;
	static const struct px_upgrade hcm[] = {
		{"websocket", true, false}, {"CONNECT", true, false}, {"h2c", false, false}};
	static const struct px_upgrade route[] = {
		{"WebSocket", false, false}, {"h2c", true, false}, {"spdy/3", true, false}};

	ok(px_route_match(&vh, &conn) == NULL, "CONNECT does not take a prefix \"\" route");
	vh.routes = croutes;
	vh.nroutes = 2;
	rt = px_route_match(&vh, &conn);
	is_str(rt ? rt->name : NULL, "connect", "CONNECT takes the connect_matcher route");
	rt = px_route_match(&vh, &get);
	is_str(rt ? rt->name : NULL, "all", "GET passes the connect_matcher route by");
	ok(px_upgrade_allowed(hcm, 3, NULL, 0, "WEBSOCKET", 9) &&
		   px_upgrade_allowed(hcm, 3, NULL, 0, "connect", 7),
	   "HCM-listed types are allowed, case-insensitively");
	ok(!px_upgrade_allowed(hcm, 3, NULL, 0, "h2c", 3) &&
		   !px_upgrade_allowed(hcm, 3, NULL, 0, "websocket2", 10) &&
		   !px_upgrade_allowed(NULL, 0, NULL, 0, "websocket", 9),
	   "a disabled, unlisted or unconfigured type is refused");
	ok(!px_upgrade_allowed(hcm, 3, route, 3, "websocket", 9) &&
		   px_upgrade_allowed(hcm, 3, route, 3, "h2c", 3) &&
		   px_upgrade_allowed(hcm, 3, route, 3, "CONNECT", 7),
	   "the route's entry overrides the HCM's enabled flag, both ways; others keep the HCM's");
	ok(!px_upgrade_allowed(hcm, 3, route, 3, "spdy/3", 6),
	   "a route cannot allow a type the HCM does not list");
}

static void test_retry_on(void)
{
	uint32_t bits;
	const char *bad;

	is_int(px_retry_on_parse("connect-failure,refused-stream,unavailable,cancelled,"
				 "retriable-status-codes",
				 &bits, &bad),
	       0, "Istio's default retry_on parses");
	is_int(bits,
	       PX_RETRY_CONNECT_FAILURE | PX_RETRY_REFUSED_STREAM | PX_RETRY_UNAVAILABLE |
		       PX_RETRY_CANCELLED | PX_RETRY_RETRIABLE_STATUS_CODES,
	       "into those five conditions");
	is_int(px_retry_on_parse(" 5xx , reset", &bits, &bad), 0, "spaces around items are fine");
	is_int(bits, PX_RETRY_5XX | PX_RETRY_RESET, "5xx and reset");
	is_int(px_retry_on_parse("5xx,sometimes", &bits, &bad), -EINVAL, "an unknown one fails");
	is_str(bad, "sometimes", "and is named");
	is_int(px_retry_on_parse("", &bits, &bad), 0, "an empty list is no conditions");
	is_int(bits, 0, "none");
	ok(px_retry_on_parse("5xx,envoy-ratelimited,http3-post-connect-failure,"
			     "reset-before-request,retriable-headers",
			     &bits, &bad) == 0 &&
		   bits == PX_RETRY_5XX,
	   "Envoy's other conditions are accepted and add no bit");
	is_int(px_retry_on_parse("cancelled,deadline-exceeded,internal,resource-exhausted,"
				 "unavailable",
				 &bits, &bad),
	       0, "Envoy's five gRPC conditions parse");
	is_int(bits, PX_RETRY_GRPC, "into the gRPC bits");
}

/* Which responses and resets a policy covers, as a table: retry_on, HTTP status, grpc-status
 * (-1: none) or reset kind, and whether it is retried. */
static void test_retry_decisions(void)
{
	static uint16_t codes[] = {503, 418};
	static const uint32_t istio = PX_RETRY_CONNECT_FAILURE | PX_RETRY_REFUSED_STREAM |
				      PX_RETRY_UNAVAILABLE | PX_RETRY_CANCELLED |
				      PX_RETRY_RETRIABLE_STATUS_CODES;
	static const struct {
		uint32_t on;
		int status, grpc;
		bool want;
	} resp[] = {
		{PX_RETRY_5XX, 503, -1, true},
		{PX_RETRY_5XX, 500, -1, true},
		{PX_RETRY_5XX, 404, -1, false},
		{PX_RETRY_5XX, 200, 14, false},
		{PX_RETRY_GATEWAY_ERROR, 500, -1, false},
		{PX_RETRY_GATEWAY_ERROR, 502, -1, true},
		{PX_RETRY_GATEWAY_ERROR, 504, -1, true},
		{PX_RETRY_RETRIABLE_4XX, 409, -1, true},
		{PX_RETRY_RETRIABLE_4XX, 404, -1, false},
		{PX_RETRY_RETRIABLE_STATUS_CODES, 418, -1, true},
		{PX_RETRY_RETRIABLE_STATUS_CODES, 500, -1, false},
		{PX_RETRY_UNAVAILABLE, 200, 14, true},
		{PX_RETRY_UNAVAILABLE, 200, 1, false},
		{PX_RETRY_UNAVAILABLE, 503, -1, false},
		{PX_RETRY_CANCELLED, 200, 1, true},
		{PX_RETRY_CANCELLED, 200, 14, false},
		{PX_RETRY_DEADLINE_EXCEEDED, 200, 4, true},
		{PX_RETRY_RESOURCE_EXHAUSTED, 200, 8, true},
		{PX_RETRY_INTERNAL, 200, 13, true},
		{PX_RETRY_INTERNAL, 200, 2, false},
		{PX_RETRY_GRPC, 200, 0, false},
		{PX_RETRY_GRPC, 200, -1, false},
		{PX_RETRY_UNAVAILABLE, 503, 14, true},
		{istio, 503, -1, true},
		{istio, 500, -1, false},
		{istio, 200, 14, true},
		{istio, 200, 1, true},
		{istio, 200, 4, false},
		{0, 503, 14, false},
	};
	static const struct {
		uint32_t on;
		enum px_upstream_reset r;
		bool want;
	} reset[] = {
		{PX_RETRY_REFUSED_STREAM, PX_RESET_REFUSED_STREAM, true},
		{PX_RETRY_REFUSED_STREAM, PX_RESET_REMOTE, false},
		{PX_RETRY_REFUSED_STREAM, PX_RESET_CONNECT_FAILURE, false},
		{PX_RETRY_RESET, PX_RESET_REFUSED_STREAM, true},
		{PX_RETRY_RESET, PX_RESET_TERMINATION, true},
		{PX_RETRY_RESET, PX_RESET_PROTOCOL_ERROR, true},
		{PX_RETRY_RESET, PX_RESET_LOCAL, true},
		{PX_RETRY_RESET, PX_RESET_CONNECT_FAILURE, true},
		{PX_RETRY_5XX, PX_RESET_REFUSED_STREAM, true},
		{PX_RETRY_5XX, PX_RESET_REMOTE, true},
		{PX_RETRY_GATEWAY_ERROR, PX_RESET_CONNECT_FAILURE, true},
		{PX_RETRY_CONNECT_FAILURE, PX_RESET_CONNECT_FAILURE, true},
		{PX_RETRY_CONNECT_FAILURE, PX_RESET_CONNECT_TIMEOUT, true},
		{PX_RETRY_CONNECT_FAILURE, PX_RESET_PROTOCOL_ERROR, false},
		{PX_RETRY_CONNECT_FAILURE, PX_RESET_REFUSED_STREAM, false},
		{PX_RETRY_UNAVAILABLE | PX_RETRY_CANCELLED, PX_RESET_REFUSED_STREAM, false},
		{istio, PX_RESET_REFUSED_STREAM, true},
		{istio, PX_RESET_CONNECT_FAILURE, true},
		{istio, PX_RESET_CONNECT_TIMEOUT, true},
		{istio, PX_RESET_TERMINATION, false},
		{istio, PX_RESET_LOCAL, false},
	};
	struct px_retry_policy rp = {.retriable_status_codes = codes, .nretriable_status_codes = 2};

	for (size_t i = 0; i < sizeof(resp) / sizeof(resp[0]); i++) {
		rp.retry_on = resp[i].on;
		ok(px_retry_on_response(&rp, resp[i].status, resp[i].grpc) == resp[i].want,
		   "retry_on %#x, status %d, grpc-status %d: %s", resp[i].on, resp[i].status,
		   resp[i].grpc, resp[i].want ? "retried" : "not retried");
	}
	for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++) {
		rp.retry_on = reset[i].on;
		ok(px_retry_on_reset(&rp, reset[i].r) == reset[i].want,
		   "retry_on %#x, reset %d: %s", reset[i].on, reset[i].r,
		   reset[i].want ? "retried" : "not retried");
	}
	ok(!px_retry_on_response(NULL, 503, 14) && !px_retry_on_reset(NULL, PX_RESET_TERMINATION),
	   "no policy covers nothing");
}

/* Envoy's retry and timeout request headers, as tables: the value and what it gives. */
static void test_envoy_headers(void)
{
	static const struct {
		const char *v;
		bool grpc;
		uint32_t bits;
	} on[] = {
		{"5xx", false, PX_RETRY_5XX},
		{" 5xx ,\treset,", false, PX_RETRY_5XX | PX_RETRY_RESET},
		{"5xx,sometimes,connect-failure", false, PX_RETRY_5XX | PX_RETRY_CONNECT_FAILURE},
		{"retriable-status-codes,,", false, PX_RETRY_RETRIABLE_STATUS_CODES},
		{"unavailable", false, 0}, /* a gRPC name in the HTTP list */
		{"5xx", true, 0},	   /* and the other way round */
		{"unavailable, cancelled", true, PX_RETRY_UNAVAILABLE | PX_RETRY_CANCELLED},
		{"deadline-exceeded,internal,resource-exhausted", true,
		 PX_RETRY_DEADLINE_EXCEEDED | PX_RETRY_INTERNAL | PX_RETRY_RESOURCE_EXHAUSTED},
		{"5XX", false, 0}, /* Envoy compares names exactly */
		{"", false, 0},
		{",,,", false, 0},
	};
	static const struct {
		const char *v;
		bool ok;
		uint64_t n;
	} num[] = {
		{"100", true, 100},
		{"0", true, 0},
		{" 42\t", true, 42},
		{"+7", true, 7},
		{"18446744073709551615", true, UINT64_MAX},
		{"18446744073709551616", false, 0}, /* overflow */
		{"-1", false, 0},
		{"", false, 0},
		{"  ", false, 0},
		{"12ms", false, 0},
		{"1 2", false, 0},
		{"0x10", false, 0},
		{"+", false, 0},
	};

	for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++)
		is_int(px_retry_on_header(on[i].v, strlen(on[i].v), on[i].grpc), on[i].bits,
		       "x-envoy-retry-%son: \"%s\"", on[i].grpc ? "grpc-" : "", on[i].v);
	for (size_t i = 0; i < sizeof(num) / sizeof(num[0]); i++) {
		uint64_t n = 0;
		bool got = px_header_uint(num[i].v, strlen(num[i].v), &n);

		ok(got == num[i].ok && (!got || n == num[i].n), "\"%s\": %s %llu", num[i].v,
		   num[i].ok ? "a number," : "ignored", (unsigned long long)num[i].n);
	}

	uint16_t codes[4] = {503};
	bool dropped = false;
	const char *list = "429, x,504,-1,70000,409";
	uint32_t n = px_status_codes_header(list, strlen(list), codes, 1, 4, &dropped);

	ok(n == 4 && codes[0] == 503 && codes[1] == 429 && codes[2] == 504 && codes[3] == 409 &&
		   !dropped,
	   "x-envoy-retriable-status-codes adds its numbers to the route's, skipping the rest");
	n = px_status_codes_header("500,501", 7, codes, 3, 4, &dropped);
	ok(n == 4 && codes[3] == 500 && dropped, "past the array's end they are dropped, and said");
}

int main(void)
{
	test_vhosts();
	test_routes();
	test_connect_and_upgrades();
	test_retry_on();
	test_retry_decisions();
	test_envoy_headers();
	arena_free(&a);
	return done_testing();
}
