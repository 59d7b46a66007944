#!/usr/bin/env bash
# Builds the Debian package pam-session-wrapper from this checkout:
#   target/debian/pam-session-wrapper_<version>-<revision>_<arch>.deb
# (version from the workspace Cargo.toml, revision from packaging/debian/changelog;
# target/ is $CARGO_TARGET_DIR when that is set).
#
# It builds the release binaries (cargo build --release --workspace --locked), assembles the
# installed tree in target/debian/pam-session-wrapper/, computes the dependencies with
# dpkg-shlibdeps, writes DEBIAN/control with dpkg-gencontrol, and packs it with
# dpkg-deb --root-owner-group (no root or fakeroot needed). Why this way: packaging/README.md.
#
# Options:
#   --no-build   package the binaries already in target/release (do not run cargo build)
#   --lintian    run lintian on the result; fail if it reports an error
# DEBFULLNAME and DEBEMAIL, when set, name the package's maintainer (as dch takes them).
# Prints the path of the .deb as the last line of its output.
set -euo pipefail
umask 022

build=1
run_lintian=0
for a in "$@"; do
    case "$a" in
        --no-build) build=0 ;;
        --lintian) run_lintian=1 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-deb: unknown option $a (see --help)" >&2; exit 2 ;;
    esac
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

die() { echo "build-deb: $*" >&2; exit 1; }

for tool in cargo dpkg-shlibdeps dpkg-gencontrol dpkg-parsechangelog dpkg-deb dpkg-architecture strip gzip; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install dpkg-dev binutils gzip; cargo from rustup)"
done

# The upstream version is the workspace's; the changelog's newest entry must be for it.
upstream=$(awk '/^\[workspace\.package\]/{p=1; next} /^\[/{p=0} p && $1=="version" {gsub(/"/, "", $3); print $3; exit}' Cargo.toml)
[ -n "$upstream" ] || die "no version in [workspace.package] of Cargo.toml"
debver=$(dpkg-parsechangelog -l "$here/debian/changelog" -S Version)
[ "${debver%-*}" = "$upstream" ] ||
    die "packaging/debian/changelog is at $debver but Cargo.toml says $upstream: add a changelog entry for $upstream-1"
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
if [ "$build" = 1 ]; then
    # Without SOURCE_DATE_EPOCH: build scripts (the cc crate's) watch it, and a value the
    # release tree was not built with would rebuild all of it. Nor with the variables cargo
    # sets for a test it runs (CARGO_MANIFEST_DIR, CARGO_PKG_*, ...: the package tests call
    # this script), which ring's build script watches: each call from a test, then each call
    # from a shell, rebuilt the whole release tree.
    unset_env=(-u SOURCE_DATE_EPOCH)
    for v in $(compgen -e); do
        case "$v" in
            CARGO_MANIFEST_*|CARGO_PKG_*|CARGO_CRATE_*|CARGO_BIN_*|CARGO_PRIMARY_*|CARGO_TARGET_TMPDIR)
                unset_env+=(-u "$v") ;;
        esac
    done
    env "${unset_env[@]}" cargo build --release --workspace --locked
