#!/usr/bin/env bash
# build-deb.sh VERSION OUTDIR: builds backupsync_VERSION_ARCH.deb from this
# tree with dpkg-deb. Binaries are static (CGO_ENABLED=0) and stripped: they
# run on whatever C library the node's OS has, and start about 1 ms sooner
# than a dynamically linked build (docs/BENCHMARKS.md, session 4).
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?version}; out=${2:?outdir}
arch=$(dpkg --print-architecture)
root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/backupsync" "$root/usr/share/doc/backupsync"
CGO_ENABLED=0 go build -ldflags "-s -w -X backupsync/internal/version.Version=$version" -o "$root/usr/bin/" ./cmd/backupsyncd ./cmd/backupsyncctl
install -m 0644 packaging/systemd/backupsyncd.service "$root/lib/systemd/system/"
install -m 0640 packaging/backupsyncd.hcl.example "$root/etc/backupsync/backupsyncd.hcl"
install -m 0644 README.md docs/CONNECTIONS.md "$root/usr/share/doc/backupsync/"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" packaging/deb/control.in > "$root/DEBIAN/control"
install -m 0644 packaging/deb/conffiles "$root/DEBIAN/"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$root/DEBIAN/"
mkdir -p "$out"
fakeroot dpkg-deb --build -Zgzip "$root" "$out/backupsync_${version}_${arch}.deb" >/dev/null
echo "$out/backupsync_${version}_${arch}.deb"
