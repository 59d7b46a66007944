#!/usr/bin/env bash
# Installs what building, the demo and the tests need on Debian 12. Idempotent; run as root.
# Package scripts are kept from starting services (an sshd on port 22) on this machine.
set -euo pipefail

need=(
  build-essential pkg-config libseccomp-dev libpam0g-dev
  clang libbpf-dev libelf-dev zlib1g-dev
  pamtester openssh-server openssh-client sudo util-linux procps iproute2 python3 python3-venv openssl
  debootstrap dpkg-dev
  qemu-system-x86 qemu-utils e2fsprogs btrfs-progs fuse3 bindfs
)
missing_packages() {
  missing=()
  for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
}
# Two passes: an install can remove a package of the list that conflicts with it (this image's
# backported qemu-utils 10 gives way to bookworm's qemu-system-x86 7.2), and the second pass
# installs the matching version.
for pass in 1 2; do
  missing_packages
  ((${#missing[@]})) || break
  echo "setup: installing ${missing[*]}"
  created_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ "$pass" = 1 ]; then apt-get update -qq; fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$created_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
done
missing_packages
if ((${#missing[@]})); then
  echo "setup: still missing after installing: ${missing[*]}" >&2
  exit 1
fi
command -v cargo >/dev/null || { echo "setup: cargo is required (rustup)"; exit 1; }
# The kernel's exec check pins its programs in the BPF filesystem, which systemd mounts at
# boot and this machine's init does not.
if [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != bpf_fs ]; then
  mount -t bpf bpf /sys/fs/bpf
fi
