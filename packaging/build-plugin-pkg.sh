#!/usr/bin/env bash
# build-plugin-pkg.sh VERSION OUTDIR: builds the EXAoperation plugin package
# Plugin.Administration.BackupSync-VERSION-DATE.pkg and prints its path: a
# tar holding Plugin.Administration.BackupSync-VERSION.tar.gz, which unpacks
# to usr/opt/EXAplugins/Administration.BackupSync-VERSION/ with
#   exaoperation-gate/plugin-functions  the gate EXAoperation calls
#   bin/backupsyncd, bin/backupsyncctl  static and stripped, as in build-deb.sh
#   install-service                     sets the node up (user, unit, settings)
#   backupsyncd.service                 the unit, ExecStart at bin/backupsyncd
#   backupsyncd.hcl.example, gate.env.example, monitoring/
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?version}; out=${2:?outdir}
name=Administration.BackupSync-$version
prefix=/usr/opt/EXAplugins/$name
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
dir=$work/tree$prefix
install -d -m 0755 "$work/tree" "$dir/exaoperation-gate" "$dir/bin" "$dir/monitoring"
install -m 0755 packaging/exaplugin/plugin-functions "$dir/exaoperation-gate/"
CGO_ENABLED=0 go build -ldflags "-s -w -X backupsync/internal/version.Version=$version" -o "$dir/bin/" ./cmd/backupsyncd ./cmd/backupsyncctl
chmod 0755 "$dir"/bin/*
install -m 0755 packaging/exaplugin/install-service "$dir/"
install -m 0644 packaging/backupsyncd.hcl.example packaging/exaplugin/gate.env.example "$dir/"
install -m 0644 packaging/monitoring/backupsync-alerts.yml packaging/monitoring/backupsync-dashboard.json "$dir/monitoring/"
# The unit runs this package's daemon, wherever the version puts it.
sed "s#^ExecStart=/usr/bin/backupsyncd #ExecStart=$prefix/bin/backupsyncd #" packaging/systemd/backupsyncd.service >"$dir/backupsyncd.service"
chmod 0644 "$dir/backupsyncd.service"
if ! grep -q "^ExecStart=$prefix/bin/backupsyncd " "$dir/backupsyncd.service"; then
  echo "build-plugin-pkg: the unit's ExecStart was not rewritten to $prefix/bin/backupsyncd" >&2
  exit 1
fi
tar -C "$work/tree" --owner=0 --group=0 -czf "$work/Plugin.$name.tar.gz" usr
mkdir -p "$out"
pkg=$out/Plugin.$name-$(date -u +%Y-%m-%d).pkg
tar -C "$work" --owner=0 --group=0 -cf "$pkg" "Plugin.$name.tar.gz"
echo "$pkg"
