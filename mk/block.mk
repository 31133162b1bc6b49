# driver-domains/block: the virtio-blk block domain (TypeScript) and the shared virtio layer in
# driver-domains/virtio. Its unit tests run with the others (`make unit`); this fragment adds the
# fuzz target for the guest-input path (driver-domains/block/fuzz.ts: the chain decoder and
# request parser, and a whole domain with a restarted successor), compiled by `make build`.

BLOCK_FUZZ_SHORT_SECONDS ?= 5
BLOCK_FUZZ_SECONDS ?= 300

.PHONY: block-fuzz-short block-fuzz

block-fuzz-short: build
	$(NODE) dist/driver-domains/block/fuzz.js --seconds $(BLOCK_FUZZ_SHORT_SECONDS)

block-fuzz: build
	$(NODE) dist/driver-domains/block/fuzz.js --seconds $(BLOCK_FUZZ_SECONDS)

FUZZ_SHORT_TARGETS += block-fuzz-short
FUZZ_TARGETS += block-fuzz
