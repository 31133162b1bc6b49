# driver-domains: the AssemblyScript stub domains (ioapic, console), built to
# build/driver-domains/<kind>.wasm with the asc compiler API and binaryen -O3. The build
# also enforces the ABI's restart rules (driver-domains/runtime/ABI.md). It runs as a
# check inside `make test`, before the unit tests that load the modules; those tests also
# rebuild a missing or stale module themselves (driver-domains/runtime/testing.ts).

.PHONY: driver-domains-build driver-domains-wasm

driver-domains-build:
	npx tsc -p driver-domains/tsconfig.build.json

driver-domains-wasm: driver-domains-build
	$(NODE) dist/driver-domains/build.js

CHECK_TARGETS += driver-domains-wasm
