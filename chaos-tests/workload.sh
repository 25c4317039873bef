#!/usr/bin/env bash
# chaos-tests/workload.sh -- a seeded, reproducible stream of directory changes
# against slapd, one JSON line per op, for the chaos scenarios.
#
#   workload.sh --seed S --ldap-url URL --bind-dn DN --password-file F
#               --users-base B --groups-base G (--ops N | --duration SEC)
#               [--rate PER_SEC] --log FILE [--out-base DN] [--dry-run]
#
# Ops (same seed -> same ops, whatever the server answers): user adds,
# attribute modifies (mapped ones, and `title`, which no mapping reads), renames
# (modrdn of uid), moves between B, ou=staff,B (in scope) and --out-base
# (default ou=chaos-out under B's parent: out of scope when the agents read B),
# deletes, group creates, renames and deletes, membership adds and removes.
# The workload touches only objects it made itself (uid=c<S>u<N>,
# cn=c<S>g<N>), so a run is independent of what the directory held before.
# A rename, move or delete also rewrites the member values naming the entry
# (what slapd's refint overlay would do; the test slapd has none).
#
# --rate: ops per second, spread evenly (default 20; an op slower than that
# delays the next, no burst follows); one ldapmodify per op
# (-o nettimeout=3, killed after 8 s: slapd stopped or paused).
# --dry-run: no LDAP at all; logs the ops with time/ok/rc null, so two dry
# runs with one seed give identical files (--duration SEC then means
# SEC x rate ops).
#
# Log (appended to, so several runs can share one; seq restarts at 1 in
# each): one line per op {"seq","time","op","dn","details":{...new_dn, attributes, member,
# fixups: [groups whose members were rewritten]},"ok","rc","result"}; ok is
# false when the server refused or could not be reached: such an op is not
# expected in the target (the checker reads the directory as it ends up).
# SIGTERM/SIGINT: stops at once (an op on its way is killed and logged with
# ok false, rc null, "outcome unknown"). Exit 0 unless the arguments are
# wrong (2): failed ops are data, not errors.
exec node "$(dirname "${BASH_SOURCE[0]}")/checker/workload.js" "$@"
