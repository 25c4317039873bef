#!/usr/bin/env bash
# chaos-tests/check.sh -- the verdict of a chaos run: did the cluster lose,
# duplicate or reorder anything?
#
#   check.sh --ldap-url URL --bind-dn DN --password-file F
#            --scim URL|STORE_FILE --audit-url URL|FILE --cursor-log FILE
#            --status URL|FILE [--status URL|FILE ...] [URL|FILE ...]
#            [--config AGENT_YAML] [--settle SEC] [--quiet-ms N]
#            [--log WORKLOAD_LOG] [--inflight-ms N]
#            [--users-base B] [--users-filter F] [--groups-base G] [--groups-filter F]
#   check.sh --target entra --graph URL|DUMP_FILE [--anchor-property P] ...
#            (the same options, --graph instead of --scim)
#
#   --target     scim (default) or entra: which fixture the agents export to
#   --graph      --target entra: the Graph fixture's base URL (.../v1.0: its
#                /_test/dump is read) or a file holding GET /_test/dump
#   --anchor-property
#                --target entra: the property holding the anchor (default:
#                extension_{target.auth.client_id without dashes}_canopyAnchor
#                from --config, as sync/target/entra.h names it)
#   --scim       the SCIM fixture's base URL (.../scim/v2: its /_test/store is
#                read) or a file holding GET /_test/store
#   --audit-url  the fixture's /_test/audit (or its base URL .../scim/v2), or
#                the audit file (JSON lines, as scim_start writes it; or a
#                JSON array)
#   --cursor-log chaos-tests/cursor-watch.sh's output for the whole run
#   --status     each agent's control address (host:port or URL; .../v1/status
#                is added) or a file holding one status answer; every one must
#                answer (pass only the agents that should be up)
#   --config     one agent's YAML: source.users/groups base, filter, exclude
#                give the scope (default: tests/fixtures/sync.sh's bases and
#                filters; --users-base etc. override), safety.deprovision,
#                target.timeout_ms and cluster.election_timeout_ms the
#                in-flight bound; source.users.member_of is refused (not
#                compared). --mapping FILE is the same option.
#   --settle     how long to wait for the cluster to settle (default 120 s:
#                a change in the retry set waits out its backoff, 1 s doubling
#                up to retry_max; returns as soon as it is settled)
#   --log        workload.sh's log: ops= counts its applied ops, and each
#                difference names the last op on that object
#
# First it waits (at most --settle) until the cluster is settled: every agent
# answers, there is one ready leader, its sync is idle with an empty retry set
# and no staged delete, every agent has applied what the leader had committed
# a poll before, and the leader's cursor, batch count and digest have not
# changed for --quiet-ms (1000). Then, four checks:
#
# 1. lost: the target equals the source as mapped (tests/fixtures/compare.js,
#    the mapping of tests/fixtures/sync.sh): every object in scope present by
#    its anchor (entryUUID = externalId, so renames and moves are followed)
#    with every mapped attribute, every member that names an object in scope,
#    and nothing else (with safety.deprovision: disable, a user out of scope
#    may stay with active: false; an in-scope user must not be disabled).
#    A difference is looked at again for 5 s. lost = objects that differ (a
#    duplicate externalId in the store counts as dup instead).
#    --target entra: tests/fixtures/graph_compare.js instead, the mapping of
#    tests/fixtures/entra.sh (objects matched by the anchor property; two
#    objects with one anchor count as dup).
# 2. dup / stale, from the SCIM audit (tests/fixtures/audit.js, which the
#    failover tests and bench/failover-audit.js use too). Only canopy's writes
#    (those with X-Canopy-Term) are judged; a write is effective when answered
#    2xx or not at all (status null). --target entra: the Graph fixture's
#    audit (tests/fixtures/graph/README.md), its POST / PATCH / DELETE of
#    /users and /groups, keyed by the anchor the fixture records; a create is
#    POST /users or /groups answered 201; a request inside a $batch counts
#    on its own (the fixture gives it the envelope's fencing headers).
#    dup: a create (POST 201) of an externalId that exists at that point of
#      the audit (created and not deleted since).
#    stale: an effective write of term t audited after the first write of a
#      newer term t', unless it is a request in flight at the loss, which must
#      be an idempotent repeat. Precisely, excused when both:
#        (a) it is audited at most --inflight-ms after t''s first write
#            (default target.timeout_ms + cluster.election_timeout_ms from
#            --config, else 30000 + 1000: the longest a request the old leader
#            sent before its lease ran out can take to land; the new leader
#            waits that long before redoing in-doubt objects,
#            docs/architecture.md "Intents"), and
#        (b) the same object (externalId, else path) is written again later
#            in the audit by a term >= t' (the redo: its effect is superseded).
#      Also stale: a term written by two nodes (one leader per term).
# 3. cursor_back: the committed cursor never moves backwards. Every answer in
#    the cursor log (and the final ones) gives the cursor in a node's applied
#    state at its applied_index; committed entries never change, so ordered by
#    applied index (the log's order, and so term order) across all nodes and
#    restarts it is the cluster's cursor history. Counted: an index at which
#    a session's CSN (per server id) is lower than at a lower index, or two
#    nodes show different cursors. (A session's cookie may disappear: the
#    engine drops it when the session must be read again in full -- an
#    in-doubt repair, a resync -- so a leader that fails mid-refresh leaves
#    the full read to the next one; that reads more, it loses nothing.) For a
#    cursor that is not canopy's OpenLDAP format: a value that comes back
#    after another one.
# 4. digest: every agent's state.digest is equal (looked at up to 10 times,
#    300 ms apart, in case a follower is an entry behind).
#
# Output: detail lines (indented, naming objects, writes, indexes), then ONE
# line (notes for the record, e.g. excused in-flight writes, go to stderr):
#   chaos: PASS|FAIL lost=N dup=N stale=N cursor_back=N digest=equal|differ objects=N ops=N
# objects = objects in scope in the source; ops = applied workload ops (0
# without --log). Exit 0 on PASS, 1 on FAIL (a cluster that did not settle is
# a FAIL with a "did not settle" detail, and so is an input that cannot be
# read: slapd, the store, the audit or the cursor log), 2 on wrong arguments.
exec node "$(dirname "${BASH_SOURCE[0]}")/checker/check.js" "$@"
