#!/usr/bin/env bash
# bench/run.sh at tiny sizes (200 users, 2 s of changes at 10/s, 1 failover
# kill) on the build under test: the table has every row (1. initial sync,
# 2. change latency p50/p99/max, 3. failover, 4. memory and disk, 5. the raft
# commit path, 6. the object table at 2,000 objects) with numbers in canopy's column and, where the row has one, in
# the ceiling and ratio columns; the raw JSON holds the figures. It checks that
# the bench runs and reports, never how fast anything is (CONTRIBUTING.md).
source "$(dirname "$0")/../fixtures/lib.sh"

dir=$(fixture_tmpdir)
out=$dir/table.md
BENCH_NO_BUILD=1 BENCH_BUILD_DIR=$CANOPY_BUILD_DIR BENCH_RESULTS=$dir/results \
	BENCH_SIZES=200:4 BENCH_RATES=10 BENCH_RATE_S=2 BENCH_KILLS=1 BENCH_TABLES=2000 \
	env -u FIXTURE_TMP bash "$CANOPY_SOURCE_DIR/bench/run.sh" --quick >"$out" 2>"$dir/run.err" ||
	fail "bench/run.sh exited $?: $(tail -n 20 "$dir/run.err")"
cat "$out"

num='-?[0-9]+(\.[0-9]+)?'
# row PREFIX COUNT WITH_CEILING: COUNT table rows start with PREFIX, each with a
# number as canopy's figure (and as ceiling and ratio when WITH_CEILING=1)
row() {
	local prefix=$1 want=$2 ceil=$3 n=0 line c1 c2 c3
	while IFS= read -r line; do
		n=$((n + 1))
		IFS='|' read -r _ _ c1 c2 c3 _ <<<"$line"
		c1=${c1// /} c2=${c2// /} c3=${c3// /}
		[[ $c1 =~ ^$num$ ]] || fail "row '$line': canopy's figure is not a number"
		if [ "$ceil" = 1 ]; then
			[[ $c2 =~ ^$num$ && $c3 =~ ^$num$ ]] || fail "row '$line': no ceiling or ratio"
		fi
	done < <(grep -F "| $prefix" "$out")
	[ "$n" = "$want" ] || fail "$want rows '$prefix...' expected, $n in the table"
}
row "1. initial sync, 200 users + 4 groups" 1 1
row "2. change latency at 10/s" 3 1
row "3. failover" 4 1
row "4. " 3 1
row "5. raft commit path" 2 0
row "6. object table, 2000 objects" 5 0
row "6. object table, 2000 objects: RSS bytes per object" 1 1
row "6. object table, 2000 objects: data dir bytes per object" 1 1
pass "the table has every row with numbers"

json=$(ls "$dir"/results/*.json 2>/dev/null | head -n 1)
[ -n "$json" ] && [ -f "${json%.json}.md" ] || fail "no results/<date>-<host>.json and .md"
v=$(json_eval "$(cat "$json")" '[j["size.200.objects"], j["latency.10"].matched, j["size.200.batches_total"] > 0, j.mode, j["table.2000"].check].join(" ")')
[ "$v" = "204 20 true quick skipped" ] || fail "raw figures: $v"
pass "raw figures saved as JSON next to the table"
