# shellcheck shell=bash
# chaos-tests/lib/hosts.sh -- agents on their own (virtual) hosts, and the
# network faults between them. Source it from a scenario (it sources
# tests/fixtures/sync.sh: slapd, the SCIM fixture, agent configs). Needs root,
# iproute2 and nftables.
#
# Topology of one run (names carry a random run id, so parallel runs and a
# run's leftovers never clash):
#
#   root namespace: bridge ${CHAOS_ID}br with 10.A.B.1/24; slapd and the SCIM
#     server on 127.0.0.1 as the fixtures start them, each reached by the
#     agents through a faultproxy listening on the bridge address
#     (CHAOS_LDAP_URL = ldap://10.A.B.1:3890/, CHAOS_SCIM_URL =
#     http://10.A.B.1:8080/scim/v2), controllable with chaos_proxy ldap|scim CMD
#   namespace ${CHAOS_ID}-hI per agent I: eth0 (a veth whose other end
#     ${CHAOS_ID}vI is on the bridge) with 10.A.B.(10+I); the agent's raft
#     address is 10.A.B.(10+I):7001 and its control address :8001, reached from
#     the root namespace (the test) over the bridge.
#
#   hosts_setup N              bridge, N namespaces, the two proxies
#   hosts_cluster N            agent configs (tests/fixtures/sync.sh's mapping)
#                              for N agents, started: AGENT_PID[I]
#   CHAOS_TARGET=entra         (set before sourcing) the agents export to the
#                              Graph fixture instead (tests/fixtures/graph.sh,
#                              entra.sh's config and mapping; target.kind
#                              entra), through the proxy `graph` (10.A.B.1:8080:
#                              CHAOS_GRAPH_URL, CHAOS_GRAPH_TOKEN_URL); the
#                              checker runs with --target entra
#   chaos_target_count Users|Groups
#                              objects in the target (either fixture)
#   host_start I               starts agent I in its namespace (CHAOS_AGENT_WRAP:
#                              words before the agent, @ID@ = I, e.g. env LD_PRELOAD=...)
#   host_kill I                SIGKILL, reaped (agent_stop I KILL)
#   host_pause I / host_cont I SIGSTOP / SIGCONT
#   host_running I             true while agent I's process exists
#   host_leader [I...]         prints the ready leader among the (running)
#                              agents, or fails
#   host_term I                prints agent I's term
#   host_link_down I / host_link_up I
#                              the bridge end of I's veth down/up: I loses
#                              every peer and slapd and the target
#   host_flap I DOWN_MS UP_MS COUNT
#                              in the background (FLAP_PID): COUNT times down
#                              for DOWN_MS, up for UP_MS
#   host_partition "I..." "J..."
#                              drops every packet between the two sets of agents
#                              (nftables in each agent's namespace); slapd and the
#                              target stay reachable from both sides, as when
#                              the link between two sites breaks
#   host_isolate I             I reaches nobody and nobody reaches I (peers,
#                              slapd and the target too)
#   host_loss I PCT            drops PCT % of the packets between I and the
#                              other agents, at random (nftables numgen)
#   hosts_heal                 every nftables rule gone, every link up
#   chaos_proxy ldap|scim|raftJ CMD
#                              one command to a proxy (see proxy/faultproxy.c);
#                              prints its answer. raftJ: with CHAOS_RAFT_PROXY=1
#                              before hosts_cluster, every raft connection to
#                              agent J goes through the proxy raftJ
#
# Cleanup: processes, namespaces, the bridge and the temp dir go on every exit
# path (lib.sh's EXIT trap, also run on INT and TERM). A run killed with
# SIGKILL cannot clean up: the next run's hosts_setup removes what a dead run
# left behind (its record in /run/canopy-chaos names its pid).

CHAOS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CANOPY_SOURCE_DIR=${CANOPY_SOURCE_DIR:-$(cd "$CHAOS_DIR/.." && pwd)}
# shellcheck source=../../tests/fixtures/sync.sh
source "$CANOPY_SOURCE_DIR/tests/fixtures/sync.sh"
CHAOS_TARGET=${CHAOS_TARGET:-scim}
case $CHAOS_TARGET in
scim) ;;
entra)
	# shellcheck source=../../tests/fixtures/entra.sh
	source "$CANOPY_SOURCE_DIR/tests/fixtures/entra.sh" ;;
