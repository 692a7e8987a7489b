#!/usr/bin/env bash
# Checks Reel's systemd units against the systemd installed here (target: 252, Debian 12).
#   scripts/check-units.sh [path/to/reeld]
# Stages a root with the units, a stub /usr/bin/reeld (or the given binary), then:
#   1. systemd-analyze verify: fails on ANY output (unknown keys and bad values only warn, with exit 0);
#   2. systemd-analyze security --offline: prints the exposure score, fails above 2.0;
#   3. systemd-sysusers and systemd-tmpfiles --create into the staged root (as root only), checking the modes.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
units="$repo/systemd"
root=$(mktemp -d "${TMPDIR:-/tmp}/reel-units.XXXXXX")
trap 'rm -rf "$root"' EXIT
fail() { echo "check-units: FAIL: $*" >&2; exit 1; }

mkdir -p "$root/usr/bin" "$root/usr/lib/systemd" "$root/etc"
# The distribution's units (sysinit.target, sockets.target, …) so dependencies resolve inside the root.
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$units/reeld.service" "$units/reeld.socket" "$root/usr/lib/systemd/system/"
if [[ -n "${1:-}" ]]; then
    install -m 0755 "$1" "$root/usr/bin/reeld"
else
    printf '#!/bin/sh\nexit 0\n' >"$root/usr/bin/reeld"
    chmod 0755 "$root/usr/bin/reeld"
fi

echo "== systemd-analyze verify ($(systemctl --version | head -1))"
rc=0
out=$(systemd-analyze verify --man=no --root="$root" reeld.service reeld.socket 2>&1) || rc=$?
[[ $rc -eq 0 && -z "$out" ]] || fail "systemd-analyze verify (exit $rc):"$'\n'"$out"
echo "clean"

echo "== systemd-analyze security --offline=true"
rc=0
out=$(systemd-analyze security --offline=true --root="$root" --threshold=20 reeld.service 2>&1) || rc=$?
score=$(sed -n 's/.*Overall exposure level for reeld.service: \([0-9.]*\).*/\1/p' <<<"$out")
[[ -n "$score" ]] || fail "no exposure score in output:"$'\n'"$out"
echo "exposure score: $score (threshold 2.0)"
[[ $rc -eq 0 ]] || fail "exposure $score is above 2.0:"$'\n'"$(grep '✗' <<<"$out")"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score is above 2.0"

echo "== sysusers.d / tmpfiles.d"
if [[ $(id -u) -ne 0 ]]; then
    echo "skipped (needs root to chown inside the staged root)"
    exit 0
fi
touch "$root/etc/passwd" "$root/etc/group" "$root/etc/shadow" "$root/etc/gshadow"
systemd-sysusers --root="$root" "$units/reel.sysusers" 2>/dev/null || fail "systemd-sysusers rejected reel.sysusers"
grep -q '^reel:' "$root/etc/passwd" || fail "sysusers did not create user reel"
grep -q '^reel-clients:' "$root/etc/group" || fail "sysusers did not create group reel-clients"
rc=0
out=$(systemd-tmpfiles --root="$root" --create "$units/reel.tmpfiles" 2>&1) || rc=$?
[[ $rc -eq 0 && -z "$out" ]] || fail "systemd-tmpfiles (exit $rc):"$'\n'"$out"
uid() { sed -n "s/^$1:x:\([0-9]*\):.*/\1/p" "$root/etc/$2"; }
reel=$(uid reel passwd); clients=$(uid reel-clients group)
expect() {  # path mode owner-uid group-gid
    local got; got=$(stat -c '%a %u %g' "$root$1")
    [[ "$got" == "$2 $3 $4" ]] || fail "$1 is '$got', expected '$2 $3 $4'"
}
expect /var/spool/reel/incoming 3770 "$reel" "$clients"
expect /var/spool/reel/tmp 3770 "$reel" "$clients"
expect /var/spool/reel/rejected 2750 "$reel" "$clients"
expect /srv/reel/output 2750 "$reel" "$clients"
echo "users, groups and spool/output modes as intended"
echo "check-units: OK"
