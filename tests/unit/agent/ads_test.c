/* Tests agent/ads.c's pure parts: the names to subscribe to, the nesting bound applied before
 * decoding, and resources shared between configs (agent/xdsres.c's reference counts). */
#include <errno.h>
#include <stdlib.h>

#include "agent/ads.h"
#include "agent/bootstrap.h"
#include "tests/lib/tap.h"

static const char boot[] =
	"{\"node\": {\"id\": \"n\"},"
	" \"dynamic_resources\": {\"lds_config\": {\"ads\": {}}, \"cds_config\": {\"ads\": {}},"
	"  \"ads_config\": {\"api_type\": \"GRPC\", \"grpc_services\": [{\"envoy_grpc\":"
	"   {\"cluster_name\": \"xds\"}}]}},"
	" \"static_resources\": {"
	"  \"clusters\": ["
	"   {\"name\": \"xds\", \"type\": \"STATIC\", \"load_assignment\": {\"cluster_name\": "
	"\"xds\","
	"    \"endpoints\": [{\"lb_endpoints\": [{\"endpoint\": {\"address\": {\"socket_address\":"
	"    {\"address\": \"127.0.0.1\", \"port_value\": 15010}}}}]}]}},"
	"   {\"name\": \"b\", \"type\": \"EDS\", \"eds_cluster_config\": {\"eds_config\": "
	"{\"ads\": {}},"
	"    \"service_name\": \"svc-b\"}},"
	"   {\"name\": \"a\", \"type\": \"EDS\", \"eds_cluster_config\": {\"eds_config\": "
	"{\"ads\": {}}}},"
	"   {\"name\": \"a2\", \"type\": \"EDS\", \"eds_cluster_config\": {\"eds_config\": "
	"{\"ads\": {}},"
	"    \"service_name\": \"a\"}}],"
	"  \"listeners\": [{\"name\": \"l\", \"address\": {\"socket_address\": {\"address\": "
	"\"0.0.0.0\","
	"   \"port_value\": 80}}, \"filter_chains\": [{\"filters\": [{\"name\": \"hcm\","
	"   \"typed_config\": {\"@type\": \"type.googleapis.com/envoy.extensions.filters.network."
	"http_connection_manager.v3.HttpConnectionManager\", \"stat_prefix\": \"x\","
	"   \"rds\": {\"route_config_name\": \"r1\", \"config_source\": {\"ads\": {}}},"
	"   \"http_filters\": [{\"name\": \"router\", \"typed_config\": {\"@type\":"
	"   \"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\"}}]}}]}]}]}}";

static void test_wanted(void)
{
	struct xds_config *cfg;
	struct jtree_err err;
	char **names;
	size_t n;

	if (!ok(bootstrap_parse(boot, sizeof(boot) - 1, &cfg, &err) == 0, "bootstrap parses: %s",
		err.msg))
		return;
	ok(ads_wanted_names(cfg, XDS_ENDPOINT, &names, &n) == 0, "endpoint names");
	is_int(n, 2, "two services: a (twice, once by name, once by service_name) and svc-b");
	if (n == 2) {
		is_str(names[0], "a", "sorted: a");
		is_str(names[1], "svc-b", "sorted: svc-b");
	}
	ads_names_free(names, n);
	ok(ads_wanted_names(cfg, XDS_ROUTE, &names, &n) == 0 && n == 1 && !strcmp(names[0], "r1"),
	   "route names: r1 from the listener's rds");
	ads_names_free(names, n);
	ok(ads_wanted_names(cfg, XDS_SECRET, &names, &n) == 0 && n == 0 && !names,
	   "no secrets referred to");
	xds_config_free(cfg);
}

/* Where transport sockets name their secrets (YAML: bootstrap_parse takes both forms). */
static const char tls_boot[] =
	"node: {id: n}\n"
	"dynamic_resources:\n"
	"  lds_config: {ads: {}}\n"
	"  cds_config: {ads: {}}\n"
	"  ads_config: {api_type: GRPC, grpc_services: [{envoy_grpc: "
	"{cluster_name: xds}}]}\n"
	"static_resources:\n"
	"  secrets:\n"
	"  - {name: static-ca, validation_context: {trusted_ca: "
	"{inline_string: x}}}\n"
	"  clusters:\n"
	"  - name: xds\n"
	"    type: STATIC\n"
	"    load_assignment: {cluster_name: xds, endpoints: [{lb_endpoints: "
	"[{endpoint: {address: {socket_address: {address: 127.0.0.1, "
	"port_value: 15010}}}}]}]}\n"
	"  - name: up\n"
	"    type: STATIC\n"
	"    transport_socket:\n"
	"      name: tls\n"
	"      typed_config:\n"
	"        '@type': type.googleapis.com/envoy.extensions.transport_sockets."
	"tls.v3.UpstreamTlsContext\n"
	"        common_tls_context:\n"
	"          tls_certificate_sds_secret_configs:\n"
	"          - {name: cert, sds_config: {ads: {}}}\n"
	"          combined_validation_context:\n"
	"            default_validation_context: {}\n"
	"            validation_context_sds_secret_config:\n"
	"              name: ROOTCA\n"
	"              sds_config: {api_config_source: {api_type: GRPC, "
	"grpc_services: [{envoy_grpc: {cluster_name: sds-grpc}}]}}\n"
	"  listeners:\n"
	"  - name: l\n"
	"    address: {socket_address: {address: 0.0.0.0, port_value: 443}}\n"
	"    filter_chains:\n"
	"    - transport_socket:\n"
	"        name: tls\n"
	"        typed_config:\n"
	"          '@type': type.googleapis.com/envoy.extensions.transport_sockets."
	"tls.v3.DownstreamTlsContext\n"
	"          common_tls_context:\n"
	"            tls_certificate_sds_secret_configs:\n"
	"            - {name: cert, sds_config: {ads: {}}}\n"
	"            - {name: cert2, sds_config: {ads: {}}}\n"
	"            validation_context_sds_secret_config: {name: static-ca}\n"
	"      filters:\n"
	"      - name: tcp\n"
	"        typed_config: {'@type': type.googleapis.com/envoy.extensions."
	"filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: up}\n";

