# microhv build, test and run entry points. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NODE ?= node
CACHE := .cache
APT_PACKAGES := qemu-system-x86 qemu-utils busybox-static cpio e2fsprogs acpica-tools \
                xenstore-utils fio iperf3 socat gcc libc6-dev

# Components add their own targets in mk/<component>.mk and register them here:
#   BENCH_TARGETS       run by `make bench`
#   FUZZ_TARGETS        long fuzz runs, run by `make fuzz`
#   FUZZ_SHORT_TARGETS  short fuzz runs, part of `make test`
#   CHECK_TARGETS       other checks that are part of `make test` (e.g. generated-code drift)
BENCH_TARGETS :=
FUZZ_TARGETS :=
FUZZ_SHORT_TARGETS :=
CHECK_TARGETS :=
-include $(sort $(wildcard mk/*.mk))

.PHONY: help setup build typecheck lint unit hosttest test images hostvm demo bench fuzz loc probe clean

help:
	@echo "make setup      install apt packages and node_modules (idempotent)"
	@echo "make test       typecheck, lint, unit tests, then test-host tests"
	@echo "make demo       boot the embedded default guest and show its console"
	@echo "make images     build the test-host and guest images (cached under $(CACHE)/)"
	@echo "make hostvm CMD='...'  run one command inside the test host"
	@echo "make probe      say whether this machine can run a guest on /dev/kvm directly"
	@echo "make bench      benchmarks, as ratios against their peers"
	@echo "make fuzz       long fuzz runs of every decoder"
	@echo "make loc        line count of the microhv core (budget 5,000)"

# Installs only what is missing; `apt-get update` runs only when a package is.
setup: $(CACHE)/npm.stamp
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(CACHE)/npm.stamp: package.json package-lock.json
	@mkdir -p $(CACHE)
	npm ci --no-audit --no-fund
	@touch $@

# Compiles the whole tree into dist/; tsc type-checks as it emits, and fails on any type error.
# Entry points started as processes or threads; each is also bundled into one file beside it
# (dist/X.bundle.mjs), which microhv starts instead (microhv/worker-path.ts): loading one file
# instead of some fifty modules makes a process start several times faster on an emulated CPU.
BUNDLES := microhv/run microhv/vm/vcpu-worker driver-domains/runtime/main driver-domains/block/main

build: setup
	rm -rf dist
	npx tsc -p tsconfig.json
	npx esbuild $(BUNDLES:%=dist/%.js) --bundle --platform=node --format=esm --target=node20 --external:koffi \
	  --outbase=dist --outdir=dist --out-extension:.js=.bundle.mjs --log-level=warning

typecheck: setup
	npx tsc -p tsconfig.json --noEmit

lint: setup
	npx eslint .

# Unit tests may start compiled worker threads, so they run after the build.
unit: build
	npx vitest run

# The test-host image carries dist/ and the stub-domain modules in build/.
images: build driver-domains-wasm
	$(NODE) dist/images/cli.js build

hostvm: images
	$(NODE) dist/testhost/cli.js run -- "$(CMD)"

probe: build
	$(NODE) dist/microhv/kvm/probe-cli.js

hosttest: images
	npx vitest run --config vitest.host.config.ts

# Order matters: build (type check included), lint, component checks, unit tests, short fuzz runs,
# then the test-host tests. Make runs these one after another (no -j).
test: build lint $(CHECK_TARGETS) unit $(FUZZ_SHORT_TARGETS) hosttest

demo: images
	$(NODE) dist/testhost/cli.js demo

loc:
	@find microhv -name '*.ts' ! -name '*.test.ts' ! -name 'testing.ts' ! -path '*/gen/*' -print0 \
	  | xargs -0 cat | grep -cvE '^\s*($$|//|\*|/\*)' | awk '{ printf "microhv core: %d of 5000 lines\n", $$1; if ($$1 > 5000) exit 1 }'

bench: build $(BENCH_TARGETS)

fuzz: build $(FUZZ_TARGETS)

clean:
	rm -rf dist $(CACHE)
