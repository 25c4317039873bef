#!/usr/bin/env bash
# Both executables answer --version (the version and the git commit of the
# build, "unknown" outside a git checkout) and --help (which lists every
# option); canopy-agent --check-config validates a configuration the way a
# start does and starts nothing: "config OK" and 0 for a good one; for a bad
# one the error a start would print, naming FILE:LINE and the key, and exit
# 78 (EX_CONFIG), which is also what a start on that configuration exits with.
source "$(dirname "$0")/../fixtures/lib.sh"
dir=$(fixture_tmpdir)

version=$(sed -n 's/^project(canopy VERSION \([0-9.]*\).*/\1/p' "$CANOPY_SOURCE_DIR/CMakeLists.txt")
[ -n "$version" ] || fail "no version in CMakeLists.txt"
# the commit: one of this repository's (the build may be older than HEAD),
# or "unknown" outside git
commit_ok() { # COMMIT
	local c=${1%-dirty}
	if git -C "$CANOPY_SOURCE_DIR" rev-parse --git-dir >/dev/null 2>&1; then
		[[ $c =~ ^[0-9a-f]{12}$ ]] && git -C "$CANOPY_SOURCE_DIR" cat-file -e "$c^{commit}" 2>/dev/null
	else
		[ "$1" = unknown ]
	fi
}

# --version
re='^(canopy-agent|canopyctl) ([0-9.]+) \(commit ([0-9a-z-]+)\)$'
for exe in "$CANOPY_AGENT" "$CANOPYCTL"; do
	out=$("$exe" --version) || fail "$exe --version exited $?"
	[[ $out =~ $re ]] && [ "${BASH_REMATCH[1]}" = "$(basename "$exe")" ] ||
		fail "$exe --version: \"$out\" is not \"NAME VERSION (commit COMMIT)\""
	[ "${BASH_REMATCH[2]}" = "$version" ] || fail "$exe --version: \"$out\", want version $version"
	commit_ok "${BASH_REMATCH[3]}" || fail "$exe --version: \"$out\": not a commit of this repository"
done
out=$("$CANOPYCTL" --version --json) || fail "canopyctl --version --json exited $?"
[ "$(json_eval "$out" j.version)" = "$version" ] || fail "canopyctl --version --json: $out"
commit_ok "$(json_eval "$out" j.commit)" || fail "canopyctl --version --json commit: $out"
pass "--version of both: $version, commit $(json_eval "$out" j.commit)"

# a build from a tarball (no .git): the commit is "unknown"
mkdir -p "$dir/tarball"
cmake -DSRC="$dir/tarball" -DOUT="$dir/commit.h" -P "$CANOPY_SOURCE_DIR/cmake/git_commit.cmake" ||
	fail "cmake/git_commit.cmake failed outside git"
grep -qx '#define CANOPY_COMMIT "unknown"' "$dir/commit.h" || fail "outside git: $(cat "$dir/commit.h")"
pass "outside a git checkout the commit is \"unknown\""

# --help: exit 0, on stdout, every option named
out=$("$CANOPY_AGENT" --help) || fail "canopy-agent --help exited $?"
for opt in --config --check-config --help --version; do
	grep -q -- "$opt" <<<"$out" || fail "canopy-agent --help does not mention $opt"
done
grep -q -- "78" <<<"$out" || fail "canopy-agent --help does not give the config-error exit status"
out=$("$CANOPYCTL" --help) || fail "canopyctl --help exited $?"
for opt in --server --token-file --json --help --version status; do
	grep -q -- "$opt" <<<"$out" || fail "canopyctl --help does not mention $opt"
done
rc=0; "$CANOPY_AGENT" --no-such-option >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "canopy-agent with an unknown option exited $rc, want 2"
pass "--help of both lists their options; a usage error exits 2"

# --check-config on a complete, good configuration (source, target, mapping,
# secret files): OK, and nothing started -- no data dir, no port taken
(umask 077; echo bind-pw >"$dir/ldap.secret"; echo scim-token >"$dir/scim.token")
raft=127.0.0.1:$(free_port); ctl=127.0.0.1:$(free_port)
cat >"$dir/good.yaml" <<YAML
node:
  id: 1
  raft_address: $raft
  control_address: $ctl
  data_dir: $dir/data
