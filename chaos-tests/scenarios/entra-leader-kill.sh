#!/usr/bin/env bash
# chaos-tests/scenarios/entra-leader-kill.sh [--long [SECS]] -- leader-kill.sh
# against Entra ID: the agents export to the Graph fixture (target.kind entra,
# tests/fixtures/entra.sh's mapping) through a fault proxy, and the leader is
# SIGKILLed once during the initial sync and then under a steady change
# stream; each killed agent is restarted and must rejoin. The checker runs
# with --target entra: Graph equals the directory as mapped (users, nested
# groups, memberships), no object created twice (POST 201 of an anchor that
# existed, or two objects with one anchor), no write of a term after a newer
# term's first write (the fixture audits canopy's X-Canopy-Term / -Node).
#
# Short mode: 300 users and 10 groups (nested), 1 kill during the initial
# sync + 3 under 10 changes a second. Env as leader-kill.sh (CHAOS_T,
# CHAOS_KILLS, CHAOS_RATE, CHAOS_EARLY, CHAOS_USERS, CHAOS_GROUPS;
# TARGET_TIMEOUT_MS, default 5000).
export CHAOS_TARGET=entra
export CHAOS_USERS=${CHAOS_USERS:-300} CHAOS_GROUPS=${CHAOS_GROUPS:-10} CHAOS_NESTED=${CHAOS_NESTED-1}
export CHAOS_RATE=${CHAOS_RATE:-10}
# the in-doubt repair waits target.timeout_ms + T before the checker can
# call the cluster settled; the fixture answers in milliseconds
export TARGET_TIMEOUT_MS=${TARGET_TIMEOUT_MS:-5000}
exec bash "$(dirname "$0")/leader-kill.sh" "$@"
