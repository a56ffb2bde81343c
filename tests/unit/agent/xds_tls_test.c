/* Tests the TLS part of xds_snapshot.c: DownstreamTlsContext on filter chains and
 * UpstreamTlsContext on clusters become px_tls_ctx contexts owned by the snapshot; secrets come
 * inline, from files or by SDS name; an SDS secret that has not arrived leaves the chain or
 * cluster "not ready" instead of failing the config; errors name the field. Certificates are made
 * by the openssl tool in a temporary directory. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/bootstrap.h"
#include "agent/jtree.h"
#include "agent/xds_snapshot.h"
#include "agent/xdsres.h"
#include "lib/strbuf.h"
#include "proxy/config.h"
#include "proxy/tls.h"
#include "tests/lib/pki.h"
#include "tests/lib/tap.h"

#define TCP_T "'@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
#define DOWN_T                                                                                     \
	"'@type': "                                                                                \
	"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
#define UP_T                                                                                       \
	"'@type': "                                                                                \
	"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"

static char dir[] = "/tmp/shunt-xds-tls-XXXXXX";

/* A CA, a server certificate signed by it, and a key that belongs to no certificate. */
static int make_pki(void)
{
	return pki_ca(dir, "ca") ||
	       pki_leaf(dir, "srv", "ca", "URI:spiffe://cluster.local/ns/default/sa/srv") ||
	       pki_key(dir, "other");
}

/* A YAML flow string holding the file's PEM, with newlines escaped. */
static void inline_pem(struct strbuf *sb, const char *name)
{
	char buf[8192];
	size_t n = pki_read(dir, name, buf, sizeof(buf));

	strbuf_addf(sb, "\"");
	for (size_t i = 0; i < n; i++)
		strbuf_addf(sb, buf[i] == '\n' ? "\\n" : "%c", buf[i]);
	strbuf_addf(sb, "\"");
}

static struct px_snapshot *build(const char *text, struct jtree_err *err, int *rc)
{
	struct xds_config *cfg;
	struct px_snapshot *s = NULL;

	memset(err, 0, sizeof(*err));
	*rc = bootstrap_parse(text, strlen(text), &cfg, err);
	if (*rc)
		return NULL;
	*rc = xds_snapshot_build(cfg, 1, &s, err);
	xds_config_free(cfg);
	return s;
}

/* A listener on 0.0.0.0:8443 whose one chain has transport_socket `ts`, plus `extra` top-level
 * static_resources entries (secrets). */
static char *listener_yaml(const char *ts, const char *extra)
{
	struct strbuf sb = {0};

	strbuf_addf(&sb,
		    "static_resources: {%s listeners: [{name: l, address: {socket_address: "
		    "{address: 0.0.0.0, port_value: 8443}}, filter_chains: [{transport_socket: "
		    "{name: envoy.transport_sockets.tls, typed_config: {" DOWN_T ", %s}}, "
		    "filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {" TCP_T
		    ", stat_prefix: t, cluster: c}}]}]}], clusters: [{name: c}]}",
		    extra, ts);
	return sb.buf;
}

static const struct px_filter_chain *chain0(const struct px_snapshot *s)
{
	return s && s->nlisteners ? &s->listeners[0].chains[0] : NULL;
}

