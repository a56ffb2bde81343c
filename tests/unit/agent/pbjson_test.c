/* Tests pbjson.c and jtree.c: good inputs render exactly and round-trip, bad ones fail exactly. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/jtree.h"
#include "agent/pbjson.h"
#include "agent/pbreg.h"
#include "tests/lib/tap.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/type/v3/percent.pb-c.h"
#include "envoy/type/v3/range.pb-c.h"
#include "google/api/expr/v1alpha1/syntax.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "validate/validate.pb-c.h"

#define CLUSTER	  (&envoy__config__cluster__v3__cluster__descriptor)
#define SOCKADDR  (&envoy__config__core__v3__socket_address__descriptor)
#define DATASRC	  (&envoy__config__core__v3__data_source__descriptor)
#define METADATA  (&envoy__config__core__v3__metadata__descriptor)
#define LISTENER  (&envoy__config__listener__v3__listener__descriptor)
#define VHOST	  (&envoy__config__route__v3__virtual_host__descriptor)
#define PERCENT	  (&envoy__type__v3__percent__descriptor)
#define I64RANGE  (&envoy__type__v3__int64_range__descriptor)
#define SRCINFO	  (&google__api__expr__v1alpha1__source_info__descriptor)
#define ANY	  (&google__protobuf__any__descriptor)
#define STRUCT	  (&google__protobuf__struct__descriptor)
#define TIMESTAMP (&google__protobuf__timestamp__descriptor)
#define FLOATRULE (&validate__float_rules__descriptor)

#define URL(name) "type.googleapis.com/" name

struct good {
	const ProtobufCMessageDescriptor *desc;
	unsigned flags;
	const char *in;
	const char *want; /* compact render with proto names */
};

