# apemu: `make run` and `make test` are the two entry points (see README).
BUILD ?= build
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all deps configure build sysroot run test bench install package-test clean

all: build

deps:
	@./scripts/install-deps.sh

configure: deps
	@[ -f $(BUILD)/build.ninja ] || cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# Debian 12's s390x s390-tools for the conformance tests (once; a stamp makes it a no-op).
sysroot: deps
	@./scripts/s390x-sysroot.sh $(BUILD)/s390x-sysroot

run: build
	APEMU=$(CURDIR)/$(BUILD)/apemu ./$(BUILD)/apemu run -- sh ./scripts/demo.sh

test: build sysroot
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	./$(BUILD)/bench/core_bench
	./$(BUILD)/bench/fuse_bench
	./bench/read_bench.sh
	./$(BUILD)/bench/boot_probe
	./bench/boot_bench.sh
	./$(BUILD)/bench/vfio_ap_bench
	./bench/mdevctl_cycle.sh $(BUILD) 100

# Installs the binary, the preset topologies and the man page below $(DESTDIR)$(PREFIX). The
# prefix is compiled in (the installed binary finds its presets there), so a different PREFIX
# re-configures and rebuilds the binary.
install: configure
	@grep -qx 'CMAKE_INSTALL_PREFIX:PATH=$(abspath $(PREFIX))' $(BUILD)/CMakeCache.txt || \
	  cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(abspath $(PREFIX)) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target apemu
	DESTDIR=$(if $(DESTDIR),$(abspath $(DESTDIR))) cmake --install $(BUILD)

# Builds the Debian package, installs it, runs a smoke test and purges it (scripts/package-test.sh).
package-test: deps
	@./scripts/install-package-deps.sh
	./scripts/package-test.sh $(BUILD) $(JOBS)

clean:
	rm -rf $(BUILD)
