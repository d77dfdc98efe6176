#!/usr/bin/env bash
# Builds the vws test guest from Debian packages, into
# ${VWS_GUEST_DIR:-<repo>/.cache/guest}:
#   vmlinuz     Debian's kernel (linux-image-6.1.0-NN-amd64, downloaded, not installed)
#   initrd.img  newc cpio, uncompressed (the image pool stores no compressed files; the kernel reads it as is): busybox-static, a few kernel modules, test/guest/init
#   disk.qcow2  a 64 MiB ext4 base root disk holding /etc/vws-base-image
#   manifest    kernel version and the hash of the inputs (this script + init)
# Cached: when the manifest matches the inputs, it exits at once.
# VWS_GUEST_REBUILD=1 forces a rebuild (and re-resolves the kernel package).
# Root is needed only to install missing host tools.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${VWS_GUEST_DIR:-$repo/.cache/guest}

log() { echo "guest: $*"; }

inputs_hash=$(cat "$here/build.sh" "$here/init" | sha256sum | cut -d' ' -f1)
cached() {
	[ "${VWS_GUEST_REBUILD:-0}" != 1 ] && [ -f "$out/manifest" ] &&
		grep -qx "inputs=$inputs_hash" "$out/manifest" &&
		[ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ] && [ -f "$out/disk.qcow2" ]
}
cached && exit 0

