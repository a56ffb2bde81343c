/* Tests proxy/http.c: header lists and mutations, hop-by-hop rules, x-forwarded-for,
 * request ids, Envoy's local replies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/addr.h"
#include "proxy/http.h"
#include "tests/lib/tap.h"

static struct http_hdrs h;

static const char *joined(void)
{
	static char out[1024];
	size_t o = 0;

	out[0] = '\0';
	for (uint32_t i = 0; i < h.n && o < sizeof(out) - 1; i++)
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%.*s=%.*s", i ? " " : "",
				      (int)h.v[i].name_len, h.v[i].name, (int)h.v[i].value_len,
				      h.v[i].value);
	return out;
}

#define ADD(n, v) http_hdrs_add(&h, n, strlen(n), v, strlen(v))

static void test_mutations(void)
{
	static struct px_header_value add[] = {
		{"x-a", "1", PX_APPEND_IF_EXISTS_OR_ADD},
		{"x-b", "new", PX_OVERWRITE_IF_EXISTS_OR_ADD},
		{"x-c", "kept?", PX_ADD_IF_ABSENT},
		{"x-d", "added", PX_ADD_IF_ABSENT},
	};
	static const char *rm[] = {"x-remove-me"};
	struct px_header_mutation m = {.add = add, .nadd = 4, .remove = rm, .nremove = 1};

	http_hdrs_reset(&h);
	ADD("x-a", "0");
	ADD("x-b", "old");
	ADD("X-C", "present");
	ADD("x-remove-me", "gone");
	http_apply_mutation(&h, &m);
	is_str(joined(), "x-a=0 X-C=present x-a=1 x-b=new x-d=added",
	       "remove, then append / overwrite / add-if-absent as Envoy does");
	is_int(http_hdrs_find(&h, "x-c"), 1, "lookups ignore case");

	http_hdrs_reset(&h);
	http_hdrs_addf(&h, "x-envoy-attempt-count", "%u", 3u);
	http_hdrs_addf(&h, "x-envoy-upstream-service-time", "%llu", 12ULL);
	is_str(joined(), "x-envoy-attempt-count=3 x-envoy-upstream-service-time=12",
	       "formatted values live in the list's own storage");

	http_hdrs_reset(&h);
	for (int i = 0; i < HTTP_HDRS_MAX + 1; i++)
		ADD("x", "y");
	ok(h.overflow && h.n == HTTP_HDRS_MAX, "one header too many marks the list overflowed");
	http_hdrs_reset(&h);
	char big[HTTP_HDRS_OWN + 10];

	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	http_hdrs_addf(&h, "x", "%s", big);
	ok(h.overflow && h.n == 0, "a value too big for the list's storage overflows it");
}

static void test_hop_by_hop(void)
{
	static const struct {
		const char *name;
		bool hop;
	} t[] = {{"Connection", true},	    {"keep-alive", true}, {"Transfer-Encoding", true},
		 {"upgrade", true},	    {"TE", true},	  {"proxy-connection", true},
		 {"content-length", false}, {"host", false},	  {"x-forwarded-for", false}};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		is_int(http_is_hop_by_hop(t[i].name, strlen(t[i].name)), t[i].hop,
		       "%s is %shop-by-hop", t[i].name, t[i].hop ? "" : "not ");
	ok(http_connection_lists("keep-alive, X-Custom ,close", 27, "x-custom", 8),
	   "Connection lists x-custom");
	ok(!http_connection_lists("keep-alive, X-Customer", 22, "x-custom", 8),
	   "but not as a prefix of another name");
}

static void test_xff_and_ids(void)
{
	struct strbuf sb = {0};
	char id[HTTP_UUID_LEN + 1], id2[HTTP_UUID_LEN + 1];
	uint64_t rng = 12345;

	ok(!http_xff(NULL, 0, false, false, "10.0.0.1", &sb),
	   "without use_remote_address, x-forwarded-for is left as is");
	ok(http_xff(NULL, 0, true, false, "10.0.0.1", &sb) && !strcmp(strbuf_str(&sb), "10.0.0.1"),
	   "with it, the downstream address becomes the value");
	ok(http_xff("1.2.3.4, 5.6.7.8", 16, true, false, "10.0.0.1", &sb) &&
		   !strcmp(strbuf_str(&sb), "1.2.3.4, 5.6.7.8,10.0.0.1"),
	   "and is appended to an incoming one");
	ok(!http_xff("1.2.3.4", 7, true, true, "10.0.0.1", &sb), "skip_xff_append leaves it");
	strbuf_release(&sb);

	http_uuid(id, &rng);
	http_uuid(id2, &rng);
	ok(strlen(id) == 36 && id[8] == '-' && id[13] == '-' && id[14] == '4' && id[18] == '-' &&
		   strchr("89ab", id[19]) && id[23] == '-',
	   "x-request-id is a version 4 UUID: %s", id);
	ok(strcmp(id, id2) != 0, "and a new one each time");
}

static void test_details_token(void)
{
	char d[] = "upstream_reset_before_response_started{connection_failure,delayed connect "
		   "error:\t111\n}";

	http_details_token(d);
	is_str(d,
	       "upstream_reset_before_response_started{connection_failure,delayed_connect_error:_"
	       "111_}",
	       "details become one token: each blank is '_'");
}

static void test_local_replies(void)
{
	struct strbuf sb = {0};

	is_int(http_local_reply_status(HTTP_LR_NO_HEALTHY), 503, "no healthy upstream is a 503");
	http_local_reply_body(HTTP_LR_NO_HEALTHY, NULL, &sb);
	is_str(strbuf_str(&sb), "no healthy upstream", "with Envoy's body");
	strbuf_reset(&sb);
	http_local_reply_body(HTTP_LR_CONNECT_FAILURE,
			      "reset reason: remote connection failure, transport "
			      "failure reason: delayed connect error: 111",
			      &sb);
	is_str(strbuf_str(&sb),
	       "upstream connect error or disconnect/reset before headers. reset reason: remote "
	       "connection failure, transport failure reason: delayed connect error: 111",
	       "a connect failure names its reason");
	is_str(http_local_reply_flag(HTTP_LR_TIMEOUT), "UT", "a timeout is flagged UT");
	is_int(http_local_reply_status(HTTP_LR_TIMEOUT), 504, "and answered 504");
	strbuf_reset(&sb);
	http_local_reply_body(HTTP_LR_TIMEOUT_ALT, NULL, &sb);
	ok(http_local_reply_status(HTTP_LR_TIMEOUT_ALT) == 204 && sb.len == 0 &&
		   !strcmp(http_local_reply_flag(HTTP_LR_TIMEOUT_ALT), "UT"),
	   "x-envoy-upstream-rq-timeout-alt-response's timeout: 204, empty, still UT");
	is_int(http_local_reply_status(HTTP_LR_NO_ROUTE), 404, "no route is a 404");
	is_str(http_reason_phrase(431), "Request Header Fields Too Large", "reason phrases");
	is_str(http_reason_phrase(299), "Success", "and a class phrase for unknown codes");
	strbuf_release(&sb);
}

static void test_grpc(void)
{
	static const struct {
		const char *v;
		int rc;
		uint64_t ms;
	} t[] = {
		{"1H", 0, 3600000},
		{"2M", 0, 120000},
		{"3S", 0, 3000},
		{"250m", 0, 250},
		{"1u", 0, 1},
		{"1500u", 0, 2},
		{"1n", 0, 1},
		{"0m", 0, 0},
		{"99999999S", 0, 99999999000ULL},
		{"100000000S", -EINVAL, 0},
		{"", -EINVAL, 0},
		{"S", -EINVAL, 0},
		{"10", -EINVAL, 0},
		{"10s", -EINVAL, 0},
		{"-1S", -EINVAL, 0},
		{"1 S", -EINVAL, 0},
		{"1.5S", -EINVAL, 0},
		{"10SS", -EINVAL, 0},
	};
	struct strbuf sb = STRBUF_INIT;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint64_t ms = 0;
		int rc = http_grpc_timeout_parse(t[i].v, strlen(t[i].v), &ms);

		ok(rc == t[i].rc && (rc || ms == t[i].ms), "grpc-timeout \"%s\": %d, %llu ms",
		   t[i].v, rc, (unsigned long long)ms);
	}
	{
		static const struct {
			uint64_t ms;
			const char *want;
		} f[] = {
			{0, "0m"},
			{250, "250m"},
			{99999999ULL, "99999999m"},
			{100000000ULL, "100000S"},
			{99999999000ULL + 999, "99999999S"},
			{100000000000ULL, "1666666M"},
			{99999999ULL * 60000 + 60000, "1666666H"},
			{UINT64_MAX, "99999999H"},
		};
		char out[HTTP_GRPC_TIMEOUT_DIGITS + 2];

		for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
			size_t n = http_grpc_timeout_format(f[i].ms, out);
			uint64_t back = 0;

			ok(n == strlen(f[i].want) && !strcmp(out, f[i].want) &&
				   http_grpc_timeout_parse(out, n, &back) == 0 && back <= f[i].ms,
			   "grpc-timeout of %llu ms is written %s (got %s), parses back no later",
			   (unsigned long long)f[i].ms, f[i].want, out);
		}
	}
	ok(http_is_grpc("application/grpc", 16) && http_is_grpc("application/grpc+proto", 22) &&
		   http_is_grpc("Application/GRPC;charset=x", 27),
	   "application/grpc, +proto and ;params are gRPC");
	ok(!http_is_grpc("application/grpc-web", 20) && !http_is_grpc("application/json", 16) &&
		   !http_is_grpc(NULL, 0),
	   "grpc-web, json and no content-type are not");
	ok(http_grpc_status_of(503) == 14 && http_grpc_status_of(504) == 14 &&
		   http_grpc_status_of(404) == 12 && http_grpc_status_of(400) == 13 &&
		   http_grpc_status_of(408) == 2,
	   "HTTP to gRPC status: 503/504 UNAVAILABLE, 404 UNIMPLEMENTED, 400 INTERNAL, else "
	   "UNKNOWN");
	{
		static const struct {
			const char *v;
			int code;
		} g[] = {
			{"0", 0},   {"14", 14},		{"16", 16}, {"014", 14},
			{"17", -1}, {"", -1},		{"-1", -1}, {"1x", -1},
			{" 1", -1}, {"1234567890", -1}, {"99", -1},
		};

		for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++)
			is_int(http_grpc_status_parse(g[i].v, strlen(g[i].v)), g[i].code,
			       "grpc-status \"%s\": %d", g[i].v, g[i].code);
		is_int(http_grpc_status_parse(NULL, 0), -1, "no grpc-status: -1");
	}
	http_grpc_message("no healthy upstream: 100% \x01\xc3\xa9", &sb);
	is_str(strbuf_str(&sb), "no healthy upstream: 100%25 %01%C3%A9",
	       "grpc-message is percent-encoded outside printable ASCII, and '%%'");
	strbuf_release(&sb);
}

/* RFC 8441 extended CONNECT to HTTP/1.1 and back, as a table: the :protocol, whether the
 * client sent a key and a version, the headers added (key shown as KEY), whether one was made. */
