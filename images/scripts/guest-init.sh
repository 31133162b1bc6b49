#!/bin/sh
# /init of the embedded default guest. It loads the virtio modules, runs the
# scenario named on the kernel command line (microhv.scenario=NAME, arguments
# in microhv.args=A,B,...) and powers off. Every line it prints starts with
# "microhv-guest:" so that tests can pick them out of the console. The disk
# scenarios (disk, fioverify, flushcheck, fiobench) use the first virtio disk,
# /dev/vda.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp /dev/pts && mount -t tmpfs tmpfs /tmp
say() { echo "microhv-guest: $*"; }

# The disk scenarios work on the first virtio disk, /dev/vda, through fio with libaio and O_DIRECT.
# fio's terse output (version 3) is one ;-separated line per job: field 5 is the error, 7 and 8 the
# read bandwidth (KiB/s) and IOPS, 48 and 49 the write bandwidth and IOPS.
FIO_TERSE="--output-format=terse --terse-version=3 --verify_state_save=0"
terse() { grep -m1 '^3;' "$1" | cut -d';' -f"$2"; }
# fio_err OUTPUT: the job's error number, or "none" when fio printed no result at all.
fio_err() { e=$(terse "$1" 5); echo "${e:-none}"; }
# Every I/O error, timeout or reset the guest kernel logged for the virtio disk.
klog_io() { dmesg | grep -E 'I/O error|timeout|reset|blk_update_request' | grep -E 'vda|virtio_blk'; }
say "init started (uptime $(cut -d" " -f1 /proc/uptime) s)"

while read -r m; do
  insmod "/lib/modules/$m" 2>/dev/null || say "insmod $m failed"
done < /etc/modules.order

scenario=hello
args=
for word in $(cat /proc/cmdline); do
  case "$word" in
    microhv.scenario=*) scenario=${word#microhv.scenario=} ;;
    microhv.args=*) args=$(echo "${word#microhv.args=}" | tr , ' ') ;;
  esac
done
say "scenario $scenario"

