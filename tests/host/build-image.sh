#!/usr/bin/env bash
# Builds the Debian 12 system that tests/tests/host.rs boots under qemu, or finds it in its
# cache. Run as root; prints the image's directory on its last line, which holds:
#   disk.img             the root file system (raw ext4, booted read-write through a qcow2
#                        overlay, so the image itself is never changed)
#   vmlinuz, initrd.img  Debian's own kernel (linux-image-cloud-amd64, 6.1) and its initramfs
#   id_ed25519           the ssh key that logs in as root and as the test user swuser
# The system: debootstrap (minbase) of bookworm with systemd as PID 1, logind, journald,
# rsyslog, auditd, cron, at, sudo, iproute2 and openssh-server; the network is qemu's user network
# (10.0.2.15, static, through systemd-networkd).
# Cache: /var/cache/session-wrapper-tests/host-<hash of this script>/ (SW_HOST_CACHE to put it
# elsewhere); a change to this script builds a new image. Delete the directory to start afresh.
# Mirror: SW_DEBIAN_MIRROR, else the one this machine's apt sources use for bookworm.
set -euo pipefail
umask 022

cache_root=${SW_HOST_CACHE:-/var/cache/session-wrapper-tests}
hash=$(sha256sum "$0" | cut -c1-16)
dir="$cache_root/host-$hash"
if [ -f "$dir/complete" ]; then
    echo "$dir"
    exit 0
fi
die() { echo "build-image: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot)"
for tool in debootstrap mkfs.ext4 ssh-keygen; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup.sh installs it)"
done

if [ -n "${SW_DEBIAN_MIRROR:-}" ]; then
    mirror=$SW_DEBIAN_MIRROR
else
    # The URL apt would fetch a bookworm package from, up to /pool/: the machine's own mirror.
    uri=$(apt-get -qq --print-uris download base-files 2>/dev/null | head -n1 | cut -d"'" -f2)
    mirror=${uri%%/pool/*}
    [ -n "$mirror" ] && [ "$mirror" != "$uri" ] || mirror=http://deb.debian.org/debian
fi

rm -rf "$dir"
mkdir -p "$dir"
work=$(mktemp -d /var/tmp/sw-host-image.XXXXXX)
trap 'umount -R "$work/root/proc" "$work/root/sys" "$work/root/dev" 2>/dev/null || true; rm -rf "$work"' EXIT
root="$work/root"

# iproute2 (priority important: on every Debian 12 server) brings libelf1 and libbpf1; the
# package depends on libelf1 (libbpf, linked in, reads the kernel check's program with it),
# and the guest has no archive to fetch it from.
packages=(
    systemd systemd-sysv dbus dbus-user-session libpam-systemd udev kmod procps iproute2
    linux-image-cloud-amd64 initramfs-tools
    openssh-server rsyslog auditd cron at sudo
)
echo "build-image: debootstrap bookworm from $mirror" >&2
if ! debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
        bookworm "$root" "$mirror" >"$work/debootstrap.out" 2>&1; then
    tail -n 30 "$work/debootstrap.out" >&2
    tail -n 30 "$root/debootstrap/debootstrap.log" >&2 || true
    die "debootstrap failed (mirror $mirror; set SW_DEBIAN_MIRROR for another)"
fi

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

echo swhost >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tswhost\n' >"$root/etc/hosts"
printf '/dev/vda\t/\text4\trw,errors=remount-ro\t0\t1\n' >"$root/etc/fstab"
cat >"$root/etc/systemd/network/10-qemu.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
DNS=10.0.2.3
EOF
in_root systemctl enable systemd-networkd.service >/dev/null 2>&1
# Nothing the test does not need runs at boot (TCG is slow): timers, the console login.
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer getty@tty1.service \
    systemd-networkd-wait-online.service >/dev/null 2>&1

ssh-keygen -q -t ed25519 -N '' -C session-wrapper-host-test -f "$dir/id_ed25519"
in_root useradd -m -s /bin/bash swuser
# '*': no password, yet not locked ('!'), so sshd accepts the key.
in_root usermod -p '*' swuser
for home in root home/swuser; do
    install -d -m 700 "$root/$home/.ssh"
    install -m 600 "$dir/id_ed25519.pub" "$root/$home/.ssh/authorized_keys"
done
in_root chown -R swuser:swuser /home/swuser/.ssh
cat >"$root/etc/ssh/sshd_config.d/session-wrapper-test.conf" <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
EOF
in_root apt-get clean
rm -rf "$root/var/lib/apt/lists/"*

kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -n1)
cp "$kernel" "$dir/vmlinuz"
cp "$initrd" "$dir/initrd.img"
size_mb=$(( $(du -sm "$root" | cut -f1) + 1536 ))
mkfs.ext4 -q -F -L swroot -d "$root" "$dir/disk.img" "${size_mb}M"
basename "$kernel" | sed 's/^vmlinuz-//' >"$dir/kernel-version"
touch "$dir/complete"
echo "$dir"
