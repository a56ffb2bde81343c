# make bench: the side-by-side benchmark of the mesh data paths (tools/bench/bench.sh), its
# client tools/bench/loadgen.c, and bench-smoke, the seconds-long run that `make test` uses to
# check the pipeline still produces a well-formed table (never the speed).
BENCH_BINS := $(BUILD)/bin/bench/loadgen

.PHONY: bench bench-smoke
bench: $(BINS) $(TOOL_BINS) $(BENCH_BINS)
	@tools/bench/bench.sh

bench-smoke: $(BINS) $(TOOL_BINS) $(BENCH_BINS)
	@rm -rf $(BUILD)/bench-smoke
	@BENCH_SMOKE=1 BENCH_OUT=$(BUILD)/bench-smoke tools/bench/bench.sh >$(BUILD)/bench-smoke.log 2>&1 || \
		{ cat $(BUILD)/bench-smoke.log; exit 1; }
	@python3 tools/bench/report.py --check $(BUILD)/bench-smoke/*.md && echo "  bench-smoke: ok ($(BUILD)/bench-smoke)"

# The kernel service LB's map writes (agent/svcmap.c) for 10,000 services x 10 backends: first
# write, a 10% change, no change, removal; batched, then one syscall per element.
.PHONY: bench-svcmap
bench-svcmap: $(BUILD)/bin/svcmap_bench
	@$(BUILD)/bin/svcmap_bench 10000 10
	@$(BUILD)/bin/svcmap_bench 10000 10 single

# Translating Istio-shaped mTLS clusters (agent/xds_snapshot.c): 10,000 clusters with
# transport_socket_matches, one certificate and CA by SDS name, a SAN each; how long, how many
# TLS contexts and how many distinct SSL_CTXs behind them.
.PHONY: bench-tls-xlate
bench-tls-xlate: $(BUILD)/bin/tls_xlate_bench
	@$(BUILD)/bin/tls_xlate_bench 1000
	@$(BUILD)/bin/tls_xlate_bench 10000
