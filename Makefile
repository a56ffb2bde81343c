# shunt: one entry point for building, testing, running and measuring.
#
# Sources are picked up by directory: lib/ agent/ proxy/ iptables/ become static libraries,
# bpf/*.bpf.c become BPF objects and skeletons, tests/unit/**/*_test.c become TAP programs.
# Module-specific rules (generated code, fetched inputs) live in mk/*.mk.

BUILD     ?= build
CC        ?= gcc
CLANG     ?= clang
BPFTOOL   ?= bpftool
PROVE     ?= prove
OPT       ?= -O2
V         ?= 0
# Quiet by default: one line per output ("CC  proxy/lb.c"); `make V=1` shows commands.
ifeq ($(V),0)
Q     := @
say    = @printf '  %-6s %s\n' $(1) $(2);
else
Q     :=
say    =
endif

ARCH      := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
VMLINUX   := $(BUILD)/include/vmlinux.h

PKGS      := libbpf libelf zlib openssl libnl-3.0 libnl-route-3.0 libnghttp2 libprotobuf-c libpcre2-8 yaml-0.1
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN      := -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers -Wno-unused-parameter \
	     -Wno-format-truncation
CFLAGS_COMMON = -std=gnu11 -g $(WARN) -D_GNU_SOURCE -I. -I$(BUILD)/include -I$(BUILD)/gen $(PKG_CFLAGS) \
		$(EXTRA_CFLAGS)
CFLAGS_REL   = $(CFLAGS_COMMON) $(OPT) -fno-omit-frame-pointer
CFLAGS_SAN   = $(CFLAGS_COMMON) -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
		-fno-sanitize-recover=undefined
LDLIBS       = $(PKG_LIBS) -lpthread -lanl -lm