static const struct good goods[] = {
	{SOCKADDR, 0, "address: 10.0.0.1\nport_value: 8080\n",
	 "{\"address\":\"10.0.0.1\",\"port_value\":8080}"},
	{SOCKADDR, 0, "{\"address\":\"::1\",\"portValue\":15001,\"ipv4Compat\":true}",
	 "{\"address\":\"::1\",\"port_value\":15001,\"ipv4_compat\":true}"},
	{SOCKADDR, 0, "{protocol: UDP}", "{\"protocol\":\"UDP\"}"},
	{SOCKADDR, 0, "{protocol: 1}", "{\"protocol\":\"UDP\"}"},
	{SOCKADDR, 0, "{protocol: \"1\"}", "{\"protocol\":\"UDP\"}"},
	{SOCKADDR, 0, "{protocol: TCP, address: a}", "{\"address\":\"a\"}"},
	{SOCKADDR, 0, "{port_value: \"80\"}", "{\"port_value\":80}"},
	{SOCKADDR, 0, "{port_value: 8e1}", "{\"port_value\":80}"},
	{SOCKADDR, 0, "{address: \"\"}", "{}"},
	/* A oneof member is present even when zero. */
	{SOCKADDR, 0, "{port_value: 0}", "{\"port_value\":0}"},
	{SOCKADDR, 0, "{\"address\":\"\\ud83d\\ude00\\t\\u00e9\\/\"}",
	 "{\"address\":\"\xf0\x9f\x98\x80\\t\xc3\xa9/\"}"},
	{SOCKADDR, 0, "\t{\"address\": \"tab-led JSON\"}", "{\"address\":\"tab-led JSON\"}"},
	{I64RANGE, 0, "{start: \"-9223372036854775808\", end: 9223372036854775807}",
	 "{\"start\":\"-9223372036854775808\",\"end\":\"9223372036854775807\"}"},
	{I64RANGE, 0, "{start: 1e3, end: \"2.5e1\"}", "{\"start\":\"1000\",\"end\":\"25\"}"},
	{PERCENT, 0, "{value: 12.5}", "{\"value\":12.5}"},
	{PERCENT, 0, "{value: 0.1}", "{\"value\":0.1}"},
	{PERCENT, 0, "{value: \"NaN\"}", "{\"value\":\"NaN\"}"},
	{PERCENT, 0, "{value: \"-Infinity\"}", "{\"value\":\"-Infinity\"}"},
	{PERCENT, 0, "{value: 1e300}", "{\"value\":1e+300}"},
	{FLOATRULE, 0, "{const: 0.1, lt: 0}", "{\"const\":0.1,\"lt\":0}"},
	{CLUSTER, 0, "name: c\nconnect_timeout: 1.5s\n",
	 "{\"name\":\"c\",\"connect_timeout\":\"1.500s\"}"},
	{CLUSTER, 0, "{name: c, connect_timeout: 0.000001s}",
	 "{\"name\":\"c\",\"connect_timeout\":\"0.000001s\"}"},
	{CLUSTER, 0, "{connect_timeout: -0.000000001s}", "{\"connect_timeout\":\"-0.000000001s\"}"},
	{CLUSTER, 0, "{connect_timeout: 315576000000s}", "{\"connect_timeout\":\"315576000000s\"}"},
	{CLUSTER, 0, "{connect_timeout: 0s}", "{\"connect_timeout\":\"0s\"}"},
	{CLUSTER, 0, "{name: c, connect_timeout: null}", "{\"name\":\"c\"}"},
	{CLUSTER, 0, "{name: c, connect_timeout: ~, type: STRICT_DNS}",
	 "{\"name\":\"c\",\"type\":\"STRICT_DNS\"}"},
	{CLUSTER, 0, "{name: c, per_connection_buffer_limit_bytes: 32768}",
	 "{\"name\":\"c\",\"per_connection_buffer_limit_bytes\":32768}"},
	{CLUSTER, 0, "{ring_hash_lb_config: {minimum_ring_size: 1024}}",
	 "{\"ring_hash_lb_config\":{\"minimum_ring_size\":\"1024\"}}"},
	{LISTENER, 0, "{name: l, transparent: false}", "{\"name\":\"l\",\"transparent\":false}"},
	{CLUSTER, 0,
	 "name: web\n"
	 "type: STATIC\n"
	 "load_assignment:\n"
	 "  cluster_name: web\n"
	 "  endpoints:\n"
	 "  - lb_endpoints:\n"
	 "    - endpoint:\n"
	 "        address:\n"
	 "          socket_address: {address: 127.0.0.1, port_value: 8080}\n",
	 "{\"name\":\"web\",\"type\":\"STATIC\",\"load_assignment\":{\"cluster_name\":\"web\","
	 "\"endpoints\":[{\"lb_endpoints\":[{\"endpoint\":{\"address\":{\"socket_address\":"
	 "{\"address\":\"127.0.0.1\",\"port_value\":8080}}}}]}]}}"},
	{DATASRC, 0, "{inline_bytes: aGVsbG8=}", "{\"inline_bytes\":\"aGVsbG8=\"}"},
	{DATASRC, 0, "{inline_bytes: aGVsbG8}", "{\"inline_bytes\":\"aGVsbG8=\"}"},
	{DATASRC, 0, "{inline_bytes: \"-_8=\"}", "{\"inline_bytes\":\"+/8=\"}"},
	{DATASRC, 0, "{inline_bytes: \"\"}", "{\"inline_bytes\":\"\"}"},
	{DATASRC, 0, "{inline_string: \"\"}", "{\"inline_string\":\"\"}"},
	{METADATA, 0, "filter_metadata:\n  istio: {x: 1, y: [true, null, \"s\"], z: {}}\n",
	 "{\"filter_metadata\":{\"istio\":{\"x\":1,\"y\":[true,null,\"s\"],\"z\":{}}}}"},
	{STRUCT, 0, "{a: &x {k: 1.25}, b: *x, c: []}",
	 "{\"a\":{\"k\":1.25},\"b\":{\"k\":1.25},\"c\":[]}"},
	{STRUCT, 0, "{version: 1.21.0, port: \"80\", on: yes, n: -0.5e-3, t: !!str 12}",
	 "{\"version\":\"1.21.0\",\"port\":\"80\",\"on\":\"yes\",\"n\":-0.0005,\"t\":\"12\"}"},
	{SRCINFO, 0, "{positions: {\"5\": 7, \"-1\": 2}}", "{\"positions\":{\"5\":7,\"-1\":2}}"},
	{VHOST, 0, "{name: v, domains: [\"*\", a.com]}",
	 "{\"name\":\"v\",\"domains\":[\"*\",\"a.com\"]}"},
	{TIMESTAMP, 0, "\"2023-12-26T05:57:09.894Z\"", "\"2023-12-26T05:57:09.894Z\""},
	{TIMESTAMP, 0, "\"1972-01-01T10:00:20.021+01:00\"", "\"1972-01-01T09:00:20.021Z\""},
	{TIMESTAMP, 0, "\"1969-12-31T23:59:59.5Z\"", "\"1969-12-31T23:59:59.500Z\""},
	{TIMESTAMP, 0, "\"0001-01-01T00:00:00Z\"", "\"0001-01-01T00:00:00Z\""},
	{TIMESTAMP, 0, "\"2024-02-29T23:59:59.000000001Z\"", "\"2024-02-29T23:59:59.000000001Z\""},
	{ANY, 0, "{}", "{}"},
	{ANY, 0, "{\"@type\": \"" URL("google.protobuf.Empty") "\"}",
	 "{\"@type\":\"" URL("google.protobuf.Empty") "\"}"},
	{ANY, 0,
	 "{\"@type\": \"" URL(
		 "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy") "\", "
									   "stat_prefix: s, "
									   "cluster: c}",
	 "{\"@type\":\"" URL(
		 "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy") "\","
									   "\"stat_prefix\":\"s\","
									   "\"cluster\":\"c\"}"},
	{ANY, 0, "{value: 2s, \"@type\": \"" URL("google.protobuf.Duration") "\"}",
	 "{\"@type\":\"" URL("google.protobuf.Duration") "\",\"value\":\"2s\"}"},
	{ANY, 0, "{\"@type\": \"" URL("google.protobuf.StringValue") "\", value: \"\"}",
	 "{\"@type\":\"" URL("google.protobuf.StringValue") "\",\"value\":\"\"}"},
	{ANY, 0, "{\"@type\": \"" URL("google.protobuf.Struct") "\", value: {a: [1]}}",
	 "{\"@type\":\"" URL("google.protobuf.Struct") "\",\"value\":{\"a\":[1]}}"},
	{ANY, 0,
	 "{\"@type\": \"" URL("google.protobuf.Any") "\", value: {\"@type\": \"" URL(
		 "google.protobuf.BoolValue") "\", value: true}}",
	 "{\"@type\":\"" URL("google.protobuf.Any") "\",\"value\":{\"@type\":\"" URL(
		 "google.protobuf.BoolValue") "\",\"value\":true}}"},
	{ANY, PBJSON_OPAQUE_ANY, "{\"@type\": \"" URL("istio.Foo") "\", a: [1, {b: x}]}",
	 "{\"@type\":\"" URL("istio.Foo") "\",\"a\":[1,{\"b\":\"x\"}]}"},
	{CLUSTER, 0, "{\"name\":\"c\",}", "{\"name\":\"c\"}"}, /* YAML flow, not JSON */
};

