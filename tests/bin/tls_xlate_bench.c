/* tls_xlate_bench: how long translating Istio-shaped mTLS clusters takes, and what it holds.
 *
 *   tls_xlate_bench [CLUSTERS]   (default 10000)
 *
 * Makes a CA and a workload certificate with the openssl tool in a temporary directory, builds a
 * bootstrap of CLUSTERS clusters shaped as istiod writes them (transport_socket_matches:
 * tlsMode istio -> UpstreamTlsContext with the certificate and CA by SDS name, ALPN istio, a SAN
 * per destination; else raw_buffer) and times xds_snapshot_build on it. One line:
 * "clusters=N contexts=N ssl_ctxs=N us=N rss_kb=N". Exit 1 if the snapshot does not build.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "agent/bootstrap.h"
#include "agent/xds_snapshot.h"
#include "lib/strbuf.h"
#include "proxy/tls.h"

static char dir[] = "/tmp/shunt-tls-bench-XXXXXX";

static void cluster(struct strbuf *sb, int i)
{
	strbuf_addf(
		sb,
		"%s{name: 'outbound|80||s%d.default.svc.cluster.local', type: STATIC, "
		"transport_socket_matches: [{name: tlsMode-istio, match: {tlsMode: istio}, "
		"transport_socket: {name: envoy.transport_sockets.tls, typed_config: {'@type': "
		"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, "
		"sni: outbound_.80_._.s%d.default.svc.cluster.local, common_tls_context: "
		"{alpn_protocols: [istio-peer-exchange, istio], "
		"tls_certificate_sds_secret_configs: "
		"[{name: default, sds_config: {ads: {}}}], combined_validation_context: "
		"{default_validation_context: {match_subject_alt_names: [{exact: "
		"'spiffe://cluster.local/ns/default/sa/s%d'}]}, "
		"validation_context_sds_secret_config: "
		"{name: ROOTCA, sds_config: {ads: {}}}}}}}}, {name: tlsMode-disabled, match: {}, "
		"transport_socket: {name: envoy.transport_sockets.raw_buffer}}]}",
		i ? ", " : "", i, i, i);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 10000;
	struct strbuf sb = {0}, cmd = {0};
	struct xds_config *cfg = NULL;
	struct px_snapshot *s = NULL;
	struct timespec a, b;
	struct jtree_err err;
	struct rusage ru;
	uint32_t ssl_ctxs = 0;
	int rc;

	if (n < 1 || !mkdtemp(dir))
		return 1;
	strbuf_addf(
		&cmd,
		"cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
		"-nodes -days 1 -subj /CN=ca -keyout ca.key -out ca.crt 2>/dev/null && openssl req "
		"-x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=w "
		"-keyout w.key -out w.crt 2>/dev/null",
		dir);
	rc = system(cmd.buf);
	strbuf_addf(
		&sb,
		"static_resources: {secrets: [{name: default, tls_certificate: "
		"{certificate_chain: {filename: %s/w.crt}, private_key: {filename: %s/w.key}}}, "
		"{name: ROOTCA, validation_context: {trusted_ca: {filename: %s/ca.crt}}}], "
		"clusters: [",
		dir, dir, dir);
	for (int i = 0; i < n; i++)
		cluster(&sb, i);
	strbuf_addf(&sb, "]}");
	if (!rc)
		rc = bootstrap_parse(sb.buf, sb.len, &cfg, &err);
	if (!rc) {
		clock_gettime(CLOCK_MONOTONIC, &a);
		rc = xds_snapshot_build(cfg, 1, &s, &err);
		clock_gettime(CLOCK_MONOTONIC, &b);
	}
	strbuf_reset(&cmd);
	strbuf_addf(&cmd, "rm -rf %s", dir);
	if (system(cmd.buf))
		fprintf(stderr, "tls_xlate_bench: could not remove %s\n", dir);
	if (rc) {
		fprintf(stderr, "tls_xlate_bench: %s\n",
			cfg ? err.msg : "no certificates or config");
		return 1;
	}
	for (uint32_t i = 0; i < s->ntls; i++) {
		uint32_t k = 0;

		while (k < i && s->tls[k]->ssl_ctx != s->tls[i]->ssl_ctx)
			k++;
		ssl_ctxs += k == i;
	}
	getrusage(RUSAGE_SELF, &ru);
	printf("clusters=%d contexts=%u ssl_ctxs=%u us=%lld rss_kb=%ld\n", n, s->ntls, ssl_ctxs,
	       (long long)(b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000,
	       ru.ru_maxrss);
	px_snapshot_put(s);
	xds_config_free(cfg);
	strbuf_release(&sb);
	strbuf_release(&cmd);
	return 0;
}