static void test_ext_connect(void)
{
	static const struct {
		const char *protocol;
		bool has_key, has_version;
		const char *want;
		bool made;
	} t[] = {
		{"websocket", false, false,
		 "connection=upgrade upgrade=websocket sec-websocket-key=KEY "
		 "sec-websocket-version=13",
		 true},
		{"websocket", false, true,
		 "connection=upgrade upgrade=websocket sec-websocket-key=KEY", true},
		{"WebSocket", true, true, "connection=upgrade upgrade=WebSocket", false},
		{"websocket", true, false,
		 "connection=upgrade upgrade=websocket sec-websocket-version=13", false},
		{"connect-udp", false, false, "connection=upgrade upgrade=connect-udp", false},
	};
	uint64_t rng = 42;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct px_hdr out[HTTP_EXT_CONNECT_HDRS];
		char key[HTTP_WS_KEY_LEN + 1] = "", got[256];
		bool made = !t[i].made;
		uint32_t n =
			http_ext_connect_to_h1(t[i].protocol, strlen(t[i].protocol), t[i].has_key,
					       t[i].has_version, &rng, key, out, &made);
		size_t o = 0;

		got[0] = '\0';
		for (uint32_t k = 0; k < n; k++) {
			bool is_key = out[k].value == key;

			o += (size_t)snprintf(got + o, sizeof(got) - o, "%s%.*s=%.*s", k ? " " : "",
					      (int)out[k].name_len, out[k].name,
					      is_key ? 3 : (int)out[k].value_len,
					      is_key ? "KEY" : out[k].value);
		}
		is_str(got, t[i].want, "extended CONNECT %s (key %d, version %d) to HTTP/1.1",
		       t[i].protocol, t[i].has_key, t[i].has_version);
		ok(made == t[i].made, "and a key made: %d", made);
		if (made) {
			bool b64 =
				strlen(key) == HTTP_WS_KEY_LEN && key[22] == '=' && key[23] == '=';

			for (size_t k = 0; k < 22; k++)
				b64 &= strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					      "0123456789+/",
					      key[k]) != NULL;
			ok(b64, "the key is base64 of 16 bytes: %s", key);
		}
	}
	char k1[HTTP_WS_KEY_LEN + 1], k2[HTTP_WS_KEY_LEN + 1];
	struct px_hdr out[HTTP_EXT_CONNECT_HDRS];
	bool made;

	http_ext_connect_to_h1("websocket", 9, false, false, &rng, k1, out, &made);
	http_ext_connect_to_h1("websocket", 9, false, false, &rng, k2, out, &made);
	ok(strcmp(k1, k2) != 0, "each request gets its own key");
	is_int(http_ext_connect_status(101), 200, "the upstream's 101 is 200 to the HTTP/2 client");
	is_int(http_ext_connect_status(403), 403, "any other status stays");
	is_int(http_ext_connect_status(200), 200, "a 200 (an HTTP/2 upstream) stays");
}