*) fail "CHAOS_TARGET=$CHAOS_TARGET: scim or entra" ;;
esac

CHAOS_REG=/run/canopy-chaos
FAULTPROXY=${FAULTPROXY:-$CANOPY_BUILD_DIR/chaos-tests/faultproxy}
CHAOS_HOSTS=0
CHAOS_ID=""
declare -A CHAOS_IP CHAOS_PROXY_CTL

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# wait_for SECS CMD...: polls CMD every 50 ms until it succeeds or SECS of
# wall-clock time passed.
wait_for() {
	local secs=$1 end; shift
	end=$(($(now_ms) + secs * 1000))
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "$(now_ms)" -lt "$end" ] || return 1
		sleep 0.05
	done
}

# _chaos_remove ID: every namespace, link and registry entry of run ID.
_chaos_remove() {
	local id=$1 ns pid
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$id-h"); do
		# Whatever still runs in it (a dead run's agents died with it through
		# pdeathsig, but be sure): only pids inside this namespace.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
	ip link del "${id}br" 2>/dev/null || true
	for pid in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep "^${id}v"); do
		ip link del "$pid" 2>/dev/null || true
	done
	if [ -f "$CHAOS_REG/$id" ]; then
		local tmp
		tmp=$(sed -n 's/^tmp=//p' "$CHAOS_REG/$id")
		[ -n "$tmp" ] && [ "$tmp" != "${FIXTURE_TMP:-}" ] && [ -d "$tmp" ] && rm -rf "$tmp"
		rm -f "$CHAOS_REG/$id"
	fi
}