static void test_secrets(void)
{
	struct xds_config *cfg;
	struct jtree_err err;
	char *text, *at;
	char **names;
	size_t n;

	if (!ok(bootstrap_parse(tls_boot, sizeof(tls_boot) - 1, &cfg, &err) == 0,
		"a bootstrap whose transport sockets name secrets parses: %s", err.msg))
		return;
	ok(ads_wanted_names(cfg, XDS_SECRET, &names, &n) == 0, "secret names");
	is_int(n, 2, "cert (named twice) and cert2 over ADS; not the static one, not sds-grpc's");
	if (n == 2) {
		is_str(names[0], "cert", "sorted: cert");
		is_str(names[1], "cert2", "sorted: cert2");
	}
	ads_names_free(names, n);
	ok(cfg->warnings >= 1, "the secret from an SDS source shuntd does not open is a warning");
	xds_config_free(cfg);

	/* The static secret gone: a reference without sds_config may only be static. */
	text = strdup(tls_boot);
	at = text ? strstr(text, "{name: static-ca}") : NULL;
	if (!at) {
		ok(0, "test text found");
		free(text);
		return;
	}
	at[strlen("{name: static-c")] = 'b';
	ok(bootstrap_parse(text, strlen(text), &cfg, &err) == -EINVAL,
	   "a missing static secret is refused, although ADS could bring secrets");
	ok(strstr(err.msg, "secret \"static-cb\" is not defined (and no sds_config says where "
			   "else"),
	   "... saying so: %s", err.msg);
	free(text);
}

static void test_shared(void)
{
	struct xds_config *cfg, *a, *b;
	struct jtree_err err;
	const struct xds_resource *r;

	if (bootstrap_parse(boot, sizeof(boot) - 1, &cfg, &err))
		return;
	a = xds_config_new();
	b = xds_config_new();
	ok(a && b && !xds_config_share_bootstrap(a, cfg) && !xds_config_share_bootstrap(b, cfg),
	   "bootstrap shared twice");
	for (size_t i = 0; i < cfg->n[XDS_CLUSTER]; i++) {
		xds_config_add_shared(a, XDS_CLUSTER, &cfg->res[XDS_CLUSTER][i]);
		xds_config_add_shared(b, XDS_CLUSTER, &cfg->res[XDS_CLUSTER][i]);
	}
	is_int(*cfg->res[XDS_CLUSTER][0].shared, 3, "a resource held by three configs counts 3");
	xds_config_free(cfg);
	ok(!xds_config_seal(a, &err), "a copy seals after the original is gone");
	r = xds_config_find(a, XDS_CLUSTER, "a2");
	ok(r && r->msg && r->n_refs == 1 && !strcmp(r->refs[0].name, "a"),
	   "its resources are intact (ASan checks the memory)");
	is_int(*r->shared, 2, "now held by two");
	xds_config_free(a);
	ok(bootstrap_of(b) && bootstrap_of(b)->node && !strcmp(bootstrap_of(b)->node->id, "n"),
	   "the last holder still has the bootstrap");
	xds_config_free(b);
}

/* n messages nested in one another, each as field 1. */
static size_t nest(uint8_t *buf, size_t cap, int n)
{
	size_t len = 0;

	for (int i = 0; i < n && len + 3 <= cap; i++) {
		memmove(buf + 2, buf, len);
		buf[0] = 0x0a;
		buf[1] = (uint8_t)len;
		len += 2;
	}
	return len;
}

static void test_depth(void)
{
	static const struct {
		const char *what;
		const uint8_t bytes[16];
		size_t len;
		int max, want;
	} cases[] = {
		{"empty", {0}, 0, 0, 0},
		{"one varint", {0x08, 0x96, 0x01}, 3, 0, 0},
		{"a string that is not a message", {0x12, 0x03, 'a', 'b', 'c'}, 5, 0, 0},
		{"one level of message, limit 0", {0x0a, 0x02, 0x08, 0x01}, 4, 0, 1},
		{"one level of message, limit 1", {0x0a, 0x02, 0x08, 0x01}, 4, 1, 0},
		{"length past the end", {0x0a, 0x7f, 0x08}, 3, 0, 0},
		{"fixed64 cut short", {0x09, 1, 2, 3}, 4, 0, 0},
		{"field number 0", {0x00, 0x01}, 2, 0, 0},
		{"group wire type", {0x0b, 0x0c}, 2, 0, 0},
		{"varint too long",
		 {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		 12,
		 0,
		 0},
	};
	uint8_t buf[256];
	size_t len;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		is_int(ads_pb_too_deep(cases[i].bytes, cases[i].len, cases[i].max), cases[i].want,
		       "%s", cases[i].what);
	len = nest(buf, sizeof(buf), 64);
	is_int(ads_pb_too_deep(buf, len, 64), 0, "64 levels pass a limit of 64");
	is_int(ads_pb_too_deep(buf, len, 63), 1, "64 levels fail a limit of 63");
}

int main(void)
{
	test_wanted();
	test_secrets();
	test_shared();
	test_depth();
	return done_testing();
}
