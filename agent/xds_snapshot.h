/* Translation of a sealed xDS config (Envoy v3 messages) into the proxy's immutable snapshot.
 *
 * Supported, with Envoy's defaults where unset:
 *   Listener: address.socket_address (address, port_value), use_original_dst, listener_filters
 *     tls_inspector / http_inspector / original_dst (a no-op here), filter_chains and
 *     default_filter_chain with filter_chain_match destination_port, prefix_ranges,
 *     source_prefix_ranges, source_ports, transport_protocol, server_names,
 *     application_protocols; network filters tcp_proxy (cluster, weighted_clusters,
 *     idle_timeout, stat_prefix) and http_connection_manager (rds.route_config_name or
 *     route_config, codec_type, server_name, server_header_transformation,
 *     use_remote_address, xff_num_trusted_hops, skip_xff_append,
 *     preserve_external_request_id, generate_request_id, max_request_headers_kb,
 *     common_http_protocol_options.idle_timeout / max_headers_count, stream_idle_timeout,
 *     request_timeout, drain_timeout, http2_protocol_options.allow_connect /
 *     max_concurrent_streams (at most H2_MAX_STREAMS, 1024)).
 *   RouteConfiguration: request/response header mutations; virtual hosts (domains, routes,
 *     header mutations, retry_policy, include_request_attempt_count); route match prefix,
 *     path, safe_regex, path_separated_prefix, case_sensitive, headers (string_match, the
 *     deprecated exact/prefix/suffix/contains/safe_regex forms, present, range, invert,
 *     treat_missing_header_as_empty), query_parameters (string_match, present); route action
 *     cluster, weighted_clusters (with per-cluster header mutations), cluster_header,
 *     timeout (0s = none, default 15 s), idle_timeout, prefix_rewrite, regex_rewrite,
 *     host_rewrite_literal, retry_policy (retry_on, num_retries default 1, per_try_timeout,
 *     retry_back_off, retriable_status_codes, previous_hosts, host_selection_retry_max_attempts),
 *     hash_policy header / cookie / connection_properties.source_ip; redirect; direct_response
 *     with an inline body.
 *   Cluster: type STATIC, STRICT_DNS, EDS, ORIGINAL_DST; lb_policy ROUND_ROBIN, LEAST_REQUEST,
 *     RANDOM, RING_HASH, MAGLEV; connect_timeout (default 5 s); HTTP/2 upstream through
 *     typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
 *     (explicit_http_config.http2_protocol_options) or the deprecated http2_protocol_options;
 *     common_http_protocol_options idle_timeout / max_requests_per_connection; circuit_breakers
 *     (DEFAULT priority); upstream_bind_config.source_address; load_assignment or, for EDS, the
 *     ClusterLoadAssignment named by eds_cluster_config.service_name or the cluster name (none
 *     yet: no endpoints, as Envoy waits) with weights, priorities, health and locality.
 *   transport_socket envoy.transport_sockets.tls: DownstreamTlsContext on filter chains
 *     (require_client_certificate) and UpstreamTlsContext on clusters (sni), and Istio's
 *     transport_socket_matches (the first entry whose string match equals the endpoint's
 *     filter_metadata["envoy.transport_socket_match"] decides its transport). CommonTlsContext:
 *     one tls_certificates entry or tls_certificate_sds_secret_configs, validation_context,
 *     validation_context_sds_secret_config or combined_validation_context (trusted_ca,
 *     match_typed_subject_alt_names and match_subject_alt_names with exact / prefix / suffix /
 *     contains), alpn_protocols (an HTTP/2 cluster offers h2, an auto_config one h2 and
 *     http/1.1 when none are named), tls_params min/max version and cipher_suites. DataSources
 *     are inline_string, inline_bytes or a filename read at translation time (up to
 *     XDS_TLS_FILE_MAX). An SDS secret that is not in the config yet makes the chain or cluster
 *     not ready (px_transport.missing_secret: its connections are refused, UF), with a warning.
 *     auto_config: h2 when a TLS server chooses it by ALPN, HTTP/1.1 otherwise.
 *     use_downstream_protocol_config (and the deprecated protocol_selection
 *     USE_DOWNSTREAM_PROTOCOL): HTTP/2 requests go upstream over HTTP/2, the rest over
 *     HTTP/1.1, each on its own pool; over TLS with no alpn_protocols a connection offers
 *     its own protocol.
 *   STRICT_DNS and LOGICAL_DNS endpoints given by hostname become px_cluster.dns_targets, and
 *   with xds_snapshot_build_dns the addresses the resolver knows for them become endpoints
 *   (dns_lookup_family, dns_refresh_rate); until the first answer a name adds none, as in Envoy.
 * Ignored (telemetry, metadata, tuning with no effect on where traffic goes): stat_prefix,
 *   access_log, tracing, metadata (except a cluster's filter_metadata shunt.kernel_lb, a bool
 *   that keeps its services out of the kernel service LB when false),
 *   per_connection_buffer_limit_bytes, outlier_detection, health_checks, dns options other than
 *   the two above, ring_hash_lb_config / maglev_lb_config sizes (the proxy's own
 *   constants), decorator, circuit-breaker thresholds of non-DEFAULT priority,
 *   auto_config without TLS (HTTP/1.1),
 *   tls_params ecdh_curves / signature_algorithms, session tickets and OCSP settings, HTTP
 *   filters marked is_optional, Istio's telemetry filters and its istio_authn network filter
 *   (which only records principals; all dropped with a warning by xdsres.c),
 *   envoy.filters.http.fault without a top-level delay/abort, and the inert
 *   envoy.filters.http.cors filter itself. Other authorization filters (ext_authz, ...) are
 *   refused unless marked is_optional.
 * Enforced: envoy.filters.http.rbac (rules, shadow_rules, RBACPerRoute on routes and virtual
 *   hosts) and envoy.filters.network.rbac (ONE_TIME_ON_FIRST_BYTE; CONTINUOUS decides the same,
 *   having no dynamic inputs), with their permissions and principals except metadata,
 *   filter_state, matcher, uri_template, conditions and audit logging, which are refused with
 *   the field path, as are the matcher / shadow_matcher trees and track_per_rule_stats.
 * Rejected with the field path: other cluster types and lb policies (CLUSTER_PROVIDED outside
 *   ORIGINAL_DST), load_balancing_policy, lb_subset_config, non-socket addresses, named ports, a
 *   transport_socket other than raw_buffer and tls (or the other side's TLS context), several
 *   certificates per context, pkcs12, private key and certificate providers, SPKI / hash
 *   pinning, CRLs, custom validators, regex SAN matchers, require_sni, internal/api listeners, filter_chain_matcher, direct_source_prefix_ranges,
 *   source_type, fault filters with delay/abort, CORS policies and typed_per_filter_config for
 *   cors/fault (and rbac other than RBACPerRoute), vhds,
 *   require_tls, runtime_fraction, dynamic_metadata and connect matchers, path_match_policy,
 *   cluster_specifier_plugin, host_rewrite_header / auto_host_rewrite / host_rewrite_path_regex,
 *   redirect regex_rewrite, hash_policy query_parameter / filter_state / cookie ttl, direct_response
 *   bodies from files, HTTP/3, retry_host_predicate other than previous_hosts. */