static void test_downstream(void)
{
	struct jtree_err err;
	struct px_snapshot *s;
	struct strbuf ts = {0}, sec = {0};
	char *y;
	int rc;

	/* Files, ALPN, client certificates required. */
	strbuf_addf(&ts,
		    "require_client_certificate: true, common_tls_context: {alpn_protocols: [h2, "
		    "http/1.1], tls_params: {tls_minimum_protocol_version: TLSv1_2, "
		    "cipher_suites: [ECDHE-ECDSA-AES128-GCM-SHA256]}, tls_certificates: "
		    "[{certificate_chain: {filename: %s/srv.crt}, private_key: {filename: "
		    "%s/srv.key}}], validation_context: {trusted_ca: {filename: %s/ca.crt}}}",
		    dir, dir, dir);
	y = listener_yaml(ts.buf, "");
	s = build(y, &err, &rc);
	ok(s && chain0(s)->transport.tls && chain0(s)->transport.tls->server,
	   "DownstreamTlsContext from files builds a server context: %s", err.msg);
	if (s) {
		struct px_tls_ctx *t = chain0(s)->transport.tls;

		is_int(t->alpn_wire_len, 12, "its ALPN list is h2, http/1.1 in wire form");
		ok(s->ntls == 1 && s->tls[0] == t, "the snapshot owns the context");
		px_tls_ctx_get(t);
		px_snapshot_put(s);
		is_int(atomic_load(&t->refs), 1, "freeing the snapshot releases its reference");
		px_tls_ctx_put(t);
	}
	free(y);

	/* Inline PEM via a static secret referenced by SDS name. */
	strbuf_reset(&sec);
	strbuf_addf(&sec, "secrets: [{name: srv-cert, tls_certificate: {certificate_chain: "
			  "{inline_string: ");
	inline_pem(&sec, "srv.crt");
	strbuf_addf(&sec, "}, private_key: {inline_string: ");
	inline_pem(&sec, "srv.key");
	strbuf_addf(&sec, "}}}, {name: roots, validation_context: {trusted_ca: {inline_string: ");
	inline_pem(&sec, "ca.crt");
	strbuf_addf(&sec, "}}}],");
	y = listener_yaml(
		"common_tls_context: {tls_certificate_sds_secret_configs: [{name: "
		"srv-cert, sds_config: {ads: {}}}], combined_validation_context: "
		"{default_validation_context: {match_typed_subject_alt_names: [{san_type: "
		"URI, matcher: {prefix: 'spiffe://cluster.local/'}}]}, "
		"validation_context_sds_secret_config: {name: roots}}}",
		sec.buf);
	s = build(y, &err, &rc);
	ok(s && chain0(s)->transport.tls && chain0(s)->transport.tls->nsans == 1,
	   "secrets by SDS name from static_resources.secrets: %s", err.msg);
	px_snapshot_put(s);
	free(y);

	/* An SDS secret that has not arrived: the config stands, the chain is not ready. */
	y = listener_yaml("common_tls_context: {tls_certificate_sds_secret_configs: [{name: "
			  "default, "
			  "sds_config: {api_config_source: {api_type: GRPC, grpc_services: "
			  "[{envoy_grpc: {cluster_name: sds-grpc}}]}}}]}",
			  "");
	s = build(y, &err, &rc);
	ok(s && !chain0(s)->transport.tls && chain0(s)->transport.missing_secret &&
		   !strcmp(chain0(s)->transport.missing_secret, "default") &&
		   px_listener_terminates_tls(&s->listeners[0]),
	   "a secret not there yet leaves the chain not ready: %s", err.msg);
	px_snapshot_put(s);
	free(y);

	/* A broken secret is named in the error, with the field inside it. */
	y = listener_yaml(
		"common_tls_context: {tls_certificate_sds_secret_configs: [{name: bad}], "
		"combined_validation_context: {validation_context_sds_secret_config: "
		"{name: badca}}}",
		"secrets: [{name: bad, tls_certificate: {certificate_chain: {inline_string: "
		"nope}, private_key: {inline_string: nope}}}, {name: badca, "
		"validation_context: {trusted_ca: {inline_string: nope}}}],");
	s = build(y, &err, &rc);
	is_str(err.msg,
	       "listener \"l\": filter_chains[0].transport_socket.typed_config.common_tls_context."
	       "tls_certificate_sds_secret_configs[0].(secret \"bad\").tls_certificate."
	       "certificate_chain: not a PEM certificate (error:0480006C:PEM routines::no start "
	       "line)",
	       "a broken certificate secret is named with its field");
	px_snapshot_put(s);
	free(y);
	strbuf_reset(&sec);
	strbuf_addf(&sec,
		    "secrets: [{name: badca, validation_context: {trusted_ca: {inline_string: "
		    "nope}}}],");
	strbuf_reset(&ts);
	strbuf_addf(&ts,
		    "common_tls_context: {tls_certificates: [{certificate_chain: {filename: "
		    "%s/srv.crt}, private_key: {filename: %s/srv.key}}], "
		    "combined_validation_context: {validation_context_sds_secret_config: {name: "
		    "badca}}}",
		    dir, dir);
	y = listener_yaml(ts.buf, sec.buf);
	s = build(y, &err, &rc);
	ok(!s && strstr(err.msg, "common_tls_context.combined_validation_context."
				 "validation_context_sds_secret_config.(secret \"badca\")."
				 "validation_context.trusted_ca: no PEM certificate in it"),
	   "and so is a broken CA secret: %s", err.msg);
	px_snapshot_put(s);
	free(y);

	strbuf_release(&ts);
	strbuf_release(&sec);
}

