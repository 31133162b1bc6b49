#!/bin/sh
# Test host, stage 2 (on the read-only project image): run the one command
# handed in through fw_cfg, with its output on the virtio console, then report
# its exit status and power off. The runner on the build machine parses the
# two @@ marker lines; everything between them is the command's output.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/tmp
for d in /tmp /run /var/tmp /var/log; do mount -t tmpfs -o mode=1777 tmpfs "$d"; done
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
ip link set lo up 2>/dev/null
# Guest RAM is memfd (shmem); let it use huge pages where the process asks for them (madvise).
echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled 2>/dev/null
# ...allocated when a page is first touched, never collapsed later: under the emulated SVM CPU, khugepaged
# collapsing guest RAM that KVM and a backend domain (which maps the same memfd) both map was seen to
# lock up a test-host CPU for minutes (soft lockups in khugepaged and in a vCPU thread).
echo 86400000 > /sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs 2>/dev/null
echo 86400000 > /sys/kernel/mm/transparent_hugepage/khugepaged/alloc_sleep_millisecs 2>/dev/null
hostname testhost
port=/dev/hvc0
stty -F "$port" raw -echo 2>/dev/null
cmdfile=/sys/firmware/qemu_fw_cfg/by_name/opt/microhv/cmd/raw
if [ ! -r "$cmdfile" ]; then
  echo "testhost: no command in fw_cfg" > "$port"; echo "@@microhv-testhost-exit=125@@" > "$port"; poweroff -f
fi
cp "$cmdfile" /run/cmd
echo "@@microhv-testhost-ready@@" > "$port"
# The runner's optional scratch disk (RunOptions.scratchMiB): ext4 on the second virtio disk, /dev/vda
# being the project image. Unlike the tmpfs folders it takes O_DIRECT.
if [ -b /dev/vdb ] && ! mount -t ext4 -o noatime /dev/vdb /scratch; then
  echo "testhost: cannot mount the scratch disk /dev/vdb" > "$port"
fi
# The runner's liveness signal (testhost.ts, FROZEN): a line on the second serial port every 5 s with
# the kernel's uptime and load and the tasks that are running or in uninterruptible sleep (with where
# they sleep), so that a machine that stops beating has frozen, and a command that hangs in a live one
# says where.
beat() {
  # This loop's own shell, to leave it and what it runs (a subshell, cat, awk) out of the list.
  read -r me _ < /proc/self/stat
  while :; do
    # cat, not awk, opens the files: busybox awk stops at the first that is gone by then.
    tasks=$(cat /proc/[0-9]*/stat 2>/dev/null | awk -v me="$me" '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); c = $0; sub(/^[0-9]+ \(/, "", c); sub(/\) [A-Z] .*/, "", c)
      if ($1 == me || f[2] == me || c == "awk" || c == "cat") next
      if (f[1] == "D" || (f[1] == "R" && f[2] != 2 && $1 != 2)) {
        printf "%s %s(%s)", f[1], $1, c
        if (f[1] == "D") { w = ""; getline w < ("/proc/" $1 "/wchan"); close("/proc/" $1 "/wchan"); printf "@%s", w }
        printf " "
      } }')
    echo "beat $(cut -d' ' -f1 /proc/uptime) load $(cut -d' ' -f1,4 /proc/loadavg) $tasks"
    sleep 5
  done
}
if [ -c /dev/ttyS1 ]; then beat > /dev/ttyS1 2>/dev/null & echo $! > /run/heartbeat.pid; fi
cd /opt/microhv
sh /run/cmd < /dev/null > "$port" 2>&1
rc=$?
echo "@@microhv-testhost-exit=$rc@@" > "$port"
sync
poweroff -f
