#!/bin/sh
# Test host, stage 1 (initramfs): load KVM and the virtio drivers, mount the
# project image read-only and switch to it.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do
  insmod "/lib/modules/$m" || echo "testhost: insmod $m failed"
done < /etc/modules.order
mkdir -p /newroot
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if ! mount -t ext4 -o ro /dev/vda /newroot; then
  echo "testhost: cannot mount the project image /dev/vda"; poweroff -f
fi
mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
exec switch_root /newroot /sbin/testhost-init