/* Envoy's internal/external verdict, as a table: use_remote_address, trusted hops, the
 * x-forwarded-for value (NULL: none), the peer's address, and whether the request is internal. */
static void test_sanitizing(void)
{
	static const struct {
		bool ura;
		uint32_t hops;
		const char *xff, *peer;
		bool internal;
	} t[] = {
		{true, 0, NULL, "127.0.0.1", true},
		{true, 0, NULL, "10.1.2.3", true},
		{true, 0, NULL, "172.16.0.1", true},
		{true, 0, NULL, "172.31.255.255", true},
		{true, 0, NULL, "192.168.1.1", true},
		{true, 0, NULL, "fd00::1", true},
		{true, 0, NULL, "::1", true},
		{true, 0, NULL, "203.0.113.7", false},
		{true, 0, NULL, "172.32.0.1", false},
		{true, 0, NULL, "127.0.0.2", false}, /* only 127.0.0.1 is Envoy's loopback */
		{true, 0, NULL, "fe80::1", false},
		{true, 0, NULL, "2001:db8::1", false},
		{true, 0, "10.0.0.1", "10.0.0.2", false}, /* a forwarded request: two addresses */
		{true, 1, NULL, "10.0.0.2", true},
		{false, 0, NULL, "127.0.0.1", false}, /* nothing to go by: external */
		{false, 0, "10.0.0.1", "203.0.113.7", true},
		{false, 0, " 192.168.0.9 ", "203.0.113.7", true},
		{false, 0, "203.0.113.7", "127.0.0.1", false},
		{false, 0, "10.0.0.1,10.0.0.2", "127.0.0.1", false},
		{false, 1, "10.0.0.1", "127.0.0.1", false},
		{false, 0, "not-an-ip", "127.0.0.1", false},
		{false, 0, "", "127.0.0.1", false},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct shunt_addr peer;

		addr_parse(&peer, t[i].peer);
		ok(http_request_internal(t[i].ura, t[i].hops, t[i].xff,
					 t[i].xff ? strlen(t[i].xff) : 0, &peer) == t[i].internal,
		   "use_remote_address %d, hops %u, xff %s, peer %s: %s", t[i].ura, t[i].hops,
		   t[i].xff ? t[i].xff : "(none)", t[i].peer,
		   t[i].internal ? "internal" : "external");
	}

	/* The nth address from the right, as remote_ip and the verdict above read it. */
	static const struct {
		const char *xff;
		uint32_t nth;
		const char *want; /* NULL: none */
	} x[] = {
		{"10.0.0.1", 1, "10.0.0.1"},
		{"10.0.0.1, 10.0.0.2 ,10.0.0.3", 1, "10.0.0.3"},
		{"10.0.0.1, 10.0.0.2 ,10.0.0.3", 2, "10.0.0.2"},
		{"10.0.0.1, 10.0.0.2 ,10.0.0.3", 3, "10.0.0.1"},
		{"10.0.0.1, 10.0.0.2 ,10.0.0.3", 4, NULL},
		{"10.0.0.1", 0, NULL},
		{"10.0.0.1,", 1, NULL}, /* an empty last entry is no address */
		{"\t::1 ", 1, "::1"},
		{"", 1, NULL},
	};

	for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++) {
		struct shunt_addr got, want;
		bool found = http_xff_addr(x[i].xff, strlen(x[i].xff), x[i].nth, &got);

		ok(x[i].want ? found && addr_parse(&want, x[i].want) == 0 &&
				       !memcmp(&got, &want, sizeof(got))
			     : !found,
		   "x-forwarded-for \"%s\", entry %u from the right: %s", x[i].xff, x[i].nth,
		   x[i].want ? x[i].want : "none");
	}

	static const struct {
		const char *name;
		bool internal, edge, dropped;
	} d[] = {
		{"x-envoy-retry-on", true, false, true}, /* the router consumes it */
		{"X-Envoy-Max-Retries", true, false, true},
		{"x-envoy-upstream-rq-timeout-ms", true, false, true},
		{"x-envoy-upstream-rq-per-try-timeout-ms", true, false, true},
		{"x-envoy-upstream-rq-timeout-alt-response", true, false, true},
		{"x-envoy-retriable-status-codes", true, false, true},
		{"x-envoy-internal", true, false, true}, /* the HCM's verdict replaces it */
		{"x-envoy-expected-rq-timeout-ms", true, false, false},
		{"x-envoy-expected-rq-timeout-ms", false, false, true},
		{"x-envoy-force-trace", true, false, false},
		{"x-envoy-force-trace", false, false, true},
		{"x-envoy-downstream-service-node", false, false, false},
		{"x-envoy-downstream-service-node", false, true, true},
		{"x-envoy-attempt-count", false, true, false},
		{"x-envoy-custom", false, true, false},
		{"x-envoy", false, true, false},
		{"content-type", false, true, false},
	};

	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++)
		ok(http_envoy_header_dropped(d[i].name, strlen(d[i].name), d[i].internal,
					     d[i].edge) == d[i].dropped,
		   "%s from an %s%s request: %s", d[i].name,
		   d[i].internal ? "internal" : "external", d[i].edge ? " edge" : "",
		   d[i].dropped ? "dropped" : "forwarded");
}

int main(void)
{
	test_details_token();
	test_mutations();
	test_ext_connect();
	test_hop_by_hop();
	test_xff_and_ids();
	test_sanitizing();
	test_local_replies();
	test_grpc();
	return done_testing();
}
