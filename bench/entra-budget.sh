#!/usr/bin/env bash
# bench/entra-budget.sh [BUDGET...] -- the entra target's throughput against
# the Graph fixture's request budget (a token bucket, 429 + Retry-After when
# over), one row per budget (default 20 50 100 requests a second), with
# target.max_requests_per_s equal to the budget: the initial sync of 1,000
# users (about 2,100 requests) through
# tests/integration/entra_throttle_budget_test.sh. ratio = requests a second
# over the steady part (the middle 80 % of the requests) / the budget; 429s
# are the fraction of requests Graph refused. Asserts nothing. Needs a build
# with tests (BUILD, default <source>/build) and root for slapd as the
# integration tests do; about 45 s + 2,100/BUDGET s a row.
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$SRC/build}
[ $# -gt 0 ] || set -- 20 50 100
echo "| budget (requests/s) | requests | measured (requests/s) | ratio | 429s |"
echo "|---|---|---|---|---|"
rc=0
for b in "$@"; do
	out=$(BUDGET=$b CANOPY_BUILD_DIR=$BUILD CANOPY_SOURCE_DIR=$SRC \
		bash "$SRC/tests/integration/entra_throttle_budget_test.sh" 2>&1)
	line=$(grep -E "^budget $b/s: [0-9]+ requests" <<<"$out" | tail -n 1)
	if [ -z "$line" ]; then
		echo "| $b | (run failed) | | | |"
		tail -n 5 <<<"$out" >&2
		rc=1
		continue
	fi
	read -r total n429 rate < <(sed -E 's/^budget [0-9.]+\/s: ([0-9]+) requests, ([0-9]+) answered 429, ([0-9.]+) requests.*/\1 \2 \3/' <<<"$line")
	awk -v b="$b" -v t="$total" -v n="$n429" -v r="$rate" \
		'BEGIN { printf "| %s | %d | %.1f | %.3f | %d (%.2f %%) |\n", b, t, r, r / b, n, 100 * n / t }'
done
exit $rc