cluster:
  name: test
  members: ["1@$raft"]
  bootstrap: true
source:
  kind: openldap
  url: ldap://127.0.0.1:1
  bind_dn: cn=admin,dc=example,dc=com
  password_file: $dir/ldap.secret
  users:  { base: "ou=people,dc=example,dc=com", filter: "(objectClass=inetOrgPerson)" }
  groups: { base: "ou=groups,dc=example,dc=com", filter: "(objectClass=groupOfNames)" }
target:
  kind: scim
  url: http://127.0.0.1:1/scim/v2
  token_file: $dir/scim.token
mapping:
  user:
    userName: "[uid]"
  group:
    displayName: "[cn]"
YAML
out=$("$CANOPY_AGENT" --check-config --config "$dir/good.yaml" 2>&1) || fail "good config refused ($?): $out"
[ "$out" = "config OK" ] || fail "good config: printed \"$out\", want \"config OK\""
[ ! -e "$dir/data" ] || fail "--check-config created the data dir"
pass "a good config: \"config OK\", exit 0, no data dir made"

# check_bad NAME LINE_PATTERN: --check-config and a start both refuse it with
# exit 78 and the same message
check_bad() {
	local name=$1 want=$2 out rc=0 start_out start_rc=0
	out=$("$CANOPY_AGENT" --check-config --config "$dir/$name.yaml" 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 78 ] || fail "$name: --check-config exited $rc, want 78: $out"
	grep -qE -- "$want" <<<"$out" || fail "$name: --check-config said \"$out\", want /$want/"
	start_out=$(timeout 20 "$CANOPY_AGENT" --config "$dir/$name.yaml" 2>&1 >/dev/null) || start_rc=$?
	[ "$start_rc" = 78 ] || fail "$name: a start exited $start_rc, want 78: $start_out"
	[ "$(tail -n 1 <<<"$start_out")" = "$out" ] ||
		fail "$name: a start said \"$(tail -n 1 <<<"$start_out")\", --check-config \"$out\""
	[ ! -e "$dir/data" ] || fail "$name: the refused start created the data dir"
	pass "$name: exit 78 from both, \"$out\""
}

# a misspelt key
sed 's/^  token_file:/  tokenfile:/' "$dir/good.yaml" >"$dir/bad-key.yaml"
line=$(grep -n 'tokenfile:' "$dir/bad-key.yaml" | cut -d: -f1)
check_bad bad-key "bad-key\.yaml:$line: target: unknown key \"tokenfile\""

# a value of the wrong type
sed 's/^  name: test/  name: test\n  election_timeout_ms: fast/' "$dir/good.yaml" >"$dir/bad-value.yaml"
line=$(grep -n 'election_timeout_ms:' "$dir/bad-value.yaml" | cut -d: -f1)
check_bad bad-value "bad-value\.yaml:$line: cluster\.election_timeout_ms"

# a secret file others can read: the same check as at start
cp "$dir/good.yaml" "$dir/bad-secret.yaml"
chmod 644 "$dir/scim.token"
check_bad bad-secret "scim\.token.*readable by group or others"
chmod 600 "$dir/scim.token"

# a mapping expression that does not parse
sed 's/userName: "\[uid\]"/userName: "Join(\\" \\", [uid]"/' "$dir/good.yaml" >"$dir/bad-mapping.yaml"
check_bad bad-mapping "bad-mapping\.yaml:.*mapping\.user"

# cluster.tls files that are there but are no certificate: loaded as the
# Raft transport will load them
printf 'not a certificate\n' >"$dir/ca.pem"; cp "$dir/ca.pem" "$dir/node1.pem"
(umask 077; printf 'not a key\n' >"$dir/node1.key")
sed "s|^  bootstrap: true|  bootstrap: true\n  tls: { ca: $dir/ca.pem, cert: $dir/node1.pem, key: $dir/node1.key }|" \
	"$dir/good.yaml" >"$dir/bad-tls.yaml"
check_bad bad-tls "bad-tls\.yaml: cluster\.tls\.ca .*ca\.pem"

