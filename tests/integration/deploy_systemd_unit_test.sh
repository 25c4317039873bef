#!/usr/bin/env bash
# deploy/systemd/canopy-agent.service is hardened (systemd-analyze security
# --offline: exposure 2.0 or less, no directive it does not know), prevents
# restarts on the agent's config-error exit code, runs the canopy user with
# a 0700 state directory that deploy/sysusers.d and deploy/tmpfiles.d
# create, and names only man pages the repository has. Skipped (exit 77)
# without systemd-analyze.
source "$(dirname "$0")/../fixtures/lib.sh"
src=$CANOPY_SOURCE_DIR
unit=$src/deploy/systemd/canopy-agent.service

if ! command -v systemd-analyze >/dev/null; then
	echo "skip: systemd-analyze is not installed (Debian package systemd); the unit was not checked" >&2
	exit 77
fi
out=$(systemd-analyze security --offline=true "$unit" 2>&1) || fail "systemd-analyze security: $out"
! grep -qiE 'unknown (key|lvalue)|failed to parse|ignoring' <<<"$out" ||
	fail "systemd-analyze does not take every line of the unit: $(grep -iE 'unknown|failed|ignoring' <<<"$out")"
score=$(sed -n 's/.*Overall exposure level for canopy-agent.service: \([0-9.]*\).*/\1/p' <<<"$out")
[ -n "$score" ] || fail "no exposure level in: $out"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score > 2.0: $out"
pass "systemd-analyze security --offline: exposure $score"

code=$(sed -n 's/^#define AGENT_EXIT_CONFIG \([0-9]*\)$/\1/p' "$src/agent/agent.h")
[ -n "$code" ] || fail "AGENT_EXIT_CONFIG not found in agent/agent.h"
grep -qx "RestartPreventExitStatus=$code" "$unit" || fail "the unit does not prevent restarts on exit $code"
grep -qx 'User=canopy' "$unit" && grep -qx 'StateDirectory=canopy' "$unit" &&
	grep -qx 'StateDirectoryMode=0700' "$unit" || fail "the unit does not run canopy with a 0700 state dir"
grep -qE '^u canopy ' "$src/deploy/sysusers.d/canopy.conf" || fail "sysusers.d does not create the canopy user"
grep -qE '^d /var/lib/canopy 0700 canopy canopy' "$src/deploy/tmpfiles.d/canopy.conf" ||
	fail "tmpfiles.d does not make /var/lib/canopy 0700 canopy"
grep -q '^ExecReload=.*-HUP' "$unit" && grep -q 'SIGHUP' "$src/agent/agent.c" || fail "ExecReload without a SIGHUP handler"
pass "restarts prevented on exit $code; canopy user and a 0700 data dir; reload is SIGHUP"

for page in $(sed -n 's/^Documentation=//p' "$unit"); do
	[[ $page =~ ^man:([a-z.-]+)\(([0-9])\)$ ]] || fail "Documentation= $page is not a man page"
	[ -f "$src/man/${BASH_REMATCH[1]}.${BASH_REMATCH[2]}" ] || fail "Documentation= names $page: no man/${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
done
pass "Documentation= names installed man pages"