static void test_upstream(void)
{
	struct jtree_err err;
	struct px_snapshot *s;
	struct strbuf y = {0};
	int rc;

	/* Istio's shape: mTLS for endpoints labelled tlsMode: istio, plaintext for the rest. */
	strbuf_addf(
		&y,
		"static_resources: {clusters: [{name: c, transport_socket_matches: [{name: "
		"tlsMode-istio, match: {tlsMode: istio}, transport_socket: {name: "
		"envoy.transport_sockets.tls, typed_config: {" UP_T
		", sni: outbound_.80_._.c, common_tls_context: {alpn_protocols: [istio], "
		"tls_certificates: [{certificate_chain: {filename: %s/srv.crt}, private_key: "
		"{filename: %s/srv.key}}], combined_validation_context: "
		"{default_validation_context: "
		"{match_subject_alt_names: [{exact: 'spiffe://cluster.local/ns/default/sa/srv'}]}, "
		"validation_context_sds_secret_config: {name: ROOTCA, sds_config: "
		"{api_config_source: "
		"{api_type: GRPC, grpc_services: [{envoy_grpc: {cluster_name: sds-grpc}}]}}}}}}}}, "
		"{name: tlsMode-disabled, match: {}, transport_socket: {name: "
		"envoy.transport_sockets.raw_buffer}}], load_assignment: {cluster_name: c, "
		"endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: "
		"10.0.0.1, port_value: 80}}}, metadata: {filter_metadata: "
		"{envoy.transport_socket_match: {tlsMode: istio}}}}, {endpoint: {address: "
		"{socket_address: {address: 10.0.0.2, port_value: 80}}}}]}]}}]}",
		dir, dir);
	s = build(y.buf, &err, &rc);
	ok(s && s->nclusters == 1, "Istio's transport_socket_matches translate: %s", err.msg);
	if (s && s->nclusters == 1) {
		const struct px_cluster *c = &s->clusters[0];
		const struct px_endpoint *a = &c->endpoints[0], *b = &c->endpoints[1];

		ok(a->transport && a->transport->missing_secret &&
			   !strcmp(a->transport->missing_secret, "ROOTCA") && a->transport->sni &&
			   !strcmp(a->transport->sni, "outbound_.80_._.c"),
		   "the tlsMode: istio endpoint gets mTLS (not ready until ROOTCA arrives)");
		ok(b->transport && !px_transport_is_tls(b->transport),
		   "an unlabelled endpoint gets the match-all raw_buffer entry");
		ok(!px_transport_is_tls(&c->transport), "the cluster's own transport stays raw");
	}
	px_snapshot_put(s);

	strbuf_reset(&y);
	strbuf_addf(&y,
		    "static_resources: {clusters: [{name: c, transport_socket: {name: tls, "
		    "typed_config: {" UP_T ", sni: x.test, common_tls_context: "
		    "{validation_context: {trusted_ca: {filename: %s/ca.crt}, "
		    "match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: "
		    "'spiffe://cluster.local/ns/default/sa/srv'}}]}}}}}]}",
		    dir);
	s = build(y.buf, &err, &rc);
	ok(s && s->clusters[0].transport.tls && !s->clusters[0].transport.tls->server &&
		   s->clusters[0].transport.tls->nsans == 1 &&
		   !strcmp(s->clusters[0].transport.sni, "x.test"),
	   "UpstreamTlsContext with a CA and a SAN check builds a client context: %s", err.msg);
	px_snapshot_put(s);

	/* Clusters that differ only by SANs share one SSL_CTX, each with its own matchers. */
	strbuf_reset(&y);
	strbuf_addf(&y, "static_resources: {clusters: [");
	for (int i = 0; i < 3; i++)
		strbuf_addf(
			&y,
			"%s{name: c%d, transport_socket: {name: tls, typed_config: {" UP_T
			", common_tls_context: {tls_certificates: [{certificate_chain: {filename: "
			"%s/srv.crt}, private_key: {filename: %s/srv.key}}], validation_context: "
			"{trusted_ca: {filename: %s/ca.crt}, match_subject_alt_names: [{exact: "
			"'spiffe://cluster.local/ns/default/sa/s%d'}]}}}}}",
			i ? ", " : "", i, dir, dir, dir, i);
	strbuf_addf(&y, "]}");
	s = build(y.buf, &err, &rc);
	ok(s && s->nclusters == 3 &&
		   s->clusters[0].transport.tls->ssl_ctx == s->clusters[1].transport.tls->ssl_ctx &&
		   s->clusters[1].transport.tls->ssl_ctx == s->clusters[2].transport.tls->ssl_ctx &&
		   s->clusters[0].transport.tls != s->clusters[2].transport.tls &&
		   !strcmp(s->clusters[2].transport.tls->sans[0].value,
			   "spiffe://cluster.local/ns/default/sa/s2"),
	   "three clusters with their own SANs share one SSL_CTX: %s", err.msg);
	is_int(s ? (int)s->ntls : -1, 3, "and the snapshot holds each context");
	px_snapshot_put(s);

	/* What a context offers by ALPN when it names nothing: h2 to an HTTP/2 cluster, h2 and
	 * http/1.1 to an auto_config one, nothing otherwise; then each connection of a cluster
	 * that follows the downstream protocol offers its own (alpn_by_codec). */
	static const struct {
		const char *opts;
		uint32_t wire_len;
		bool http2, alpn_auto, down;
	} alpn[] = {
		{"explicit_http_config: {http2_protocol_options: {}}", 3, true, false, false},
		{"auto_config: {http2_protocol_options: {}}", 12, false, true, false},
		{"explicit_http_config: {http_protocol_options: {}}", 0, false, false, false},
		{"use_downstream_protocol_config: {http2_protocol_options: {}}", 0, false, false,
		 true},
	};
	for (size_t i = 0; i < sizeof(alpn) / sizeof(alpn[0]); i++) {
		strbuf_reset(&y);
		strbuf_addf(
			&y,
			"static_resources: {clusters: [{name: c, typed_extension_protocol_options: "
			"{envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {'@type': "
			"type.googleapis.com/"
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions, %s}}, "
			"transport_socket: {name: tls, typed_config: {" UP_T "}}}]}",
			alpn[i].opts);
		s = build(y.buf, &err, &rc);
		ok(s && s->clusters[0].transport.tls &&
			   s->clusters[0].transport.tls->alpn_wire_len == alpn[i].wire_len &&
			   s->clusters[0].transport.tls->alpn_by_codec &&
			   s->clusters[0].http2 == alpn[i].http2 &&
			   s->clusters[0].alpn_auto == alpn[i].alpn_auto &&
			   s->clusters[0].use_downstream_protocol == alpn[i].down,
		   "ALPN offered with %s: %u bytes %s", alpn[i].opts, alpn[i].wire_len, err.msg);
		px_snapshot_put(s);
	}
	strbuf_release(&y);
}

