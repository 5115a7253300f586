#!/usr/bin/env bash
# image.sh CACHEDIR: builds the VM suite's guest, a Debian 13 (trixie)
# system with systemd, containerd 1.7 and, kept aside for the second round,
# Debian unstable's containerd 2.x; prints the directory that holds its
# kernel (vmlinuz), a small initramfs (initrd.img) and its root file system
# (root.img, ext4, made with mkfs.ext4 -d: no loop mount). The directory is
# named by a hash of this script and of the files under guest/ baked into
# the image, so an unchanged recipe is built once. runtimed's package, the
# images and the suite itself are not in it: they come in at boot through
# 9p (tests/vm/vm_test.go).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

here=$(cd "$(dirname "$0")" && pwd)
cache=${1:-/var/cache/runtimed-build/vm}
mirror=${RUNTIMED_MIRROR:-http://deb.debian.org/debian}
suite=trixie
# What the guest needs: a kernel, systemd as PID 1 (with dbus for
# systemctl), containerd (runc comes with it; runtimed's package brings
# runsc), jq and curl for the suite's checks.
packages=linux-image-amd64,systemd,systemd-sysv,dbus,containerd,jq,curl,kmod,procps,psmisc,iproute2
# Loaded by the initramfs, with what they depend on.
modules=(virtio_pci virtio_blk ext4 9pnet_virtio 9p)
size=6G

key=$( { cat "$0"; echo "$mirror $suite $packages ${modules[*]} $size"; \
  (cd "$here/guest" && find . -type f -print0 | sort -z | xargs -0 sha256sum); } | sha256sum | cut -c1-16)
out="$cache/$key"
if [ -e "$out/done" ]; then
  echo "$out"
  exit 0
fi
say() { printf 'vm image: %s\n' "$*" >&2; }
mkdir -p "$cache"
work=$(mktemp -d "$cache/.build-XXXXXX")
trap 'umount -R "$work/root/proc" "$work/root/sys" "$work/root/dev" 2>/dev/null || true; rm -rf "$work"' EXIT
root=$work/root
start=$(date +%s)

say "debootstrap $suite into $root"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -50 "$work/debootstrap.log" >&2; exit 1; }

# containerd 2.x from unstable, downloaded with what it needs newer than
# trixie has, installed by the suite's second round (dpkg -i).
say "containerd from unstable"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
chroot "$root" apt-get clean # debootstrap's downloads
echo "deb $mirror sid main" >"$root/etc/apt/sources.list.d/sid.list"
chroot "$root" apt-get -o Acquire::Check-Valid-Until=false update -qq
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only -o Acquire::Check-Valid-Until=false \
  --no-install-recommends -t sid containerd >"$work/sid.log" 2>&1 || { cat "$work/sid.log" >&2; exit 1; }
mkdir -p "$root/opt/containerd2"
mv "$root"/var/cache/apt/archives/*.deb "$root/opt/containerd2/"
rm "$root/etc/apt/sources.list.d/sid.list"
chroot "$root" apt-get -o Acquire::Check-Valid-Until=false update -qq
chroot "$root" apt-get clean
umount "$root/proc" "$root/sys" "$root/dev"
ls "$root/opt/containerd2" >&2

# The guest: no password, no getty, no network, no timers; the suite's
# unit runs at boot and powers the guest off.
echo runtimed-vm >"$root/etc/hostname"
cp -r "$here/guest/." "$root/"
mkdir -p "$root/mnt/host" "$root/mnt/images"
chroot "$root" systemctl enable vm-suite.service >&2
# A machine id: not a first boot, so systemd-firstboot asks nothing.
chroot "$root" systemd-machine-id-setup >/dev/null 2>&1 || head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$root/etc/machine-id"
for u in systemd-firstboot.service getty@tty1.service serial-getty@ttyS0.service apt-daily.timer apt-daily-upgrade.timer \
  dpkg-db-backup.timer e2scrub_all.timer fstrim.timer systemd-tmpfiles-clean.timer; do
  chroot "$root" systemctl mask "$u" >/dev/null 2>&1 || true
done

# Kernel, modules and a busybox initramfs that loads them and mounts the
# root: Debian's own initramfs would add ~20 s under emulation.
kver=$(ls "$root/lib/modules")
cp "$root/boot/vmlinuz-$kver" "$work/vmlinuz"
init=$work/initrd
mkdir -p "$init"/{bin,dev,proc,sys,newroot,lib/modules}
cp /bin/busybox "$init/bin/busybox"
: >"$init/modules"
for m in "${modules[@]}"; do
  chroot "$root" modprobe -S "$kver" --show-depends "$m" | while read -r kind path _; do
    [ "$kind" = insmod ] || continue
    name=$(basename "$path")
    name=${name%.xz}
    name=${name%.zst}
    grep -qx "$name" "$init/modules" && continue
    case $path in
    *.xz) xz -dc "$root$path" >"$init/lib/modules/$name" ;;
    *.zst) zstd -qdc "$root$path" >"$init/lib/modules/$name" ;;
    *) cp "$root$path" "$init/lib/modules/$name" ;;
    esac
    echo "$name" >>"$init/modules"
  done
done
cat >"$init/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules); do insmod /lib/modules/$m; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mount -t ext4 -o rw /dev/vda /newroot || { echo "initrd: cannot mount /dev/vda"; poweroff -f; }
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
INIT
chmod 0755 "$init/init"
(cd "$init" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.img"
say "initramfs modules: $(tr '\n' ' ' <"$init/modules")"

say "root.img ($size, ext4)"
rm -rf "$root/var/cache/apt/archives/partial" "$root/var/lib/apt/lists"/*_Packages
truncate -s "$size" "$work/root.img"
mkfs.ext4 -q -F -L root -d "$root" "$work/root.img"
rm -rf "$root" "$init"
final=$(mktemp -d "$cache/.done-XXXXXX")
mv "$work/vmlinuz" "$work/initrd.img" "$work/root.img" "$final/"
echo "built in $(( $(date +%s) - start )) s, $(du -sh --apparent-size "$final/root.img" | cut -f1) apparent, $(du -sh "$final/root.img" | cut -f1) used" >"$final/done"
rm -rf "$out"
mv "$final" "$out"
# Images of older recipes go.
find "$cache" -mindepth 1 -maxdepth 1 -name '????????????????' ! -name "$key" -exec rm -rf {} +
say "$(cat "$out/done")"
echo "$out"
