#!/usr/bin/env bash
# install-deps.sh installs what the test suite needs on a Debian machine, and
# nothing when it is already there. It is called by `make test` and .ci/run.
# It needs root only when something is missing.
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }

# Real peers the integration tests start themselves on loopback addresses.
have vsftpd || need_apt+=(vsftpd)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
have ssh || need_apt+=(openssh-client)
have sftp || need_apt+=(openssh-client)
have python3 || need_apt+=(python3)
# Packaging tests: the unit is verified, the .deb built and installed.
have systemd-analyze || need_apt+=(systemd)
have fakeroot || need_apt+=(fakeroot)
have dpkg-deb || need_apt+=(dpkg)
have adduser || need_apt+=(adduser)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing ${need_apt[*]}; run as root or install them with apt-get" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# --- FTP servers that conflict with vsftpd as packages (unpacked beside it) ---
# (section owned by the archive work: proftpd and pure-ftpd)
# internal/ftptest runs them from /opt/backupsync-test/<name>/usr/sbin/<name>.
# Their library dependencies are installed normally; the packages themselves
# are only unpacked (dpkg -x), never configured, so no service starts.
optdir=/opt/backupsync-test
unpack_conflicting() { # name package...
  local name=$1; shift
  [ -x "$optdir/$name/usr/sbin/$name" ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: $name missing under $optdir; run as root" >&2
    exit 1
  fi
  local tmp; tmp=$(mktemp -d)
  chmod 755 "$tmp"; chown _apt "$tmp" 2>/dev/null || true
  (cd "$tmp" && apt-get download -qq "$@")
  mkdir -p "$optdir/$name.tmp"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$optdir/$name.tmp"; done
  rm -rf "$tmp" "$optdir/$name"
  mv "$optdir/$name.tmp" "$optdir/$name"
}
if [ ! -x "$optdir/proftpd/usr/sbin/proftpd" ] || [ ! -x "$optdir/pure-ftpd/usr/sbin/pure-ftpd" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    [ ${#need_apt[@]} -gt 0 ] || apt-get update -qq
    # Plain libraries of proftpd-core and pure-ftpd (not the packages, which
    # conflict with vsftpd).
    apt-get install -y -qq --no-install-recommends \
      libacl1 libcap2 libcrypt1 libhiredis0.14 libidn2-0 libmemcached11 \
      libmemcachedutil2 libncursesw6 libpam0g libpcre2-8-0 libpcre2-posix3 \
      libsodium23 libssl3 libtinfo6 libwrap0 zlib1g >/dev/null
  fi
  unpack_conflicting proftpd proftpd-core
  unpack_conflicting pure-ftpd pure-ftpd
fi

# vsftpd and sshd as installed by apt start services we do not want.
systemctl disable --now vsftpd ssh >/dev/null 2>&1 || true
mkdir -p /run/sshd
