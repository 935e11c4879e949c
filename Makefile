# apemu: `make run` and `make test` are the two entry points (see README).
BUILD ?= build
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc)

.PHONY: all deps configure build sysroot run test bench clean

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
	./$(BUILD)/bench/boot_probe
	./bench/boot_bench.sh
	./$(BUILD)/bench/vfio_ap_bench
	./bench/mdevctl_cycle.sh $(BUILD) 100

clean:
	rm -rf $(BUILD)
