# kvmini build. `make` builds build/kvmini; `make test` builds and runs everything
# the CI runs (see scripts/test.sh for the layers).
CC      ?= gcc
CLANG   ?= clang
PKGS    := slirp jansson zlib liblzma libzstd liblz4 lzo2 nettle libseccomp
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wvla -Wformat=2 -Wno-unused-parameter
CFLAGS_COMMON := -std=gnu11 -g $(WARN) -D_GNU_SOURCE -Isrc $(PKG_CFLAGS)
CFLAGS  ?= -O2
LDLIBS  := $(PKG_LIBS) -lbz2 -lhttp_parser -lpthread

SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
# Test-only hooks (e.g. KVMINI_TEST_SECCOMP_PROBE): the sanitizer build only.
TEST_HOOKS := -DKVMINI_TEST_HOOKS

LIB_SRCS  := $(shell find src -name '*.c' ! -path 'src/cli/*' | sort)
CLI_SRCS  := $(shell find src/cli -name '*.c' | sort)
UNIT_SRCS := $(wildcard tests/unit/*.c)
SUPPORT_SRCS := $(wildcard tests/support/*.c)
FUZZ_SRCS := $(wildcard tests/fuzz/*.c)
KVM_TEST_SRCS := $(wildcard tests/kvm/*.c)
BENCH_SRCS := $(wildcard bench/*.c)
HDRS      := $(shell find src tests/support -name '*.h')

# Release objects
OBJ       := $(LIB_SRCS:%.c=build/obj/%.o)
CLI_OBJ   := $(CLI_SRCS:%.c=build/obj/%.o)
# Sanitizer objects (tests run against these)
SAN_OBJ   := $(LIB_SRCS:%.c=build/san/%.o)
SAN_SUPPORT := $(SUPPORT_SRCS:%.c=build/san/%.o)
SAN_CLI_OBJ := $(CLI_SRCS:%.c=build/san/%.o)

UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
KVM_TEST_BINS := $(KVM_TEST_SRCS:tests/kvm/%.c=build/kvm-tests/%)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=build/bench/%)

.PHONY: all test unit kvm-tests fuse-tests fuzz bench clean lint print-cflags
all: build/kvmini build/firecracker build/jailer

# kvmini under Firecracker's name takes Firecracker's command line
# (src/cli/firecracker.c), under the jailer's its jailer's (src/cli/jail.c);
# the sanitizer build's are build/san/firecracker and build/san/jailer.
build/firecracker build/jailer: build/kvmini
	$(Q)ln -sfn kvmini $@

build/san/firecracker: build/kvmini-san
	@mkdir -p $(dir $@)
	$(Q)ln -sfn ../kvmini-san $@

# V=1 shows the full command lines.
ifeq ($(V),1)
Q :=
else
Q := @
endif

build/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_COMMON) $(CFLAGS) -c $< -o $@

build/san/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC-SAN  $<")
	$(Q)$(CC) $(CFLAGS_COMMON) -O1 $(SAN) $(TEST_HOOKS) -Itests/support -c $< -o $@

build/libkvmini.a: $(OBJ)
	@rm -f $@; ar rcs $@ $^

build/libkvmini-san.a: $(SAN_OBJ) $(SAN_SUPPORT)
	@rm -f $@; ar rcs $@ $^

build/kvmini: $(CLI_OBJ) build/libkvmini.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS_COMMON) $(CFLAGS) -o $@ $^ $(LDLIBS)

# The same program under ASan/UBSan: the UML integration tests run this one.
build/kvmini-san: $(SAN_CLI_OBJ) build/libkvmini-san.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS_COMMON) -O1 $(SAN) -o $@ $^ $(LDLIBS)
	$(Q)mkdir -p build/san && ln -sfn ../kvmini-san build/san/firecracker && \
		ln -sfn ../kvmini-san build/san/jailer

build/tests/%: tests/unit/%.c build/libkvmini-san.a $(HDRS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(CFLAGS_COMMON) -O1 $(SAN) -Itests/support -o $@ $< build/libkvmini-san.a \
		$(LDFLAGS_$(notdir $@)) $(LDLIBS)

# The POSIX suite the FUSE layer runs on a host directory and on a
# fuse-mount (tests/fuse/test_posix.sh): a plain program, no kvmini code.
build/fuse-tests/posix_suite: tests/fuse/posix_suite.c tests/fuse/posix_cases.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) -std=gnu11 -O2 $(WARN) -o $@ $<

fuse-tests: build/fuse-tests/posix_suite

# Programs the KVM suite runs (tests/kvm/test_*.sh): they need /dev/kvm.
build/kvm-tests/%: tests/kvm/%.c build/libkvmini-san.a $(HDRS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(CFLAGS_COMMON) -O1 $(SAN) -Itests/support -o $@ $< build/libkvmini-san.a $(LDLIBS)

# A seam no caller offers: test_virtio_fs answers through its own wrapper of
# the FUSE server, which can overstate a reply's length (the device's guard).
LDFLAGS_test_virtio_fs := -Wl,--wrap=fuse_server_handle

# libFuzzer targets: clang, ASan + UBSan, the library sources compiled in.
build/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) $(SUPPORT_SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(CLANG) -std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -Itests/support $(PKG_CFLAGS) \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -o $@ $< $(LIB_SRCS) $(SUPPORT_SRCS) $(LDLIBS)

build/bench/%: bench/%.c build/libkvmini.a $(SUPPORT_SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  BENCH   $@")
	$(Q)$(CC) $(CFLAGS_COMMON) -O2 -Itests/support -o $@ $< $(SUPPORT_SRCS) build/libkvmini.a $(LDLIBS)

unit: $(UNIT_BINS)
kvm-tests: $(KVM_TEST_BINS)
fuzz: $(FUZZ_BINS)
bench: $(BENCH_BINS) build/kvmini

# Static checks (clang-tidy, cppcheck, the layer check): see scripts/lint.sh.
# The release objects come first so the layer check sees symbol edges too.
lint: $(OBJ) $(CLI_OBJ)
	scripts/lint.sh

# The flags every src/ file compiles with; scripts/lint.sh hands them to clang-tidy.
print-cflags:
	@echo $(CFLAGS_COMMON)

# Everything CI runs (installs packages first): see scripts/test.sh.
test:
	scripts/test.sh

clean:
	rm -rf build
