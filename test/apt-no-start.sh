# apt-no-start.sh, sourced by install-deps.sh: apt_install PACKAGE... runs
# `apt-get install` while a temporary policy-rc.d refuses every service start
# (exit 101: invoke-rc.d and deb-systemd-invoke then start, restart or stop
# nothing). A policy-rc.d the machine already has is moved aside and put back
# afterwards, also when apt fails; one left aside by an interrupted run is
# put back first. POLICY_RC_D names the file (tests point it elsewhere).

policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
saved_policy=$policy.backupsync-saved
marker='# test/install-deps.sh: no service starts while it installs packages'

# restore_policy puts the machine's own policy-rc.d back (or removes ours
# when there was none). It also repairs what an interrupted earlier run left.
restore_policy() {
  if [ -e "$policy" ] && grep -qxF "$marker" "$policy" 2>/dev/null; then
    rm -f "$policy"
  fi
  if [ -e "$saved_policy" ] || [ -L "$saved_policy" ]; then
    mv -f "$saved_policy" "$policy"
  fi
}

# Two runs at once (two checkouts on one machine) take turns: one must not
# remove the policy-rc.d while the other's apt runs.
lock=/run/lock/backupsync-apt-no-start.lock
[ -d /run/lock ] || lock=/tmp/backupsync-apt-no-start.lock

# apt_install PACKAGE... installs with apt-get while no service may start.
apt_install() {
  exec 9>>"$lock"
  flock 9
  restore_policy
  if [ -e "$policy" ] || [ -L "$policy" ]; then
    mv "$policy" "$saved_policy"
  fi
  trap restore_policy EXIT
  printf '#!/bin/sh\n%s\nexit 101\n' "$marker" >"$policy"
  chmod 0755 "$policy"
  apt-get install -y -qq --no-install-recommends "$@"
  restore_policy
  trap - EXIT
  exec 9>&-
}