# --- host tools ------------------------------------------------------------
need=()
[ -x /bin/busybox ] && dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v depmod >/dev/null || [ -x /sbin/depmod ] || need+=(kmod)
command -v mkfs.ext4 >/dev/null || [ -x /sbin/mkfs.ext4 ] || need+=(e2fsprogs)
command -v qemu-img >/dev/null || need+=(qemu-utils)
if ((${#need[@]})); then
	if [ "$(id -u)" -ne 0 ]; then
		echo "guest: need root to install: ${need[*]}" >&2
		exit 1
	fi
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi
export PATH=$PATH:/usr/sbin:/sbin

mkdir -p "$out/pkg"
# One build at a time (go test runs packages in parallel); re-check the cache
# once we hold the lock.
exec 9>"$out/.lock"
flock 9
cached && exit 0
rm -rf "$out"/.build.*
tmp=$(mktemp -d "$out/.build.XXXXXX")
dl= # the kernel's download directory, outside $out (see below)
trap 'rm -rf "$tmp" ${dl:+"$dl"}' EXIT

# --- kernel ----------------------------------------------------------------
resolve_kernel() { # sets meta_version, kpkg and kver from apt's package lists
	meta_version=$(apt-cache policy linux-image-amd64 | awk '/Candidate:/ {print $2}')
	kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9].*-amd64$/ {print $2; exit}')
	kver=${kpkg#linux-image-}
}
resolve_kernel
if [ -z "$kpkg" ] || [ "$meta_version" = "(none)" ]; then
	log "no package lists for linux-image-amd64: apt-get update"
	apt-get update -q >/dev/null
	resolve_kernel
fi
[ -n "$kpkg" ] || { echo "guest: cannot resolve the kernel package of linux-image-amd64" >&2; exit 1; }
log "kernel $kpkg (linux-image-amd64 $meta_version)"

# The .deb is cached in $out/pkg; it is extracted (not installed) for each build.
deb=$(ls "$out/pkg/${kpkg}_"*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
	log "apt-get download $kpkg"
	# apt-get download drops privileges to _apt, which may not write to our
	# folder: download into a world-writable temp dir.
	dl=$(mktemp -d)
	chmod 0777 "$dl"
	if ! (cd "$dl" && apt-get download -q "$kpkg" >/dev/null 2>&1); then
		log "download failed: apt-get update and retry"
		apt-get update -q >/dev/null
		# Old lists name a kernel ABI the mirror may no longer carry: resolve anew.
		resolve_kernel
		[ -n "$kpkg" ] || { echo "guest: cannot resolve the kernel package of linux-image-amd64" >&2; exit 1; }
		log "kernel $kpkg (linux-image-amd64 $meta_version)"
		(cd "$dl" && apt-get download -q "$kpkg" >/dev/null)
	fi
	rm -f "$out"/pkg/*.deb # older kernels
	# Copied next to its place, then renamed into it: a copy across filesystems
	# killed halfway must not leave a truncated .deb under the name every later
	# run takes for a complete download.
	for f in "$dl"/*.deb; do
		cp "$f" "$out/pkg/.partial"
		mv -f "$out/pkg/.partial" "$out/pkg/$(basename "$f")"
	done
	rm -rf "$dl"
	deb=$(ls "$out/pkg/${kpkg}_"*.deb | head -n1)
fi
kroot=$tmp/kernel
log "dpkg -x $(basename "$deb"); depmod (to resolve module dependencies)"
if ! dpkg -x "$deb" "$kroot"; then
	rm -f "$deb" # damaged: the next run downloads it again
	echo "guest: $deb cannot be extracted: removed it; run again to download it anew" >&2
	exit 1
fi
depmod -b "$kroot" "$kver"
config=$kroot/boot/config-$kver
[ -f "$config" ] || { echo "guest: $config missing" >&2; exit 1; }

# --- modules ---------------------------------------------------------------
# Wanted drivers, in load order: the CD-ROM on SATA (AHCI) and its ISO9660
# filesystem, virtio disks/net, and the ACPI power button with evdev so busybox
# acpid sees it. Those built in (=y) are skipped, modular ones are copied with
# their dependencies.
wanted=(
	ahci:SATA_AHCI sr_mod:BLK_DEV_SR sd_mod:BLK_DEV_SD isofs:ISO9660_FS
	virtio_pci:VIRTIO_PCI virtio_blk:VIRTIO_BLK virtio_net:VIRTIO_NET
	evdev:INPUT_EVDEV button:ACPI_BUTTON
)
stage=$tmp/initrd
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc/acpi,proc,sys,dev,tmp,run,root,cidata,lib/modules/"$kver"}
load=()
for w in "${wanted[@]}"; do
	mod=${w%%:*} opt=CONFIG_${w#*:}
	case "$(grep -E "^$opt=" "$config" | cut -d= -f2)" in
	y) continue ;;
	m) ;;
	*) echo "guest: $opt is not enabled in $kver" >&2; exit 1 ;;
	esac
	load+=("$mod")
	modprobe -d "$kroot" -S "$kver" --show-depends "$mod" | awk '$1 == "insmod" {print $2}' |
		while read -r f; do
			rel=${f#"$kroot"}
			mkdir -p "$stage/$(dirname "$rel")"
			cp "$f" "$stage/$rel"
		done
done
cp "$kroot/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$stage/lib/modules/$kver/" 2>/dev/null || true
depmod -b "$stage" "$kver"
printf '%s\n' "${load[@]}" >"$stage/etc/vws-modules"
nmods=$(find "$stage/lib/modules" -name '*.ko*' | wc -l)
log "initramfs modules: ${load[*]} ($nmods files with dependencies)"

# --- userland --------------------------------------------------------------
cp /bin/busybox "$stage/bin/busybox"
for a in $(/bin/busybox --list-full); do
	[ "$a" = bin/busybox ] && continue
	mkdir -p "$stage/$(dirname "$a")"
	ln -sf /bin/busybox "$stage/$a"
done
install -m 0755 "$here/init" "$stage/init"
cat >"$stage/etc/acpid.conf" <<'EOF'
PWRF power
EOF
cat >"$stage/etc/acpi/power" <<'EOF'
#!/bin/sh
echo "vws-guest: ACPI power button: powering off" >/dev/console
sync
poweroff -f
EOF
chmod 0755 "$stage/etc/acpi/power"
echo "root:x:0:0:root:/root:/bin/sh" >"$stage/etc/passwd"
echo "root:x:0:" >"$stage/etc/group"
log "initrd.img ($(/bin/busybox --list | wc -l) busybox applets)"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$tmp/initrd.img"

# --- base disk -------------------------------------------------------------
disk=$tmp/disk
mkdir -p "$disk/etc"
printf 'vws test guest base image\nkernel %s\n' "$kver" >"$disk/etc/vws-base-image"
log "disk.qcow2 (64 MiB ext4)"
mkfs.ext4 -q -F -L vws-base -E root_owner=0:0 -d "$disk" "$tmp/disk.raw" 64M >/dev/null
qemu-img convert -q -f raw -O qcow2 "$tmp/disk.raw" "$tmp/disk.qcow2"

# --- publish ---------------------------------------------------------------
cp "$kroot/boot/vmlinuz-$kver" "$tmp/vmlinuz"
# No manifest while the three files are replaced one by one: killed in between,
# they may be of two builds (two kernels), and the next run must not take them
# for a cached image.
rm -f "$out/manifest"
for f in vmlinuz initrd.img disk.qcow2; do
	mv -f "$tmp/$f" "$out/$f"
done
cat >"$out/manifest.new" <<EOF
kernel=$kver
package=$kpkg
metapackage=linux-image-amd64 $meta_version
modules=${load[*]}
inputs=$inputs_hash
EOF
mv -f "$out/manifest.new" "$out/manifest"
log "done: $out (kernel $kver)"
