# xenstore-stubdom: build of this component alone, fuzzing and benchmark.
# The component builds with its own tsconfig so it does not depend on the state
# of the rest of the tree; `make build` produces the same files.

XENSTORE_FUZZ_CORPUS := $(CACHE)/xenstore-fuzz
XENSTORE_FUZZ_SHORT_SECONDS ?= 15
XENSTORE_FUZZ_SECONDS ?= 600

.PHONY: xenstore-build xenstore-fuzz-short xenstore-fuzz xenstore-bench

xenstore-build:
	npx tsc -p tests/xenstore/tsconfig.build.json

# Fuzz target: xenstore-stubdom/wire.fuzz.ts (frame decoder and request dispatch).
xenstore-fuzz-short: xenstore-build
	$(NODE) dist/tests/xenstore/fuzz-driver.js dist/xenstore-stubdom/wire.fuzz.js $(XENSTORE_FUZZ_CORPUS) $(XENSTORE_FUZZ_SHORT_SECONDS)

xenstore-fuzz: xenstore-build
	$(NODE) dist/tests/xenstore/fuzz-driver.js dist/xenstore-stubdom/wire.fuzz.js $(XENSTORE_FUZZ_CORPUS) $(XENSTORE_FUZZ_SECONDS)

# Read / write / watch-fire throughput and p99 against a C echo server (bench/xenstore/).
xenstore-bench: xenstore-build
	$(NODE) dist/bench/xenstore/run.js

FUZZ_SHORT_TARGETS += xenstore-fuzz-short
FUZZ_TARGETS += xenstore-fuzz
BENCH_TARGETS += xenstore-bench