rc=0
# Set by a scenario that must power off without writing anything more (flushcheck).
nosync=
cd /tmp
case "$scenario" in
  hello)
    say "kernel $(uname -r)"
    say "cpus online $(cat /sys/devices/system/cpu/online) count $(grep -c ^processor /proc/cpuinfo)"
    say "virtio devices $(ls /sys/bus/virtio/devices 2>/dev/null | wc -l)"
    ;;
  count)
    # count N DELAY [irq|pci]: N numbered lines, DELAY seconds apart (busybox sleep takes fractions).
    # With irq, each line also carries the guest's interrupt counts: local APIC timer (loc) and the
    # UART (uart), summed over the CPUs. With pci, it carries config dwords 0x00 (IDs) and 0x08
    # (class, revision) of the host bridge, read afresh through the config ports for each line.
    set -- $args
    n=${1:-100}; delay=${2:-0}; extra=${3:-}; i=1
    bridge=/sys/bus/pci/devices/0000:00:00.0/config
    while [ "$i" -le "$n" ]; do
      if [ "$extra" = irq ]; then
        say "line $i $(awk '$1 == "LOC:" || $NF == "ttyS0" { s = 0; for (f = 2; f <= NF && $f ~ /^[0-9]+$/; f++) s += $f; printf "%s=%d ", ($1 == "LOC:" ? "loc" : "uart"), s }' /proc/interrupts)"
      elif [ "$extra" = pci ]; then
        say "line $i ids=$(od -An -tx4 -N4 "$bridge" | tr -d ' ') class=$(od -An -tx4 -j8 -N4 "$bridge" | tr -d ' ')"
      else
        say "line $i"
      fi
      [ "$delay" = 0 ] || sleep "$delay"; i=$((i + 1))
    done
    ;;
  kmsg)
    # kmsg N DELAY: numbered lines through the kernel log. The kernel's console writes them by polling
    # the UART, so they reach the console without any guest interrupt. Level 2 (critical): they are
    # printed even when the kernel boots with `quiet`.
    set -- $args
    n=${1:-100}; delay=${2:-0}; i=1
    while [ "$i" -le "$n" ]; do echo "<2>microhv-guest: line $i" > /dev/kmsg; [ "$delay" = 0 ] || sleep "$delay"; i=$((i + 1)); done
    ;;
  pci)
    # Every function on the PCI bus as the guest enumerated it: name, vendor and device IDs.
    for d in /sys/bus/pci/devices/*; do
      [ -e "$d" ] && say "pci $(basename "$d") $(cat "$d/vendor") $(cat "$d/device") class $(cat "$d/class")"
    done
    say "pci functions $(ls /sys/bus/pci/devices 2>/dev/null | wc -l)"
    ;;
  tools)
    fio --version >/dev/null && say "fio $(fio --version)" || rc=1
    iperf3 --version >/dev/null && say "$(iperf3 --version | head -1)" || rc=1
    ;;
  shell)
    say "interactive shell on the console; 'poweroff -f' ends the guest"
    setsid cttyhack sh
    ;;
  disk)
    # disk [write]: each virtio disk as the guest sees it, its size in 512-byte sectors, its read-only
    # flag and its request queues; with write, for the first one, also whether a 4 KiB O_DIRECT write to its first block goes through;
    # then its lines of /proc/interrupts.
    if [ -b /dev/vda ]; then
      for d in /sys/block/vd*; do
        say "disk ${d##*/} sectors=$(cat "$d/size") ro=$(cat "$d/ro") queues=$(ls "$d/mq" | wc -l)"
      done
      if [ "$args" = write ]; then
        if dd if=/dev/zero of=/dev/vda bs=4096 count=1 oflag=direct conv=notrunc,fsync 2>/tmp/dd.err; then say "disk write ok"
        else say "disk write failed: $(head -1 /tmp/dd.err)"; fi
      fi
      # How the disk's interrupts arrive: MSI-X vectors, or its INTx line through the IO-APIC.
      grep virtio /proc/interrupts | tr -s ' ' | while read -r line; do say "disk irq $line"; done
    else
      say "no disk"; rc=1
    fi
    ;;
  fioverify)
    # fioverify SECONDS QD: data integrity under load. Three fio runs on the first AREA MiB of /dev/vda,
    # every 4 KiB block carrying a crc32c-checked header (offset, length, checksum):
    #   fill   writes the area sequentially;
    #   mix    random 4 KiB reads and writes for SECONDS (time_based), each batch of 64 writes read
    #          back and checked while the run goes on (verify_backlog);
    #   check  reads the whole area and checks every block.
    # Each completion of mix is logged; a gap of more than 100 ms between two completions is a stall
    # (the blackout of a backend restart, as the guest saw it).
    set -- $args
    secs=${1:-20}; qd=${2:-16}
    if [ ! -b /dev/vda ]; then say "no disk"; rc=1
    else
      area=$(( $(cat /sys/block/vda/size) / 2048 )); [ "$area" -gt 64 ] && area=64
      common="--filename=/dev/vda --ioengine=libaio --direct=1 --iodepth=$qd --size=${area}M --verify=crc32c --verify_interval=4096 --verify_fatal=1 $FIO_TERSE"
      fio --name=fill --rw=write --bs=64k --do_verify=0 $common > /tmp/fio-fill.out 2>&1; fill=$?
      # serialize_overlap: fio never has two I/Os on the same block in flight, so what it checks does not
      # depend on the order in which the device carries them out, which virtio leaves open.
      fio --name=mix --rw=randrw --bs=4k --time_based --runtime="$secs" --verify_backlog=64 --serialize_overlap=1 \
        --write_lat_log=/tmp/mix --log_avg_msec=0 $common > /tmp/fio-mix.out 2>&1; mix=$?
      fio --name=check --rw=read --bs=64k $common > /tmp/fio-check.out 2>&1; check=$?
      errors=0; verify=ok
      for ph in fill mix check; do
        [ "$(fio_err /tmp/fio-$ph.out)" = 0 ] || errors=$((errors + 1))
        # EILSEQ (84) is how fio reports a block that failed its check.
        if [ "$(fio_err /tmp/fio-$ph.out)" = 84 ] || grep -q '^verify:' /tmp/fio-$ph.out; then verify=failed; fi
        grep -E '^(fio|verify):|error' /tmp/fio-$ph.out | head -5 | while read -r l; do say "fio $ph: $l"; done
      done
      [ "$check" = 0 ] && [ "$(fio_err /tmp/fio-check.out)" = 0 ] || verify=failed
      say "fio errors=$errors verify=$verify read_iops=$(terse /tmp/fio-mix.out 8) write_iops=$(terse /tmp/fio-mix.out 49) seconds=$secs qd=$qd area_mib=$area"
      say "fio exit fill=$fill mix=$mix check=$check"
      if [ -f /tmp/mix_clat.1.log ]; then
        # Lines are "time_ms, clat_ns, direction, size, offset"; time is the completion, from the job's start.
        sort -t, -k1,1n /tmp/mix_clat.1.log | awk -F', *' '
          { t = $1 + 0; if ($2 + 0 > max) max = $2 + 0
            if (NR > 1 && t - prev > 100) { printf "microhv-guest: stall at_ms=%d ms=%d\n", prev, t - prev; n++ }
            prev = t }
          END { printf "microhv-guest: fio completions=%d stalls=%d max_lat_ms=%.1f\n", NR, n, max / 1e6 }'
        rm -f /tmp/mix_*.log
      else
        say "fio: no latency log"
      fi
      say "klog io_errors=$(klog_io | wc -l)"
      klog_io | head -5 | while read -r l; do say "klog: $l"; done
      [ "$errors" = 0 ] && [ "$verify" = ok ] || rc=1
    fi
    ;;
  flushcheck)
    # flushcheck MIB: writes MIB MiB of random data at offset 0 of /dev/vda with O_DIRECT, then fsync on
    # the device (which sends the disk a FLUSH), prints the data's sha256 and powers off at once, with no
    # further write and no sync: what the host reads back from the image must be exactly this.
    set -- $args
    mib=${1:-16}; bytes=$((mib * 1048576))
    if [ ! -b /dev/vda ]; then say "no disk"; rc=1
    elif head -c "$bytes" /dev/urandom > /tmp/flush.bin && dd if=/tmp/flush.bin of=/dev/vda bs=1M oflag=direct conv=notrunc,fsync 2>/tmp/dd.err; then
      say "flushed sha256=$(sha256sum /tmp/flush.bin | cut -d' ' -f1) bytes=$bytes"
    else
      say "flush failed: $(head -1 /tmp/dd.err)"; rc=1
    fi
    nosync=1
    ;;
  fiobench)
    # fiobench SECONDS: three fio runs on /dev/vda with O_DIRECT and libaio, SECONDS each after 1 s of
    # warm-up: 4 KiB random reads at queue depth 32 (IOPS), then 1 MiB sequential reads and 1 MiB
    # sequential writes at queue depth 8 (MiB/s).
    set -- $args
    secs=${1:-10}
    bench() {
      name=$1; shift
      fio --name="$name" --filename=/dev/vda --ioengine=libaio --direct=1 --time_based --runtime="$secs" --ramp_time=1 $FIO_TERSE "$@" > "/tmp/bench-$name.out" 2>&1
      if [ "$(fio_err "/tmp/bench-$name.out")" != 0 ]; then say "bench $name failed: $(grep -v '^3;' "/tmp/bench-$name.out" | head -3 | tr '\n' ' ')"; rc=1; return 1; fi
    }
    if [ ! -b /dev/vda ]; then say "no disk"; rc=1
    else
      bench randread4k --rw=randread --bs=4k --iodepth=32 && say "bench randread4k iops=$(terse /tmp/bench-randread4k.out 8)"
      bench seqread1m --rw=read --bs=1M --iodepth=8 && say "bench seqread1m mbps=$(terse /tmp/bench-seqread1m.out 7 | awk '{ printf "%.1f", $1 / 1024 }')"
      bench seqwrite1m --rw=write --bs=1M --iodepth=8 && say "bench seqwrite1m mbps=$(terse /tmp/bench-seqwrite1m.out 48 | awk '{ printf "%.1f", $1 / 1024 }')"
      say "klog io_errors=$(klog_io | wc -l)"
    fi
    ;;
  reboot)
    say "cpus online $(cat /sys/devices/system/cpu/online)"
    say "rebooting"; reboot -f ;;
  *)
    say "unknown scenario $scenario"; rc=2 ;;
esac
say "scenario $scenario done rc=$rc"
[ -n "$nosync" ] || sync
poweroff -f
while :; do sleep 1; done
