#!/bin/sh
# /init of the embedded default guest. It loads the virtio modules, runs the
# scenario named on the kernel command line (microhv.scenario=NAME, arguments
# in microhv.args=A,B,...) and powers off. Every line it prints starts with
# "microhv-guest:" so that tests can pick them out of the console.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp /dev/pts && mount -t tmpfs tmpfs /tmp
say() { echo "microhv-guest: $*"; }
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
  reboot)
    say "cpus online $(cat /sys/devices/system/cpu/online)"
    say "rebooting"; reboot -f ;;
  *)
    say "unknown scenario $scenario"; rc=2 ;;
esac
say "scenario $scenario done rc=$rc"
sync
poweroff -f
while :; do sleep 1; done