struct bad {
	const ProtobufCMessageDescriptor *desc;
	const char *in;
	const char *err;
};

static const struct bad bads[] = {
	{CLUSTER, "{name: c, connect_timeout: 5}",
	 "connect_timeout: expected a duration like \"1.5s\", got 5"},
	{CLUSTER, "{connect_timeout: 5m}",
	 "connect_timeout: expected a duration like \"1.5s\", got \"5m\""},
	{CLUSTER, "{connect_timeout: 1.0000000001s}",
	 "connect_timeout: expected a duration like \"1.5s\", got \"1.0000000001s\""},
	{CLUSTER, "{connect_timeout: 315576000001s}",
	 "connect_timeout: duration out of range (at most 315576000000s)"},
	{CLUSTER, "{name: c, conect_timeout: 1s}",
	 "unknown field \"conect_timeout\" in envoy.config.cluster.v3.Cluster"},
	{CLUSTER, "[1]", "expected an object, got a list"},
	{CLUSTER, "{type: STRICT_DNSS}",
	 "type: unknown value \"STRICT_DNSS\" for enum "
	 "envoy.config.cluster.v3.Cluster.DiscoveryType"},
	{CLUSTER, "{type: [STATIC]}", "type: expected an enum name, got a list"},
	{CLUSTER, "{\"name\":\"a\\u0000b\"}", "name: string contains a NUL character"},
	{CLUSTER, "{per_connection_buffer_limit_bytes: {value: 1}}",
	 "per_connection_buffer_limit_bytes: expected a bare value (wrappers are written without "
	 "{\"value\": ...}), got an object"},
	{SOCKADDR, "{address: 1.5}", "address: expected a string, got 1.5 (quote it)"},
	{SOCKADDR, "{address: true}", "address: expected a string, got true (quote it)"},
	{SOCKADDR, "{port_value: abc}", "port_value: expected an integer, got \"abc\""},
	{SOCKADDR, "{port_value: -1}", "port_value: -1 is out of range for uint32"},
	{SOCKADDR, "{port_value: 4294967296}", "port_value: 4294967296 is out of range for uint32"},
	{SOCKADDR, "{port_value: 1.5}", "port_value: expected an integer, got 1.5"},
	{SOCKADDR, "{port_value: \" 80\"}", "port_value: expected an integer, got \" 80\""},
	{SOCKADDR, "{protocol: SCTP}",
	 "protocol: unknown value \"SCTP\" for enum envoy.config.core.v3.SocketAddress.Protocol"},
	{SOCKADDR, "{ipv4_compat: yes}", "ipv4_compat: expected true or false, got \"yes\""},
	{SOCKADDR, "{port_value: 1, portValue: 2}", "portValue: same field as \"port_value\""},
	{I64RANGE, "{start: 9223372036854775808}",
	 "start: 9223372036854775808 is out of range for int64"},
	{I64RANGE, "{start: 1e17}",
	 "start: 1e17 is too large to be exact; write it as a plain integer"},
	{FLOATRULE, "{const: 1e39}", "const: 1e39 is out of range for float"},
	{PERCENT, "{value: 1e999}", "value: 1e999 is out of range for double"},
	{PERCENT, "{value: \"inf\"}", "value: expected a number, got \"inf\""},
	{DATASRC, "{inline_string: a, inline_bytes: YQ==}",
	 "inline_bytes: \"inline_string\" is already set; only one of them may be"},
	{DATASRC, "{inline_bytes: \"!!\"}", "inline_bytes: expected base64 text, got \"!!\""},
	{DATASRC, "{inline_bytes: 12}", "inline_bytes: expected base64 text, got 12"},
	{VHOST, "{domains: \"*\"}", "domains: expected a list, got \"*\""},
	{VHOST, "{domains: [a, null]}", "domains[1]: null is not allowed in a list"},
	{VHOST, "{name: v, routes: [{match: {prefix: /}}, {match: {prefix: /, path: /x}}]}",
	 "routes[1].match.path: \"prefix\" is already set; only one of them may be"},
	{VHOST, "{routes: [{match: {prefix: /}, route: {cluster: c, timeout: 1}}]}",
	 "routes[0].route.timeout: expected a duration like \"1.5s\", got 1"},
	{METADATA, "{filter_metadata: {\"istio.io/x\": 5}}",
	 "filter_metadata[\"istio.io/x\"]: expected an object, got 5"},
	{METADATA, "{filter_metadata: {istio: null}}",
	 "filter_metadata.istio: null is not allowed as a map value"},
	{SRCINFO, "{positions: {x: 1}}", "positions.x: expected an integer, got \"x\""},
	{SRCINFO, "{positions: {\"1\": 1, \"01\": 2}}",
	 "positions: the same map key is given twice"},
	{TIMESTAMP, "\"2023-02-29T00:00:00Z\"",
	 "expected a timestamp like \"2024-01-02T03:04:05Z\", got \"2023-02-29T00:00:00Z\""},
	{TIMESTAMP, "\"2023-01-01 00:00:00Z\"",
	 "expected a timestamp like \"2024-01-02T03:04:05Z\", got \"2023-01-01 00:00:00Z\""},
	{TIMESTAMP, "12", "expected a timestamp like \"2024-01-02T03:04:05Z\", got 12"},
	{ANY, "{\"@type\": \"" URL("foo.Bar") "\"}", "unknown type \"" URL("foo.Bar") "\""},
	{ANY, "{stat_prefix: x}", "expected \"@type\" with the type URL of the value"},
	{ANY, "{\"@type\": 5}",
	 "\"@type\" must be a type URL like \"" URL("envoy.config.listener.v3.Listener") "\""},
	{ANY,
	 "{\"@type\": \"" URL("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy") "\", "
											"bogus: 1}",
	 "unknown field \"bogus\" in envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"},
	{ANY, "{\"@type\": \"" URL("google.protobuf.Duration") "\"}",
	 "expected \"value\" holding the google.protobuf.Duration"},
	{ANY, "{\"@type\": \"" URL("google.protobuf.Duration") "\", value: 1s, x: 1}",
	 "unknown field \"x\" (a google.protobuf.Duration in an Any has only \"value\")"},
	{ANY, "{\"@type\": \"" URL("google.protobuf.Duration") "\", value: 1}",
	 "value: expected a duration like \"1.5s\", got 1"},
	{LISTENER, "{\"@type\": \"" URL("envoy.config.listener.v3.Listener") "\"}",
	 "unknown field \"@type\" in envoy.config.listener.v3.Listener"},
	/* Syntax: JSON first for text that starts like JSON, YAML otherwise. */
	{CLUSTER, "{\"name\": \"c\"",
	 "line 1, column 13: expected ',' or '}' after an object member, got end of input"},
	{CLUSTER, "{\"name\": \"a\", \"name\": \"b\"}",
	 "line 1, column 23: duplicate key \"name\""},
	{CLUSTER, "name: a\nname: b\n", "line 2, column 7: duplicate key \"name\""},
	{CLUSTER, "name: [a\n",
	 "line 2, column 1: did not find expected ',' or ']' (while parsing a flow sequence)"},
	{CLUSTER, "name: a\n  type: b\n",
	 "line 2, column 7: mapping values are not allowed in this context"},
	{CLUSTER, "", "empty document"},
	{CLUSTER, "# nothing\n", "empty document"},
	{CLUSTER, "a: 1\n---\nb: 2\n", "line 2, column 1: more than one YAML document"},
	{CLUSTER, "{a: *nope}", "line 1, column 5: unknown YAML anchor *nope"},
	{CLUSTER, "{? [a]: 1}", "line 1, column 4: a mapping key must be a scalar"},
	{CLUSTER, "? [a]\n: 1\n", "line 1, column 3: a mapping key must be a scalar"},
	{CLUSTER, "name: !!int abc\n", "line 1, column 7: \"abc\" is not a valid !!int"},
	{CLUSTER, "name: !custom x\n", "line 1, column 7: unsupported YAML tag !custom"},
	{CLUSTER, "{\"name\": \"\\ud800\"}",
	 "line 1, column 11: unpaired UTF-16 surrogate in \\u escape"},
	{CLUSTER, "{\"name\": \"\xff\"}", "line 1, column 11: invalid UTF-8 in string"},
};