static void test_errors(void)
{
	static const struct {
		const char *ts; /* %s is the directory */
		const char *want;
	} cases[] = {
		{"common_tls_context: {tls_certificates: [{certificate_chain: {filename: "
		 "%s/srv.crt}, private_key: {filename: %s/other.key}}]}",
		 "listener \"l\": "
		 "filter_chains[0].transport_socket.typed_config.common_tls_context."
		 "tls_certificates[0].private_key: does not match certificate_chain"},
		{"common_tls_context: {tls_certificates: [{certificate_chain: {filename: "
		 "%s/nope.crt}, private_key: {filename: %s/srv.key}}]}",
		 "listener \"l\": "
		 "filter_chains[0].transport_socket.typed_config.common_tls_context."
		 "tls_certificates[0].certificate_chain: filename: cannot read"},
		{"common_tls_context: {tls_certificates: [{certificate_chain: {filename: "
		 "%s/srv.key}, private_key: {filename: %s/srv.key}}]}",
		 "listener \"l\": "
		 "filter_chains[0].transport_socket.typed_config.common_tls_context."
		 "tls_certificates[0].certificate_chain: not a PEM certificate"},
		{"common_tls_context: {}",
		 "listener \"l\": filter_chains[0].transport_socket.typed_config: "
		 "common_tls_context.tls_certificates: a DownstreamTlsContext needs a certificate"},
		{"require_client_certificate: true, common_tls_context: {tls_certificates: "
		 "[{certificate_chain: {filename: %s/srv.crt}, private_key: {filename: "
		 "%s/srv.key}}]}",
		 "listener \"l\": "
		 "filter_chains[0].transport_socket.typed_config.common_tls_context."
		 "require_client_certificate: needs validation_context.trusted_ca"},
		{"common_tls_context: {tls_certificate_sds_secret_configs: [{name: nope}]}",
		 "listener \"l\": "
		 "filter_chains[0].transport_socket.typed_config.common_tls_context."
		 "tls_certificate_sds_secret_configs[0]: secret \"nope\" is not defined"},
		{"common_tls_context: {validation_context: {trusted_ca: {filename: %s/ca.crt}, "
		 "match_typed_subject_alt_names: [{san_type: URI, matcher: {safe_regex: {regex: "
		 "x}}}]}, tls_certificates: [{certificate_chain: {filename: %s/srv.crt}, "
		 "private_key: {filename: %s/srv.key}}]}",
		 "listener \"l\": "
		 "filter_chains[0].transport_socket.typed_config.common_tls_context."
		 "validation_context.match_typed_subject_alt_names[0].matcher: only exact, prefix, "
		 "suffix and contains are supported"},
		{"common_tls_context: {tls_params: {cipher_suites: [NOT-A-CIPHER]}, "
		 "tls_certificates: [{certificate_chain: {filename: %s/srv.crt}, private_key: "
		 "{filename: %s/srv.key}}]}",
		 "listener \"l\": "
		 "filter_chains[0].transport_socket.typed_config.common_tls_context."
		 "tls_params.cipher_suites: no cipher OpenSSL knows"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char ts[1024];
		struct jtree_err err;
		struct px_snapshot *s;
		char *y;
		int rc;

		snprintf(ts, sizeof(ts), cases[i].ts, dir, dir, dir);
		y = listener_yaml(ts, "");
		s = build(y, &err, &rc);
		ok(!s && rc == -EINVAL && !strncmp(err.msg, cases[i].want, strlen(cases[i].want)),
		   "bad[%zu] is refused naming the field: \"%s\" (%d)", i, err.msg, rc);
		px_snapshot_put(s);
		free(y);
	}
}

int main(void)
{
	if (!mkdtemp(dir) || make_pki()) {
		ok(0, "the test certificates are made in %s (openssl)", dir);
		pki_remove(dir);
		return done_testing();
	}
	test_downstream();
	test_upstream();
	test_errors();
	pki_remove(dir);
	return done_testing();
}
