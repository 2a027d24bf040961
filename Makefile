# iapo build. Sources are found by wildcard, so adding a file needs no edit here.
#   make            library, CLI (build/iapo) and tests
#   make test       build and run the whole test suite (oracles included), optimised
#                   and again under AddressSanitizer + UBSan + LeakSanitizer
#   make asan       only the sanitizer half (build-asan/)
#   make demo       install missing Debian packages, build, run the embedded default (iapo demo)
#   make bench      benchmarks (bench/), JSON lines on stdout
# Options: MPI=0|1 (default: autodetect, see below), ARCH=-march=... (default native)

CC      ?= cc
ARCH    ?= -march=native
# MODE=portable (make test builds it): AVX2+FMA without AVX-512, what most
# laptops have, so the fallbacks behind compile-time AVX-512 choices (cpu.c,
# kvcache.c, sample.c) build and pass too, whatever CPU runs the suite.
ifeq ($(MODE),portable)
  override ARCH := -march=x86-64-v3
endif
PKGS    := libcjson libpcre2-8 libutf8proc openblas
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# -Wno-psabi: without AVX-512 in ARCH, GCC warns that passing cpu.c's static
# 64-byte vector helpers by value changes the ABI, which no call here crosses;
# under -Werror that stopped every build on CPUs without AVX-512. A pragma
# cannot hold it: GCC emits the warning after the file is parsed.
WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-psabi
# -fno-math-errno: sqrtf and friends need not set errno (nothing reads it), so
# loops over them vectorise (AdamW's update was scalar: ~5x slower).
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE $(WARN) -fno-math-errno -fopenmp $(ARCH) -Iinclude -Isrc $(PKG_CFLAGS)
LDLIBS  := $(PKG_LIBS) -fopenmp -lm -lpthread

# MPI data parallelism (src/dist/): OpenMPI when `mpicc --showme` or pkg-config
# ompi-c knows it (dist_mpi.c), else the single-process stand-in (dist_single.c);
# MPI=0 forces the stand-in, MPI=1 fails without MPI. Exactly one is compiled.
MPI ?= auto
ifneq ($(MPI),0)
  MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null || pkg-config --libs ompi-c 2>/dev/null)
  MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null || pkg-config --cflags ompi-c 2>/dev/null)
endif
ifneq ($(strip $(MPI_LIBS)),)
  CFLAGS_BASE += -DIAPO_MPI=1 $(MPI_CFLAGS)
  LDLIBS      += $(MPI_LIBS)
  DIST_UNUSED := src/dist/dist_single.c
else ifeq ($(MPI),1)
  $(error MPI=1: neither mpicc nor pkg-config ompi-c found (scripts/install-deps.sh installs OpenMPI))
else
  DIST_UNUSED := src/dist/dist_mpi.c
endif

MODE   ?= release
ifeq ($(MODE),asan)
  BUILD  := build-asan
  CFLAGS := $(CFLAGS_BASE) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDFLAGS := -fsanitize=address,undefined
else ifeq ($(MODE),portable)
  BUILD  := build-portable
  CFLAGS := $(CFLAGS_BASE) -O2 -g
  LDFLAGS :=
else
  BUILD  := build
  CFLAGS := $(CFLAGS_BASE) -O3 -g
  LDFLAGS :=
endif

