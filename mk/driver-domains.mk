# driver-domains: the AssemblyScript stub domains (ioapic, console, pci), built to
# build/driver-domains/<kind>.wasm with the asc compiler API and binaryen -O3. The build
# also enforces the ABI's restart rules (driver-domains/runtime/ABI.md). It runs as a
# check inside `make test`, before the unit tests that load the modules; those tests also
# rebuild a missing or stale module themselves (driver-domains/runtime/testing.ts).
# driver-domains/tsconfig.build.json still compiles this component alone, for work on it.

DRIVER_DOMAINS_FUZZ_SHORT_SECONDS ?= 5
DRIVER_DOMAINS_FUZZ_SECONDS ?= 300

.PHONY: driver-domains-build driver-domains-wasm driver-domains-fuzz-short driver-domains-fuzz

# `make build` compiles the whole tree, these files included.
driver-domains-build: build

driver-domains-wasm: driver-domains-build
	$(NODE) dist/driver-domains/build.js

# Fuzz target: driver-domains/fuzz.ts (the guest-input path of every stub domain, with a
# restored twin that must not diverge).
driver-domains-fuzz-short: driver-domains-wasm
	$(NODE) dist/driver-domains/fuzz.js --seconds $(DRIVER_DOMAINS_FUZZ_SHORT_SECONDS)

driver-domains-fuzz: driver-domains-wasm
	$(NODE) dist/driver-domains/fuzz.js --seconds $(DRIVER_DOMAINS_FUZZ_SECONDS)

CHECK_TARGETS += driver-domains-wasm
FUZZ_SHORT_TARGETS += driver-domains-fuzz-short
FUZZ_TARGETS += driver-domains-fuzz
