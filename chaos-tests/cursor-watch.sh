#!/usr/bin/env bash
# chaos-tests/cursor-watch.sh -- what every agent says about its log and its
# committed cursor, every ~50 ms, until killed (SIGTERM/SIGINT), for
# chaos-tests/check.sh --cursor-log.
#
#   cursor-watch.sh --out FILE [--interval-ms N] URL...
#
# URL: an agent's control address (host:port, http(s)://host:port, or the full
# .../v1/status URL). One JSON line per answer, appended to FILE:
#   {"time","url","node","role","term","commit_index","applied_index",
#    "leader_ready","cursor","sync_state","digest","objects"}
# cursor is sync.cursor of GET /v1/status: the cursor in the node's applied
# state (the committed cursor as of applied_index); digest is state.digest.
# An agent that does not answer (killed, partitioned, paused: 1 s timeout)
# gives {"time","url","error"}. A poll is skipped while the previous one to
# the same agent is still waiting.
exec node "$(dirname "${BASH_SOURCE[0]}")/checker/cursor-watch.js" "$@"