fi
# Reproducible timestamps (dpkg-deb clamps file times to this) and gzip headers.
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$here/debian/changelog" -S Timestamp)
export SOURCE_DATE_EPOCH
target=${CARGO_TARGET_DIR:-$root/target}
case "$target" in /*) ;; *) target="$root/$target" ;; esac
rel="$target/release"
for f in libpam_session_wrapper.so session-wrapper-supervisor session-wrapper-bpf-loader session-wrapper; do
    [ -f "$rel/$f" ] || die "$rel/$f is not built (run without --no-build)"
done

out="$target/debian"
pkg="$out/pam-session-wrapper"   # the installed tree
work="$out/work"                 # debian/control, changelog, substvars for dpkg-dev's tools
rm -rf "$pkg" "$work"
rm -f "$out"/pam-session-wrapper_*.deb
mkdir -p "$pkg/DEBIAN" "$work/debian"

# Programs and the module, stripped as dh_strip does.
install -D -m 644 "$rel/libpam_session_wrapper.so" "$pkg/lib/$multiarch/security/pam_session_wrapper.so"
install -D -m 755 "$rel/session-wrapper-supervisor" "$pkg/usr/libexec/session-wrapper/session-wrapper-supervisor"
install -D -m 755 "$rel/session-wrapper-bpf-loader" "$pkg/usr/libexec/session-wrapper/session-wrapper-bpf-loader"
install -D -m 755 "$rel/session-wrapper" "$pkg/usr/bin/session-wrapper"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$pkg/lib/$multiarch/security/pam_session_wrapper.so"
strip --remove-section=.comment --remove-section=.note "$pkg/usr/libexec/session-wrapper/session-wrapper-supervisor" \
    "$pkg/usr/libexec/session-wrapper/session-wrapper-bpf-loader" "$pkg/usr/bin/session-wrapper"

# The configuration: the example policy of packaging/config.toml, in audit mode, with a header
# that says how to go on. A conffile: dpkg keeps the administrator's changes across upgrades.
install -d -m 755 "$pkg/etc/session-wrapper" "$pkg/etc/session-wrapper/config.d"
install -m 644 "$here/config.toml" "$pkg/etc/session-wrapper/config.toml"
grep -q '^mode = "audit"$' "$pkg/etc/session-wrapper/config.toml" || die "config.toml is not in audit mode"
"$rel/session-wrapper" check-config --config "$pkg/etc/session-wrapper/config.toml" >/dev/null ||
    die "the packaged config.toml does not pass check-config"
echo /etc/session-wrapper/config.toml > "$pkg/DEBIAN/conffiles"

# The timer that delivers accounting records ended sessions left in the spool (enabled by
# postinst, as dh_installsystemd would).
for unit in session-wrapper-deliver-accounting.service session-wrapper-deliver-accounting.timer; do
    install -D -m 644 "$here/systemd/$unit" "$pkg/lib/systemd/system/$unit"
done

# The pam-auth-update profile (Default: no).
install -D -m 644 "$here/pam-configs/session-wrapper" "$pkg/usr/share/pam-configs/session-wrapper"

# Man pages, from docs/man/NAME.SECTION; their .TH line names the version they document.
for page in "$root"/docs/man/*.[1-8]; do
    name=$(basename "$page")
    grep -q "^\.TH .* \"pam_session_wrapper $upstream\"" "$page" ||
        die "docs/man/$name: its .TH line does not say \"pam_session_wrapper $upstream\" (update it and its date)"
    section=${name##*.}
    install -d -m 755 "$pkg/usr/share/man/man$section"
    gzip -9n -c "$page" > "$pkg/usr/share/man/man$section/$name.gz"
    chmod 644 "$pkg/usr/share/man/man$section/$name.gz"
done

# Documentation: copyright (with the statically linked crates), changelog, the admin guide.
doc="$pkg/usr/share/doc/pam-session-wrapper"
install -d -m 755 "$doc"
crates=$(cargo tree --locked --offline -e normal,no-proc-macro --prefix none -f '{p}|{l}' \
            -p session-wrapper -p pam_session_wrapper |
         sed 's/ (\*)$//; s/ (proc-macro)$//' | grep -v '^session-wrapper\|^pam_session_wrapper' |
         sort -u | awk -F'|' 'NF == 2 && $1 != "" { sub(/ v/, " ", $1); print " " $1 ": " $2 }')
[ -n "$crates" ] || die "cargo tree listed no crates for the copyright file"
awk -v crates="$crates" '$0 == "@CRATES@" { print crates; next } { print }' \
    "$here/debian/copyright" > "$doc/copyright"
gzip -9n -c "$here/debian/changelog" > "$doc/changelog.Debian.gz"
gzip -9n -c "$root/docs/admin-guide.md" > "$doc/admin-guide.md.gz"
chmod 644 "$doc"/*
# The package policy's test cases, naming the installed policy: `session-wrapper test FILE`.
install -d -m 755 "$doc/examples"
sed 's|^config = "config.toml"$|config = "/etc/session-wrapper/config.toml"|' "$here/config.test.toml" > "$doc/examples/config.test.toml"
grep -q '^config = "/etc/session-wrapper/config.toml"$' "$doc/examples/config.test.toml" || die "config.test.toml does not name config.toml"
chmod 644 "$doc/examples/config.test.toml"

# Lintian overrides, each with its reason in the file.
if [ -s "$here/debian/lintian-overrides" ]; then
    install -D -m 644 "$here/debian/lintian-overrides" "$pkg/usr/share/lintian/overrides/pam-session-wrapper"
fi

# Maintainer scripts.
install -m 755 "$here/debian/postinst" "$here/debian/prerm" "$here/debian/postrm" "$pkg/DEBIAN/"

# DEBIAN/control: dependencies from the ELF files, Installed-Size from the tree.
cp "$here/debian/control" "$here/debian/changelog" "$work/debian/"
(
    cd "$work"
    dpkg-shlibdeps -Tdebian/substvars \
        "$pkg/lib/$multiarch/security/pam_session_wrapper.so" \
        "$pkg/usr/libexec/session-wrapper/session-wrapper-supervisor" \
        "$pkg/usr/libexec/session-wrapper/session-wrapper-bpf-loader" \
        "$pkg/usr/bin/session-wrapper"
    # The maintainer of a package built here: DEBFULLNAME and DEBEMAIL, as dch takes them,
    # when set; debian/control's otherwise.
    maintainer=()
    if [ -n "${DEBEMAIL:-}" ]; then
        maintainer=(-DMaintainer="${DEBFULLNAME:-$DEBEMAIL} <$DEBEMAIL>")
    fi
    dpkg-gencontrol -ppam-session-wrapper -P"$pkg" -Tdebian/substvars -fdebian/files "${maintainer[@]}"
)
( cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum > DEBIAN/md5sums )
chmod 644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/md5sums" "$pkg/DEBIAN/conffiles"

deb="$out/pam-session-wrapper_${debver}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "build-deb: built $(basename "$deb"): $(dpkg-deb -f "$deb" Depends)" >&2

if [ "$run_lintian" = 1 ]; then
    command -v lintian >/dev/null || die "lintian is missing (apt-get install lintian)"
    lintian --fail-on error --display-info "$deb" >&2
fi
echo "$deb"
