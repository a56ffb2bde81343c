# Envoy v3 API protos: fetched from a pinned npm package, compiled by protoc-c into $(BUILD)/gen.
#
# The package @grpc/grpc-js-xds ships the upstream envoy/, xds/, udpa/, validate/ and google/api
# trees. tools/fetch-protos.sh downloads it once into third_party/cache/, checks its sha256,
# computes the import closure of XDS_PROTO_ROOTS with protoc and compiles exactly that (plus a
# type registry for google.protobuf.Any). The closure is kept in mk/xds-protos.lst so that the
# list of generated sources is known when make reads this file; `make xds-protos-list` rewrites
# it after a change of roots or version.

XDS_PKG_VERSION := 1.14.1
# sha256 of grpc-grpc-js-xds-1.14.1.tgz (npm integrity sha512-F2mVXwEeMWw1znPUrp+8ykjsIOVnf7Rv+
# EyIvXOfz73w5tNolCnzokpLkE/d2Ehx30PJmZXqCQdMpx8DcBJohA==)
XDS_PKG_SHA256  := fd27db4119c139d5b59e8fe99d109bed04bff491302743ae3bf096667105c607

# What shuntd speaks: bootstrap, LDS/RDS/CDS/EDS/SDS resources, the filters it implements, ADS,
# and the admin config_dump types.
XDS_PROTO_ROOTS := \
	envoy/config/bootstrap/v3/bootstrap.proto \
	envoy/config/listener/v3/listener.proto \
	envoy/config/cluster/v3/cluster.proto \
	envoy/config/route/v3/route.proto \
	envoy/config/endpoint/v3/endpoint.proto \
	envoy/extensions/transport_sockets/tls/v3/secret.proto \
	envoy/extensions/transport_sockets/tls/v3/tls.proto \
	envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto \
	envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto \
	envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto \
	envoy/extensions/filters/http/router/v3/router.proto \
	envoy/extensions/upstreams/http/v3/http_protocol_options.proto \
	envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto \
	envoy/service/discovery/v3/ads.proto \
	envoy/service/discovery/v3/discovery.proto \
	envoy/admin/v3/config_dump.proto
# Extensions istiod puts into sidecar and waypoint config: registered so that such config (and
# Istio's own config dumps) decodes and prints, even where shuntd does not implement the filter.
XDS_PROTO_ROOTS += \
	envoy/extensions/transport_sockets/internal_upstream/v3/internal_upstream.proto \
	envoy/extensions/filters/listener/original_dst/v3/original_dst.proto \
	envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto \
	envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto \
	envoy/extensions/request_id/uuid/v3/uuid.proto \
	envoy/extensions/filters/http/cors/v3/cors.proto \
	envoy/extensions/filters/http/fault/v3/fault.proto \
	envoy/extensions/filters/http/grpc_stats/v3/config.proto \
	envoy/extensions/filters/http/rbac/v3/rbac.proto \
	envoy/extensions/filters/network/rbac/v3/rbac.proto \
	envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto \
	envoy/extensions/filters/http/wasm/v3/wasm.proto \
	envoy/extensions/filters/network/set_filter_state/v3/set_filter_state.proto \
	envoy/extensions/matching/common_inputs/network/v3/network_inputs.proto \
	udpa/type/v1/typed_struct.proto \
	xds/type/v3/typed_struct.proto \
	xds/type/matcher/v3/ip.proto

XDS_GEN       := $(BUILD)/gen
XDS_CACHE     := third_party/cache
XDS_LIST      := mk/xds-protos.lst
XDS_PROTOS    := $(shell grep -v '^\#' $(XDS_LIST) 2>/dev/null)
XDS_GEN_SRCS  := $(patsubst %.proto,$(XDS_GEN)/%.pb-c.c,$(XDS_PROTOS)) $(XDS_GEN)/xds_registry.c
XDS_GEN_HDRS  := $(patsubst %.proto,$(XDS_GEN)/%.pb-c.h,$(XDS_PROTOS))
XDS_STAMP     := $(XDS_GEN)/.xds-protos.stamp
XDS_FETCH      = tools/fetch-protos.sh $(1) $(XDS_CACHE) $(BUILD)/xds $(XDS_GEN) $(XDS_LIST) \
		 $(XDS_PKG_VERSION) $(XDS_PKG_SHA256) $(XDS_PROTO_ROOTS)

GEN_SRCS += $(XDS_GEN_SRCS)
GEN_HDRS += $(XDS_GEN_HDRS)

$(XDS_STAMP): tools/fetch-protos.sh mk/xds.mk $(XDS_LIST)
	@echo "  PROTOC-C  @grpc/grpc-js-xds@$(XDS_PKG_VERSION): $(words $(XDS_PROTOS)) protos"
	@$(call XDS_FETCH,gen)
	@touch $@

# One run of the script makes them all; the stamp stands for the group.
$(XDS_GEN_SRCS) $(XDS_GEN_HDRS): $(XDS_STAMP) ;

.PHONY: xds-protos xds-protos-list
xds-protos: $(XDS_STAMP)

xds-protos-list:
	@$(call XDS_FETCH,list)