LIB_SRC  := $(filter-out $(DIST_UNUSED),$(sort $(wildcard src/*/*.c)))
TOOL_SRC := $(sort $(wildcard tools/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCHES  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
LIB      := $(BUILD)/libiapo.a
BIN      := $(BUILD)/iapo
# Programs of by-hand oracle checks (tests/oracle/hf_prepare.sh runs
# hf_probe): built with everything else, so they cannot rot unseen.
ORACLE_SRC  := $(sort $(wildcard tests/oracle/*.c))
ORACLES  := $(ORACLE_SRC:tests/oracle/%.c=$(BUILD)/oracle/%)

.PHONY: all test asan test-asan portable demo bench clean deps
all: $(LIB) $(BIN) $(TESTS) $(BENCHES) $(ORACLES)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The stamp names the MPI choice, so switching it rebuilds the archive.
DIST_STAMP := $(BUILD)/.dist-without-$(basename $(notdir $(DIST_UNUSED)))
$(DIST_STAMP):
	@mkdir -p $(BUILD) && rm -f $(BUILD)/.dist-without-* && touch $@

$(LIB): $(LIB_OBJ) $(DIST_STAMP)
	@rm -f $@
	ar rcs $@ $(LIB_OBJ)

$(BIN): $(TOOL_OBJ) $(LIB)
	$(CC) $(LDFLAGS) $(TOOL_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

$(BUILD)/oracle/%: tests/oracle/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

deps:
	@scripts/install-deps.sh

# The suite runs twice: optimised, then under ASan+UBSan+LeakSanitizer; and
# the programs of the code with compile-time AVX-512 paths once more, built
# without AVX-512 (MODE=portable; tests/run.sh runs what is built there).
PORTABLE_TESTS := kernels attention sample decode decode_bf16 generate transformer transformer_oracle \
	train_algos info info_bf16 info_attend gemm_bf16
portable: $(PORTABLE_TESTS:%=$(BUILD)/tests/test_%)

# The three builds of `make test` (and the demo's) compile on every core
# unless the caller chose -j itself: serial, they took 4.5 of CI's ~16
# minutes on the 2-core machine. Expanded at recipe time, when MAKEFLAGS
# holds the caller's -j.
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
PAR = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(JOBS))

test:
	@$(MAKE) --no-print-directory $(PAR) all
	@$(MAKE) --no-print-directory $(PAR) MODE=asan all
	@$(MAKE) --no-print-directory $(PAR) MODE=portable portable
	@tests/run.sh build build-asan build-portable

asan:
	@$(MAKE) --no-print-directory $(PAR) MODE=asan all
	@tests/run.sh build-asan

# DEMO_ARGS: options of `iapo demo` (e.g. DEMO_ARGS="--seeds 3" or "--quick").
demo: deps
	@$(MAKE) --no-print-directory $(PAR) $(BIN)
	$(BIN) demo $(DEMO_ARGS)

bench: all
	@bench/run.sh $(BUILD)

clean:
	rm -rf build build-asan build-portable build-fuzz

-include $(shell find build build-asan build-portable -name '*.d' 2>/dev/null)

# Fuzzing (fuzz/README.md): libFuzzer targets fuzz/fuzz_*.c, built with clang
# into build-fuzz/ (library with -fsanitize=fuzzer-no-link + ASan/UBSan).
#   make fuzz-build                  build the targets
#   make fuzz [FUZZ_SECONDS=60]      run each for that long, fail on any report
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build-fuzz
FUZZ_CFLAGS  := $(CFLAGS_BASE) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined -fsanitize=fuzzer-no-link -Wno-pass-failed
FUZZ_SRC     := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_SRC:fuzz/%.c=$(FUZZ_BUILD)/%)
.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BINS)
$(FUZZ_BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@
# The numeric kernels parse nothing and clang takes minutes over ASan in
# gemm.c's intrinsics: plain -O1 (make asan checks them).
$(FUZZ_BUILD)/src/kernels/%.o: src/kernels/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CFLAGS_BASE) -O1 -g -Wno-pass-failed -MMD -MP -c $< -o $@
$(FUZZ_BUILD)/libiapo.a: $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
	@rm -f $@
	ar rcs $@ $^
$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_BUILD)/libiapo.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -fsanitize=fuzzer $< $(FUZZ_BUILD)/libiapo.a $(LDLIBS) -o $@
fuzz: fuzz-build
	@fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)
-include $(shell find build-fuzz -name '*.d' 2>/dev/null)
