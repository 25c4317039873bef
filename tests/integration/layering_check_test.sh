#!/usr/bin/env bash
# The module layering check (cmake/layering.cmake) passes on this tree and
# fails, naming the file, the include and the rule, when a module includes
# across the rules: a source including a target, raft/ including sync/, the
# engine including a concrete source instead of the port.
source "$(dirname "$0")/../fixtures/lib.sh"
dir=$(fixture_tmpdir)
src=$CANOPY_SOURCE_DIR

check() { cmake -DSRC="$1" -P "$src/cmake/layering.cmake" 2>&1; }

out=$(check "$src") || fail "the tree itself breaks the layering: $out"
pass "this tree keeps the layering"

violate() { # FILE INCLUDE
	rm -rf "$dir/tree" && mkdir -p "$dir/tree"
	cp -r "$src/common" "$src/raft" "$src/sync" "$src/agent" "$dir/tree/"
	sed -i "1a #include \"$2\"" "$dir/tree/$1"
	local rc=0
	out=$(check "$dir/tree") || rc=$?
	[ "$rc" != 0 ] || fail "$1 including $2 was not refused"
	grep -q "$1: #include \"$2\"" <<<"$out" || fail "the refusal does not name $1 and $2: $out"
}
violate sync/source/openldap_port.c sync/target/scim.h
violate raft/node.c sync/state/state.h
violate sync/engine/plan.c sync/source/openldap.h
violate sync/target/scim.c sync/engine.h
pass "cross-module includes are refused with the file, the include and the rule"
