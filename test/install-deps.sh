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

# vsftpd and sshd as installed by apt start services we do not want.
systemctl disable --now vsftpd ssh >/dev/null 2>&1 || true
mkdir -p /run/sshd
