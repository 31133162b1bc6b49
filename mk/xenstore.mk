# xenstore-stubdom: build of this component alone, fuzzing and benchmark.
# tests/xenstore/tsconfig.build.json still compiles this component alone, for work on it.

XENSTORE_FUZZ_CORPUS := $(CACHE)/xenstore-fuzz
XENSTORE_FUZZ_SHORT_SECONDS ?= 15
XENSTORE_FUZZ_SECONDS ?= 600

.PHONY: xenstore-build xenstore-fuzz-short xenstore-fuzz xenstore-bench

# `make build` compiles the whole tree, these files included.
xenstore-build: build

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
