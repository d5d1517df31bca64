#!/usr/bin/env bash
# install-deps.sh installs what the test suite needs on a Debian machine, and
# nothing when it is already there. It is called by `make test` and .ci/run.
# It needs root only when something is missing.
#
# It never stops, disables or reconfigures a service the machine runs: apt
# installs under a temporary /usr/sbin/policy-rc.d that refuses every service
# start (exit 101), so a package such as vsftpd or openssh-server is installed
# without being started (apt may still enable it for the next boot; the tests
# start their own servers on loopback addresses and leave it alone). An
# existing policy-rc.d is kept and put back. What it changes on the machine:
# the apt packages below, /opt/backupsync-test (FTP servers and promtool,
# unpacked, never configured) and the directory /run/sshd.
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }

# Real peers the integration tests start themselves on loopback addresses.
have vsftpd || need_apt+=(vsftpd)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
have ssh || need_apt+=(openssh-client)
have sftp || need_apt+=(openssh-client)
have python3 || need_apt+=(python3)
# Packaging tests: the unit is verified, the .deb built and installed into a
# throwaway root (an overlay of / in a private mount namespace).
have systemd-analyze || need_apt+=(systemd)
have fakeroot || need_apt+=(fakeroot)
have dpkg-deb || need_apt+=(dpkg)
have adduser || need_apt+=(adduser)
have useradd || need_apt+=(passwd)
have unshare || need_apt+=(util-linux)
have setpriv || need_apt+=(util-linux)
have lintian || need_apt+=(lintian)
# The status page's browser test (test/page) loads the page in a real
# browser: Debian's headless-capable chromium.
have chromium || need_apt+=(chromium)

# apt_install: apt-get install under a policy-rc.d that starts no service.
. "$(dirname "$0")/apt-no-start.sh"

apt_updated=false
apt_update() {
  $apt_updated && return 0
  apt-get update -qq
  apt_updated=true
}

need_root() { # what
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: $1; run as root or install them with apt-get" >&2
    exit 1
  fi
}

if [ ${#need_apt[@]} -gt 0 ]; then
  need_root "missing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_update
  apt_install "${need_apt[@]}"
fi

# --- packages unpacked under /opt/backupsync-test, never installed ---
# internal/ftptest runs proftpd and pure-ftpd (which conflict with vsftpd as
# packages) from /opt/backupsync-test/<name>/usr/sbin/<name>; test/packaging
# runs promtool from /opt/backupsync-test/prometheus/usr/bin (installing the
# prometheus package would start a Prometheus server). Their library
# dependencies are installed normally; the packages themselves are only
# unpacked (dpkg -x), never configured, so no service starts.
optdir=/opt/backupsync-test
unpack() { # name path-of-its-program package...
  local name=$1 prog=$2; shift 2
  [ -x "$optdir/$name/$prog" ] && return 0
  need_root "$name missing under $optdir"
  local tmp; tmp=$(mktemp -d)
  chmod 755 "$tmp"; chown _apt "$tmp" 2>/dev/null || true
  (cd "$tmp" && apt-get download -qq "$@")
  rm -rf "$optdir/$name.tmp"
  mkdir -p "$optdir/$name.tmp"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$optdir/$name.tmp"; done
  rm -rf "$tmp" "$optdir/$name"
  mv "$optdir/$name.tmp" "$optdir/$name"
}
if [ ! -x "$optdir/proftpd/usr/sbin/proftpd" ] || [ ! -x "$optdir/pure-ftpd/usr/sbin/pure-ftpd" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt_update
    # Plain libraries of proftpd-core and pure-ftpd (not the packages, which
    # conflict with vsftpd).
    apt_install libacl1 libcap2 libcrypt1 libhiredis0.14 libidn2-0 libmemcached11 \
      libmemcachedutil2 libncursesw6 libpam0g libpcre2-8-0 libpcre2-posix3 \
      libsodium23 libssl3 libtinfo6 libwrap0 zlib1g >/dev/null
  fi
  unpack proftpd usr/sbin/proftpd proftpd-core
  unpack pure-ftpd usr/sbin/pure-ftpd pure-ftpd
fi
# promtool checks packaging/monitoring's alerting rules. Only the program is
# kept (the package's web assets are not needed).
if ! have promtool && [ ! -x "$optdir/prometheus/usr/bin/promtool" ]; then
  need_root "promtool missing under $optdir/prometheus"
  apt_update
  unpack prometheus.pkg usr/bin/promtool prometheus
  mkdir -p "$optdir/prometheus/usr/bin"
  cp "$optdir/prometheus.pkg/usr/bin/promtool" "$optdir/prometheus/usr/bin/promtool"
  rm -rf "$optdir/prometheus.pkg"
fi

# OpenSSH's sshd, started by the tests, needs its privilege separation
# directory; the ssh service creates it only when it runs.
if [ "$(id -u)" -eq 0 ]; then
  mkdir -p /run/sshd
fi
