# bench/boot: the embedded guest's boot, start to its /init, under microhv against QEMU/KVM,
# both inside one test host run (bench/boot/README.md). Needs the images (dist/ and the stub
# modules in build/ are inside the test-host image).
#   BOOT_BENCH_N (default 2) boots of each.

.PHONY: bench-boot

bench-boot: images
	$(NODE) dist/bench/boot/run.js

BENCH_TARGETS += bench-boot
