#!/usr/bin/env bash
# sync_member_renamed_away_test.sh with target.nested_groups: flatten: a member
# renamed away leaves its groups and, through them, every group above (the
# transitive users are planned from the records: nested.c).
TARGET_NESTED_GROUPS=flatten exec bash "$(dirname "$0")/sync_member_renamed_away_test.sh"
