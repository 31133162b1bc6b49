# bench/block: the guest's fio figures (4 KiB random reads, 1 MiB sequential reads and writes, O_DIRECT)
# on one raw image under microhv's block domain against QEMU/KVM, both inside one test host run with a
# scratch disk (bench/block/README.md); then the blackouts the guest sees while the block domain is
# killed every 2 s. Needs the images (dist/ and the stub modules in build/ are inside the test-host image).
#   BLOCK_BENCH_N (default 2) runs of each, BLOCK_BENCH_SECONDS (8) per fio job,
#   BLOCK_BENCH_BLACKOUT_S (20; 0 skips the blackout run).

.PHONY: bench-block

bench-block: images
	$(NODE) dist/bench/block/run.js

BENCH_TARGETS += bench-block
