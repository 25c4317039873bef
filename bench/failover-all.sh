#!/usr/bin/env bash
# bench/failover-all.sh [KILLS] -- bench/failover.sh for T = 1000 and T = 300 ms,
# one after the other; prints both summaries. Exit status: the worst of the two.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kills=${1:-10}
rc=0
for t in 1000 300; do
	bash "$here/failover.sh" "$kills" "$t" || { r=$?; [ "$r" -gt "$rc" ] && rc=$r; }
done
exit "$rc"
