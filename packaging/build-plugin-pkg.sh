#!/usr/bin/env bash
# build-plugin-pkg.sh VERSION OUTDIR: builds the EXAoperation plugin package
# Plugin.Administration.BackupSync-VERSION-DATE.pkg: a tar holding
# Plugin.Administration.BackupSync-VERSION.tar.gz, which unpacks to
# usr/opt/EXAplugins/Administration.BackupSync-VERSION/ with the gate
# exaoperation-gate/plugin-functions and the daemon's binaries in bin/
# (static and stripped, as in build-deb.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?version}; out=${2:?outdir}
name=Administration.BackupSync-$version
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
dir=$work/tree/usr/opt/EXAplugins/$name
mkdir -p "$dir/exaoperation-gate" "$dir/bin"
install -m 0755 packaging/exaplugin/plugin-functions "$dir/exaoperation-gate/"
CGO_ENABLED=0 go build -ldflags "-s -w -X backupsync/internal/version.Version=$version" -o "$dir/bin/" ./cmd/backupsyncd ./cmd/backupsyncctl
install -m 0644 packaging/systemd/backupsyncd.service packaging/backupsyncd.hcl.example "$dir/"
tar -C "$work/tree" --owner=0 --group=0 -czf "$work/Plugin.$name.tar.gz" usr
mkdir -p "$out"
pkg=$out/Plugin.$name-$(date -u +%Y-%m-%d).pkg
tar -C "$work" --owner=0 --group=0 -cf "$pkg" "Plugin.$name.tar.gz"
echo "$pkg"
