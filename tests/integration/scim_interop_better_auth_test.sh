#!/usr/bin/env bash
# Better Auth's SCIM plugin (@better-auth/scim, an independent implementation)
# on its real storage (SQLite through Better Auth's Kysely adapter) as the
# target: the initial sync and the live changes make its store equal the
# directory as mapped. It takes only users as group members ("Group members
# must reference a SCIM User"), so the nested groups go out flattened
# (target.nested_groups: flatten); docs/targets.md, "Interop matrix".
source "$(dirname "$0")/../fixtures/interop.sh"
interop_scenario better-auth flatten