# Leftovers of runs that were killed before they could clean up.
_chaos_reap_stale() {
	local f id pid
	mkdir -p "$CHAOS_REG"
	for f in "$CHAOS_REG"/*; do
		[ -f "$f" ] || continue
		id=$(basename "$f")
		pid=$(sed -n 's/^pid=//p' "$f")
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then continue; fi
		echo "hosts: removing the leftovers of dead run $id" >&2
		_chaos_remove "$id"
	done
	# namespaces of a run that died before writing its record
	for id in $(ip netns list 2>/dev/null | awk '{print $1}' | sed -n 's/^\(cx[0-9a-f]\{4\}\)-h[0-9]*$/\1/p' | sort -u); do
		[ -f "$CHAOS_REG/$id" ] || { echo "hosts: removing unrecorded namespaces of $id" >&2; _chaos_remove "$id"; }
	done
}

hosts_teardown() {
	local i
	[ -n "$CHAOS_ID" ] || return 0
	[ -n "${FLAP_PID:-}" ] && kill -KILL "$FLAP_PID" 2>/dev/null
	for i in "${!AGENT_PID[@]}"; do
		kill -KILL "${AGENT_PID[$i]}" 2>/dev/null || true
		kill -CONT "${AGENT_PID[$i]}" 2>/dev/null || true
		wait "${AGENT_PID[$i]}" 2>/dev/null || true
	done
	_chaos_remove "$CHAOS_ID"
	CHAOS_ID=""
}

_chaos_subnet_free() { ! ip -o -4 addr show 2>/dev/null | grep -q " 10\.$1\.$2\."; }

# hosts_setup N: the bridge, N agent namespaces, slapd and the SCIM server
# (sync_setup with CHAOS_USERS / CHAOS_GROUPS, default 200 / 10) behind their
# proxies.
hosts_setup() {
	local n=$1 i a b try ns
	[ "$(id -u)" = 0 ] || fail "the chaos suite needs root (network namespaces, nftables)"
	command -v nft >/dev/null || fail "nft not found: scripts/install-deps.sh installs nftables"
	[ -x "$FAULTPROXY" ] || fail "$FAULTPROXY not built (cmake --build build)"
	_chaos_reap_stale
	fixture_tmpdir >/dev/null
	CHAOS_ID=cx$(printf '%04x' $((RANDOM % 65536)))
	while [ -f "$CHAOS_REG/$CHAOS_ID" ]; do CHAOS_ID=cx$(printf '%04x' $((RANDOM % 65536))); done
	printf 'pid=%s\ntmp=%s\n' "$$" "$FIXTURE_TMP" >"$CHAOS_REG/$CHAOS_ID"
	at_exit hosts_teardown
	for ((try = 0; try < 50; try++)); do
		a=$((100 + RANDOM % 100)) b=$((RANDOM % 256))
		_chaos_subnet_free "$a" "$b" && break
	done
	CHAOS_NET=10.$a.$b
	CHAOS_BRIDGE_IP=$CHAOS_NET.1
	ip link add "${CHAOS_ID}br" type bridge || fail "cannot make a bridge"
	ip addr add "$CHAOS_BRIDGE_IP/24" dev "${CHAOS_ID}br"
	ip link set "${CHAOS_ID}br" up
	for ((i = 1; i <= n; i++)); do
		ns=$CHAOS_ID-h$i
		CHAOS_IP[$i]=$CHAOS_NET.$((10 + i))
		ip netns add "$ns" || fail "ip netns add $ns"
		ip link add "${CHAOS_ID}v$i" type veth peer name eth0 netns "$ns" || fail "veth for $ns"
		ip link set "${CHAOS_ID}v$i" master "${CHAOS_ID}br" up
		ip -n "$ns" addr add "${CHAOS_IP[$i]}/24" dev eth0
		ip -n "$ns" link set lo up
		ip -n "$ns" link set eth0 up
		ip netns exec "$ns" nft -f - <<EOF || fail "nftables in $ns"
table inet chaos {
	chain input { type filter hook input priority 0; policy accept; }
	chain output { type filter hook output priority 0; policy accept; }
}
EOF
	done
	CHAOS_HOSTS=$n
	if [ "$CHAOS_TARGET" = entra ]; then
		slapd_start "${CHAOS_USERS:-200}" "${CHAOS_GROUPS:-10}" "${CHAOS_NESTED:-}"
		graph_start
		_chaos_proxy_start graph 8080 "127.0.0.1:$GRAPH_PORT"
		CHAOS_GRAPH_URL=http://$CHAOS_BRIDGE_IP:8080/v1.0
		CHAOS_GRAPH_TOKEN_URL=${GRAPH_TOKEN_URL/127.0.0.1:$GRAPH_PORT/$CHAOS_BRIDGE_IP:8080}
	else
		sync_setup "${CHAOS_USERS:-200}" "${CHAOS_GROUPS:-10}" "${CHAOS_NESTED:-}"
		_chaos_proxy_start scim 8080 "127.0.0.1:$SCIM_PORT"
		CHAOS_SCIM_URL=http://$CHAOS_BRIDGE_IP:8080/scim/v2
	fi
	_chaos_proxy_start ldap 3890 "127.0.0.1:$SLAPD_PORT"
	CHAOS_LDAP_URL=ldap://$CHAOS_BRIDGE_IP:3890/
	echo "hosts: run $CHAOS_ID, net $CHAOS_NET.0/24, $n hosts, dir $FIXTURE_TMP" >&2
}

# _chaos_proxy_start NAME PORT UPSTREAM
_chaos_proxy_start() {
	local name=$1 port=$2 to=$3 ctl out i
	ctl=$(free_port)
	out=$(fixture_tmpdir)/proxy-$name.log
	spawn "proxy-$name" "$out" "$FAULTPROXY" --listen "$CHAOS_BRIDGE_IP:$port" --to "$to" --control "127.0.0.1:$ctl"
	for ((i = 0; i < 100; i++)); do
		grep -q '^listening' "$out" 2>/dev/null && break
		sleep 0.05
	done
	grep -q '^listening' "$out" || fail "faultproxy $name did not start: $(cat "$out")"
	CHAOS_PROXY_CTL[$name]=$ctl
}

chaos_proxy() {
	local name=$1; shift
	local ans
	exec 7<>"/dev/tcp/127.0.0.1/${CHAOS_PROXY_CTL[$name]}" || return 1
	printf '%s\n' "$*" >&7
	IFS= read -r -t 5 ans <&7
	exec 7>&-
	echo "$ans"
	[[ $ans == ok* ]]
}

# hosts_cluster N: configs for agents 1..N (raft and control on their own
# addresses, source and target through the proxies), all started.
hosts_cluster() {
	local n=$1 i members=""
	for ((i = 1; i <= n; i++)); do
		AGENT_RAFT[$i]=${CHAOS_IP[$i]}:7001
		AGENT_CTL[$i]=${CHAOS_IP[$i]}:8001
		members+="\"$i@${AGENT_RAFT[$i]}\""
		[ "$i" -lt "$n" ] && members+=", "
	done
	# The control API listens on a non-loopback address: the agent then
	# requires a bearer token for mutations (docs/configuration.md, control).
	CHAOS_CONTROL_TOKEN=$(fixture_tmpdir)/control.token
	(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$CHAOS_CONTROL_TOKEN")
	for ((i = 1; i <= n; i++)); do
		if [ "$CHAOS_TARGET" = entra ]; then
			SLAPD_URL=$CHAOS_LDAP_URL GRAPH_URL=$CHAOS_GRAPH_URL DELETE_THRESHOLD=$DELETE_THRESHOLD \
				entra_config "$i" "$(GRAPH_TOKEN_URL=$CHAOS_GRAPH_TOKEN_URL entra_secret_auth)" "[$members]"
		else
			SLAPD_URL=$CHAOS_LDAP_URL SCIM_URL=$CHAOS_SCIM_URL sync_agent_config "$i" "[$members]"
		fi
		printf 'control:\n  token_file: %s\n' "$CHAOS_CONTROL_TOKEN" >>"$(fixture_tmpdir)/agent$i.yaml"
		# A scenario's extra YAML (e.g. a data dir elsewhere) goes at the end.
		[ -n "${CHAOS_EXTRA_YAML:-}" ] && printf '%s\n' "$CHAOS_EXTRA_YAML" >>"$(fixture_tmpdir)/agent$i.yaml"
	done
	[ "${CHAOS_RAFT_PROXY:-}" = 1 ] && _chaos_raft_proxies "$n"
	for ((i = 1; i <= n; i++)); do host_start "$i"; done
}

# _chaos_raft_proxies N: every raft connection to agent J passes through the
# proxy raftJ (root namespace, bridge address, port 17000+J): each other
# agent's namespace DNATs its new connections to J's raft port there. The
# agents keep their real addresses in cluster.members; only the path changes.
# So chaos_proxy raftJ CMD acts on everything sent to J (raft_uv opens one
# connection per direction: J's answers travel on J's own connections, through
# the proxies of their receivers).
_chaos_raft_proxies() {
	local n=$1 i j
	for ((j = 1; j <= n; j++)); do
		_chaos_proxy_start "raft$j" $((17000 + j)) "${CHAOS_IP[$j]}:7001"
	done
	for ((i = 1; i <= n; i++)); do
		{
			echo "table ip chaosnat {"
			echo "	chain out { type nat hook output priority -100; policy accept;"
			for ((j = 1; j <= n; j++)); do
				[ "$i" = "$j" ] && continue
				echo "		ip daddr ${CHAOS_IP[$j]} tcp dport 7001 dnat to $CHAOS_BRIDGE_IP:$((17000 + j))"
			done
			echo "	}"
			echo "}"
		} | ip netns exec "$CHAOS_ID-h$i" nft -f - || fail "raft DNAT in agent $i's namespace"
	done
}

host_start() {
	local id=$1 dir
	dir=$(fixture_tmpdir)
	# ip netns exec execs the agent itself: AGENT_PID is the agent's pid, and
	# the pdeathsig set by spawn's setpriv survives the exec.
	# CHAOS_AGENT_WRAP: words put before the agent (e.g. env VAR=... for
	# libfaketime), @ID@ replaced by the agent's id; they must exec it.
	local wrap=${CHAOS_AGENT_WRAP:-}
	wrap=${wrap//@ID@/$id}
	# shellcheck disable=SC2086 # the wrapper is a list of words
	spawn "agent$id" "$dir/agent$id.log.tmp" ip netns exec "$CHAOS_ID-h$id" $wrap "$CANOPY_AGENT" --config "$dir/agent$id.yaml"
	AGENT_PID[$id]=$SPAWNED_PID
	at_exit "cat '$dir/agent$id.log.tmp' >> '$dir/agent$id.log' 2>/dev/null; : > '$dir/agent$id.log.tmp'"
}

chaos_target_count() {
	if [ "$CHAOS_TARGET" = entra ]; then
		graph_ctl GET stats | json_get "j.${1,,}"
	else
		scim_count "$1"
	fi
}

host_kill() { agent_stop "$1" KILL; }
host_pause() { kill -STOP "${AGENT_PID[$1]}"; }
host_cont() { kill -CONT "${AGENT_PID[$1]}"; }
host_running() { [ -n "${AGENT_PID[$1]:-}" ] && kill -0 "${AGENT_PID[$1]}" 2>/dev/null; }

host_leader() {
	local i ids=("$@")
	[ ${#ids[@]} -gt 0 ] || for ((i = 1; i <= CHAOS_HOSTS; i++)); do ids+=("$i"); done
	for i in "${ids[@]}"; do
		host_running "$i" || continue
		[ "$(json_eval "$(agent_status "$i" 2>/dev/null || echo '{}')" 'j.role==="leader" && j.leader_ready===true')" = true ] &&
			{ echo "$i"; return 0; }
	done
	return 1
}

host_term() { json_eval "$(agent_status "$1" 2>/dev/null || echo '{}')" 'j.term'; }

host_link_down() { ip link set "${CHAOS_ID}v$1" down; }
host_link_up() { ip link set "${CHAOS_ID}v$1" up; }

host_flap() {
	local id=$1 down=$2 up=$3 count=$4 link=${CHAOS_ID}v$1
	(
		for ((k = 0; k < count; k++)); do
			ip link set "$link" down
			sleep "$(awk -v m="$down" 'BEGIN{print m/1000}')"
			ip link set "$link" up
			sleep "$(awk -v m="$up" 'BEGIN{print m/1000}')"
		done
	) &
	FLAP_PID=$!
}

_chaos_nft() { ip netns exec "$CHAOS_ID-h$1" nft "${@:2}"; }

# _chaos_drop I IP [EXPR]: in I's namespace, drop traffic to and from IP
# (EXPR: an extra match before the verdict, e.g. numgen random mod 100 < 20).
_chaos_drop() {
	local i=$1 ip=$2 extra=${3:-}
	# shellcheck disable=SC2086 # EXTRA is a list of nft words
	_chaos_nft "$i" add rule inet chaos input ip saddr "$ip" $extra drop &&
		_chaos_nft "$i" add rule inet chaos output ip daddr "$ip" $extra drop ||
		fail "nft in agent $i's namespace refused: ip $ip $extra drop"
}

host_partition() {
	local a b
	for a in $1; do
		for b in $2; do
			_chaos_drop "$a" "${CHAOS_IP[$b]}"
			_chaos_drop "$b" "${CHAOS_IP[$a]}"
		done
	done
}

host_isolate() {
	local i=$1
	_chaos_nft "$i" add rule inet chaos input iifname eth0 drop
	_chaos_nft "$i" add rule inet chaos output oifname eth0 drop
}

host_loss() {
	local i=$1 pct=$2 j match
	# nft's numgen mod 100 yields 0..99: 100 % is a plain drop (it refuses
	# the comparison with 100), 0 % no rule at all
	[ "$pct" -le 0 ] && return 0
	[ "$pct" -lt 100 ] && match="numgen random mod 100 < $pct"
	for ((j = 1; j <= CHAOS_HOSTS; j++)); do
		[ "$j" = "$i" ] && continue
		_chaos_drop "$i" "${CHAOS_IP[$j]}" "${match:-}"
	done
}

hosts_heal() {
	local i
	[ -n "${FLAP_PID:-}" ] && { kill "$FLAP_PID" 2>/dev/null; wait "$FLAP_PID" 2>/dev/null; FLAP_PID=""; }
	for ((i = 1; i <= CHAOS_HOSTS; i++)); do
		_chaos_nft "$i" flush chain inet chaos input
		_chaos_nft "$i" flush chain inet chaos output
		host_link_up "$i"
	done
}