#ifndef SHUNT_AGENT_XDS_SNAPSHOT_H
#define SHUNT_AGENT_XDS_SNAPSHOT_H

#include <stdint.h>

#include "agent/jtree.h"
#include "agent/xdsres.h"
#include "proxy/config.h"

#define XDS_SNAP_CONNECT_TIMEOUT_MS_DEF 5000	  /* Envoy's Cluster.connect_timeout default */
#define XDS_TLS_FILE_MAX		(1 << 20) /* a certificate, key or CA file read at most */
#define XDS_TLS_MAX_SANS		64	  /* subject alt name matchers per context */
#define XDS_TLS_MAX_ALPN		16	  /* alpn_protocols per context */
#define XDS_TLS_FILE_CACHE		32 /* certificate files read once per snapshot, at most */
#define XDS_TLS_BASE_CACHE		32 /* distinct client SSL_CTXs shared per snapshot, at most */

/* Builds and finalizes a snapshot from every active listener, route configuration, cluster and
 * load assignment of cfg (which must be sealed; it may be freed afterwards: everything is
 * copied into the snapshot's arena). 0 and *out (refcount 1), or -EINVAL/-ENOMEM with err->msg
 * naming the resource and field path ("cluster \"reviews\": lb_policy: CLUSTER_PROVIDED is not
 * supported"); nothing is allocated on failure. */
int xds_snapshot_build(const struct xds_config *cfg, uint64_t generation, struct px_snapshot **out,
		       struct jtree_err *err);

/* The same, with the names of STRICT_DNS and LOGICAL_DNS clusters resolved by lookup (the
 * agent's resolver cache: it answers at once from what it knows, 0 addresses when nothing yet).
 * The clusters keep their dns_targets, so the caller can tell the resolver which names matter. */
#define XDS_DNS_MAX_ADDRS 32 /* addresses taken per name */
struct xds_dns {
	int (*lookup)(void *ctx, const char *host, int family, struct shunt_addr *out, int max);
	void *ctx;
};
int xds_snapshot_build_dns(const struct xds_config *cfg, uint64_t generation,
			   const struct xds_dns *dns, struct px_snapshot **out,
			   struct jtree_err *err);

#endif
