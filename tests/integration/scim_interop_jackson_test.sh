#!/usr/bin/env bash
# BoxyHQ Polis Directory Sync (@boxyhq/saml-jackson, an independent
# implementation) on its real storage (its SQL engine over SQLite) as the
# target: the initial sync and the live changes make its store equal the
# directory as mapped, nested groups included (it stores any id as a member);
# docs/targets.md, "Interop matrix".
source "$(dirname "$0")/../fixtures/interop.sh"
interop_scenario jackson native kept
