# idl/: generated-code drift check, AssemblyScript compile check, fuzzing, ring benchmark.
# Everything here builds with idl/tsconfig.build.json into .cache/idl-dist, so it
# does not depend on the rest of the tree compiling.

IDL_DIST := $(CACHE)/idl-dist
IDL_ASC := $(CACHE)/idl-asc

.PHONY: idl-build idl-gen idl-check idl-fuzz-short idl-fuzz bench-ring

idl-build: setup
	npx tsc -p idl/tsconfig.build.json

# Regenerates idl/generated and idl/assembly/generated from idl/proto.
idl-gen: idl-build
	$(NODE) $(IDL_DIST)/idl/codegen/cli.js

# Fails when a .proto changed without regenerating, and when the
# AssemblyScript accessors or ring stop compiling.
idl-check: idl-build
	$(NODE) $(IDL_DIST)/idl/codegen/cli.js --check
	@mkdir -p $(IDL_ASC)
	npx asc idl/assembly/harness.ts --enable threads --runtime stub -O3 -o $(IDL_ASC)/harness.wasm
	@echo "idl: AssemblyScript accessors and ring compile"

idl-fuzz-short: idl-build
	$(NODE) $(IDL_DIST)/idl/fuzz/run.js --seconds 5

idl-fuzz: idl-build
	$(NODE) $(IDL_DIST)/idl/fuzz/run.js --seconds $${IDL_FUZZ_SECONDS:-300}

bench-ring: idl-build
	$(NODE) $(IDL_DIST)/bench/ring/bench.js

CHECK_TARGETS += idl-check
FUZZ_SHORT_TARGETS += idl-fuzz-short
FUZZ_TARGETS += idl-fuzz
BENCH_TARGETS += bench-ring