# ---- sources --------------------------------------------------------------------------------
MODULES      := lib iptables proxy agent
BPF_SRCS     := $(wildcard bpf/*.bpf.c)
BPF_OBJS     := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS        := $(patsubst bpf/%.bpf.c,$(BUILD)/include/%.skel.h,$(BPF_SRCS))
BPF_HDRS     := $(wildcard bpf/lib/*.h)

# Generated C (protobuf-c output and the like) is added to GEN_SRCS by mk/*.mk and
# compiled into the agent library.
GEN_SRCS     :=
GEN_HDRS     :=
.DEFAULT_GOAL := all
-include $(sort $(wildcard mk/*.mk))

mod_srcs      = $(wildcard $(1)/*.c)
ALL_LIB_SRCS := $(foreach m,$(MODULES),$(call mod_srcs,$(m))) $(GEN_SRCS)

# Variant object trees: rel (release binaries) and san (ASan+UBSan, unit tests).
objs_of  = $(patsubst %.c,$(BUILD)/$(1)/obj/%.o,$(2))
lib_of   = $(BUILD)/$(1)/lib/libshunt-$(notdir $(2)).a

UNIT_SRCS  := $(shell find tests/unit -name '*_test.c' 2>/dev/null | sort)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/rel/tests/unit/%,$(UNIT_SRCS))
UNIT_SAN   := $(patsubst tests/unit/%.c,$(BUILD)/san/tests/unit/%,$(UNIT_SRCS))
BPFT_SRCS  := $(wildcard tests/bpf/*_test.c)
BPFT_BINS  := $(patsubst tests/bpf/%.c,$(BUILD)/rel/tests/bpf/%,$(BPFT_SRCS))
TOOL_SRCS  := $(wildcard tests/bin/*.c)
TOOL_BINS  := $(patsubst tests/bin/%.c,$(BUILD)/bin/%,$(TOOL_SRCS))
FUZZ_SRCS  := $(wildcard tests/fuzz/*_fuzz.c)
FUZZ_BINS  := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))

BINS := $(BUILD)/bin/shuntd $(BUILD)/bin/shuntctl

.PHONY: all deps test unit unit-san test-bpf test-integration run fuzz fuzz-smoke lint format clean \
	skels tools
.DELETE_ON_ERROR:
.SECONDARY:

all: $(BINS) tools

tools: $(TOOL_BINS)

# ---- dependencies ---------------------------------------------------------------------------
deps:
	@tools/deps.sh

# ---- BPF ------------------------------------------------------------------------------------
$(VMLINUX):
	@mkdir -p $(dir $@)
	$(call say,GEN,$@)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) $(VMLINUX)
	@mkdir -p $(dir $@)
	$(call say,BPF,$<)$(CLANG) -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror -I$(BUILD)/include -Ibpf \
		-c $< -o $@.tmp && $(BPFTOOL) gen object $@ $@.tmp && rm -f $@.tmp

$(BUILD)/include/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(call say,SKEL,$@)$(BPFTOOL) gen skeleton $< name shunt_$(subst -,_,$*) > $@.tmp && mv $@.tmp $@

skels: $(SKELS)

# ---- C: objects, libraries, binaries ---------------------------------------------------------
# Objects wait for generated headers (skeletons, protobuf-c) as order-only prerequisites and
# track their real header dependencies through -MMD.
define variant
$(BUILD)/$(1)/obj/%.o: %.c | $(SKELS) gen-prereqs
	@mkdir -p $$(dir $$@)
	$$(call say,CC-$(1),$$<)$$(CC) $$(CFLAGS_$(2)) -MMD -MP -c $$< -o $$@

LIBS_$(2) := $(foreach m,agent proxy iptables lib gen,$(call lib_of,$(1),$(m)))

$(BUILD)/$(1)/tests/%: tests/%.c $$(LIBS_$(2)) | $(SKELS) gen-prereqs
	@mkdir -p $$(dir $$@)
	$$(call say,LD-$(1),$$@)$$(CC) $$(CFLAGS_$(2)) -MMD -MP -o $$@ $$< $$(LIBS_$(2)) $$(LDLIBS)
endef

define lib_rule
$(call lib_of,$(1),$(2)): $(call objs_of,$(1),$(3))
	@mkdir -p $$(dir $$@)
	$$(call say,AR,$$@)rm -f $$@ && ar rcs $$@ $$^
endef

$(eval $(call variant,rel,REL))
$(eval $(call variant,san,SAN))
$(foreach v,rel san,$(foreach m,$(MODULES),$(eval $(call lib_rule,$(v),$(m),$(call mod_srcs,$(m))))))
$(foreach v,rel san,$(eval $(call lib_rule,$(v),gen,$(GEN_SRCS))))

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

.PHONY: gen-prereqs
gen-prereqs: $(GEN_HDRS) $(VMLINUX)

$(BUILD)/bin/%: tools/%.c $(LIBS_REL) | $(SKELS) gen-prereqs
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(CFLAGS_REL) -MMD -MP -o $@ $< $(LIBS_REL) $(LDLIBS)

$(BUILD)/bin/%: tests/bin/%.c $(LIBS_REL) | $(SKELS) gen-prereqs
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(CFLAGS_REL) -MMD -MP -o $@ $< $(LIBS_REL) $(LDLIBS)

# ---- fuzzing (libFuzzer, clang) --------------------------------------------------------------
# The fuzz variant is the library code built by clang with coverage instrumentation; each
# tests/fuzz/<name>_fuzz.c defines LLVMFuzzerTestOneInput and has a seed corpus in
# tests/fuzz/corpus/<name>/.
CFLAGS_FUZZ = $(CFLAGS_COMMON) -Wno-unknown-warning-option -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
		-DSHUNT_FUZZ
$(BUILD)/fuzz/obj/%.o: %.c | $(SKELS) gen-prereqs
	@mkdir -p $(dir $@)
	$(call say,CC-fuzz,$<)$(CLANG) $(CFLAGS_FUZZ) -MMD -MP -c $< -o $@
$(foreach m,$(MODULES),$(eval $(call lib_rule,fuzz,$(m),$(call mod_srcs,$(m)))))
$(eval $(call lib_rule,fuzz,gen,$(GEN_SRCS)))
LIBS_FUZZ := $(foreach m,agent proxy iptables lib gen,$(call lib_of,fuzz,$(m)))
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIBS_FUZZ) | $(SKELS) gen-prereqs
	@mkdir -p $(dir $@)
	$(call say,LD-fuzz,$@)$(CLANG) $(subst fuzzer-no-link,fuzzer,$(CFLAGS_FUZZ)) -o $@ $< $(LIBS_FUZZ) $(LDLIBS)

FUZZ_SECONDS ?= 60
fuzz: $(FUZZ_BINS)
	@tools/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

fuzz-smoke: $(FUZZ_BINS)
	@tools/fuzz.sh 0 $(FUZZ_BINS)

# ---- tests ----------------------------------------------------------------------------------
unit: $(UNIT_BINS)
	@$(PROVE) -f -e '' $(UNIT_BINS) </dev/null

unit-san: $(UNIT_SAN)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		$(PROVE) -f -e '' $(UNIT_SAN) </dev/null

test-bpf: $(BPFT_BINS) $(BINS) $(TOOL_BINS)
	@$(PROVE) -f -e '' $(BPFT_BINS) </dev/null

test-integration: $(BINS) $(TOOL_BINS)
	@$(PROVE) -f tests/integration/*.t </dev/null

# Order: fast and pure first, then the kernel, then whole-system tests.
test: all lint unit unit-san test-bpf fuzz-smoke test-integration bench-smoke

# ---- demo and benchmark ---------------------------------------------------------------------
run: all
	@tools/demo.sh

# ---- hygiene --------------------------------------------------------------------------------
LINT_C := $(shell git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null)
LINT_SH := $(shell git ls-files --cached --others --exclude-standard '*.sh' '*.t' .ci/run 2>/dev/null)
lint:
	$(call say,LINT,clang-format)clang-format --dry-run --Werror $(LINT_C)
	$(call say,LINT,cppcheck)cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
		--suppress=missingIncludeSystem -D__x86_64__ -Ilib -I. --include=tools/cppcheck.h $(filter-out bpf/%,$(filter %.c,$(LINT_C)))
	$(call say,LINT,shellcheck)shellcheck -x -S warning $(LINT_SH)

format:
	clang-format -i $(LINT_C)

clean:
	rm -rf $(BUILD)