/* The input on one line, short, for a TAP test name. */
static const char *oneline(const char *in)
{
	static char buf[64];
	size_t n = 0;

	for (; *in && n + 3 < sizeof(buf); in++) {
		if (*in == '\n') {
			buf[n++] = '\\';
			buf[n++] = 'n';
		} else {
			buf[n++] = *in;
		}
	}
	buf[n] = '\0';
	return buf;
}

static char *render(const ProtobufCMessage *m, unsigned flags)
{
	struct strbuf out = STRBUF_INIT;
	struct jtree_err err;

	if (pbjson_render(m, flags, &out, &err)) {
		tap_diag("render: %s", err.msg);
		strbuf_release(&out);
		return NULL;
	}
	return strbuf_detach(&out, NULL);
}

static void test_good(const struct good *g)
{
	ProtobufCMessage *m, *m2;
	struct jtree_err err;
	char *got1, *got2 = NULL;
	int rc;

	rc = pbjson_parse(g->in, strlen(g->in), g->desc, g->flags, &m, &err);
	if (!ok(rc == 0, "parse %s: %s", g->desc->short_name, oneline(g->in))) {
		tap_diag("  error: %s", err.msg);
		return;
	}
	got1 = render(m, g->flags);
	is_str(got1, g->want, "  renders as expected");
	/* The rendered text parses back to the same message. */
	if (got1 && pbjson_parse(got1, strlen(got1), g->desc, g->flags, &m2, &err) == 0) {
		got2 = render(m2, g->flags);
		protobuf_c_message_free_unpacked(m2, NULL);
	}
	is_str(got2, g->want, "  round-trips");
	free(got1);
	free(got2);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void test_bad(const struct bad *b)
{
	ProtobufCMessage *m = (ProtobufCMessage *)1;
	struct jtree_err err;
	int rc = pbjson_parse(b->in, strlen(b->in), b->desc, 0, &m, &err);

	ok(rc == -EINVAL && m == NULL, "reject %s: %s", b->desc->short_name, oneline(b->in));
	is_str(err.msg, b->err, "  error text");
}

/* The same message through lowerCamelCase and pretty printing. */
static void test_camel_pretty(void)
{
	static const char in[] =
		"{name: c, connect_timeout: 2s, load_assignment: {cluster_name: c}}";
	static const char want[] = "{\n"
				   "  \"name\": \"c\",\n"
				   "  \"connectTimeout\": \"2s\",\n"
				   "  \"loadAssignment\": {\n"
				   "    \"clusterName\": \"c\"\n"
				   "  }\n"
				   "}";
	ProtobufCMessage *m;
	struct jtree_err err;
	char *s;

	ok(pbjson_parse(in, strlen(in), CLUSTER, 0, &m, &err) == 0, "parse for camel/pretty");
	s = render(m, PBJSON_CAMEL | PBJSON_PRETTY);
	is_str(s, want, "lowerCamelCase, pretty");
	free(s);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Errors carry the position of the node at fault. */
static void test_error_position(void)
{
	static const char in[] = "name: c\n"
				 "load_assignment:\n"
				 "  endpoints:\n"
				 "  - lb_endpoints:\n"
				 "    - endpoint: {address: {socket_address: {port_value: x}}}\n";
	ProtobufCMessage *m;
	struct jtree_err err;

	pbjson_parse(in, strlen(in), CLUSTER, 0, &m, &err);
	is_str(err.msg,
	       "load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address."
	       "port_value: expected an integer, got \"x\"",
	       "deep path");
	is_int(err.line, 5, "line of the bad value");
	is_int(err.column, 57, "column of the bad value");
}

/* Anchors multiply work without multiplying text: the visit budget stops it. */
static void test_alias_bomb(void)
{
	struct strbuf in = STRBUF_INIT;
	ProtobufCMessage *m;
	struct jtree_err err;
	int rc;

	strbuf_adds(&in, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (int i = 1; i < 9; i++)
		strbuf_addf(
			&in,
			"a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n",
			i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
	rc = pbjson_parse(in.buf, in.len, STRUCT, 0, &m, &err);
	is_int(rc, -EINVAL, "alias bomb rejected");
	ok(strstr(err.msg, "document too large") != NULL, "  as too large: %s", err.msg);
	strbuf_release(&in);
}

static void test_depth(void)
{
	struct strbuf in = STRBUF_INIT;
	ProtobufCMessage *m;
	struct jtree_err err;

	for (int i = 0; i < JTREE_MAX_DEPTH + 5; i++)
		strbuf_addc(&in, '[');
	is_int(pbjson_parse(in.buf, in.len, STRUCT, 0, &m, &err), -EINVAL, "deep nesting rejected");
	is_str(err.msg, "line 1, column 101: nested deeper than 100 levels", "  with its position");
	strbuf_release(&in);
}

/* An Any of an unregistered type fails to render unless opaque Anys are allowed. */
static void test_opaque_render(void)
{
	static const char in[] = "{\"@type\": \"" URL("x.Y") "\", k: v}";
	ProtobufCMessage *m;
	struct strbuf out = STRBUF_INIT;
	struct jtree_err err;
	Google__Protobuf__Any *any;

	ok(pbjson_parse(in, strlen(in), ANY, PBJSON_OPAQUE_ANY, &m, &err) == 0,
	   "opaque Any parses");
	is_int(pbjson_render(m, 0, &out, &err), -EINVAL, "strict render refuses it");
	is_str(err.msg, "unknown type \"" URL("x.Y") "\" in an Any", "  naming the type");
	any = (Google__Protobuf__Any *)m;
	free(any->value.data);
	any->value.data = malloc(2);
	any->value.data[0] = 0x08;
	any->value.data[1] = 0x01;
	any->value.len = 2;
	strbuf_reset(&out);
	ok(pbjson_render(m, PBJSON_OPAQUE_ANY, &out, &err) == 0, "binary opaque Any renders");
	is_str(strbuf_str(&out), "{\"@type\":\"" URL("x.Y") "\",\"@value\":\"CAE=\"}",
	       "  as base64");
	strbuf_release(&out);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void test_any_helpers(void)
{
	Envoy__Config__Core__V3__SocketAddress sa = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__INIT;
	ProtobufCMessage *any, *back;
	struct jtree_err err;

	sa.address = "10.1.2.3";
	sa.port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
	sa.port_value = 443;
	ok(pbjson_any_pack(&sa.base, &any) == 0, "pack an Any");
	is_str(((Google__Protobuf__Any *)any)->type_url, URL("envoy.config.core.v3.SocketAddress"),
	       "  with the type URL");
	ok(pbjson_any_unpack(any, &back, &err) == 0, "unpack it");
	is_int(((Envoy__Config__Core__V3__SocketAddress *)back)->port_value, 443, "  same value");
	protobuf_c_message_free_unpacked(back, NULL);
	free(((Google__Protobuf__Any *)any)->type_url);
	((Google__Protobuf__Any *)any)->type_url = strdup(URL("no.Such"));
	is_int(pbjson_any_unpack(any, &back, &err), -ENOENT, "unknown type: -ENOENT");
	protobuf_c_message_free_unpacked(any, NULL);
}

/* A node decoded on its own keeps the path of where it sits in its document. */
static void test_from_node(void)
{
	static const char in[] = "resources: [{name: a, connect_timeout: 1s}, {name: b, type: X}]";
	struct jtree *t;
	struct jtree_err err;
	ProtobufCMessage *m;
	const struct jtree_node *list;

	jtree_parse(in, strlen(in), &t, &err);
	list = jtree_get(jtree_root(t), "resources");
	ok(pbjson_from_node(list->u.items[0], CLUSTER, 0, "resources[0]", &m, &err) == 0,
	   "decode one node of a document");
	protobuf_c_message_free_unpacked(m, NULL);
	is_int(pbjson_from_node(list->u.items[1], CLUSTER, 0, "resources[1]", &m, &err), -EINVAL,
	       "a bad one");
	is_str(err.msg,
	       "resources[1].type: unknown value \"X\" for enum envoy.config.cluster.v3.Cluster."
	       "DiscoveryType",
	       "  with the caller's path before its own");
	jtree_free(t);
}

static void test_registry(void)
{
	ok(pbreg_ntypes > 500, "registry has every generated message (%zu)", pbreg_ntypes);
	for (size_t i = 1; i < pbreg_ntypes; i++)
		if (strcmp(pbreg_types[i - 1].name, pbreg_types[i].name) >= 0) {
			ok(0, "registry sorted at %zu", i);
			return;
		}
	ok(pbreg_find(URL("envoy.config.listener.v3.Listener")) == LISTENER, "find by type URL");
	ok(pbreg_find("google.protobuf.Struct") == STRUCT, "find by name");
	ok(pbreg_find("example.com/x/google.protobuf.Any") == ANY, "any URL prefix");
	ok(pbreg_find(URL("envoy.config.listener.v3.Listenerx")) == NULL, "near miss");
	ok(pbreg_find("") == NULL, "empty");
}

static void test_jtree_equal(void)
{
	static const struct {
		const char *a, *b;
		int eq;
		const char *where;
	} cases[] = {
		{"{\"a\": 1, \"b\": [1, 2]}", "{b: [1, 2.0], a: 1e0}", 1, ""},
		{"{\"a\": 1}", "{\"a\": 2}", 0, "$.a: 1 vs 2"},
		{"{\"a\": [1]}", "{\"a\": [1, 2]}", 0, "$.a (1 items vs 2): list vs list"},
		{"{\"a\": 1}", "{\"a\": 1, \"b\": 2}", 0,
		 "$.b (only in the second): object vs object"},
		{"[\"x\"]", "[1]", 0, "$[0]: string vs number"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct jtree *a, *b;
		struct jtree_err err;
		struct strbuf where = STRBUF_INIT;

		jtree_parse(cases[i].a, strlen(cases[i].a), &a, &err);
		jtree_parse(cases[i].b, strlen(cases[i].b), &b, &err);
		is_int(jtree_equal(jtree_root(a), jtree_root(b), &where), cases[i].eq,
		       "jtree_equal %s / %s", cases[i].a, cases[i].b);
		is_str(strbuf_str(&where), cases[i].where, "  where");
		strbuf_release(&where);
		jtree_free(a);
		jtree_free(b);
	}
}

int main(void)
{
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++)
		test_good(&goods[i]);
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++)
		test_bad(&bads[i]);
	test_camel_pretty();
	test_error_position();
	test_alias_bomb();
	test_depth();
	test_opaque_render();
	test_any_helpers();
	test_from_node();
	test_registry();
	test_jtree_equal();
	return done_testing();
}
