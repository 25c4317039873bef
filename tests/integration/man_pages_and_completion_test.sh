#!/usr/bin/env bash
# The man pages canopy-agent(8), canopyctl(8), canopy.yaml(5) render with
# `man -l` without a warning, carry the version of the build and name every
# option --help lists; the bash completion of canopyctl completes its
# commands, their sub-commands and flags (COMP_WORDS as bash sets them), and
# knows every command `canopyctl --help` lists; `cmake --install` puts the
# pages, the completion and the systemd files in place.
source "$(dirname "$0")/../fixtures/lib.sh"
dir=$(fixture_tmpdir)
src=$CANOPY_SOURCE_DIR

command -v man >/dev/null || { echo "skip: man is not installed (Debian man-db)" >&2; exit 77; }
version=$(sed -n 's/^project(canopy VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
for page in canopy-agent.8 canopyctl.8 canopy.yaml.5; do
	f=$src/man/$page
	warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$f" 2>&1 >"$dir/$page.txt") ||
		fail "man -l $page failed: $warn"
	[ -z "$warn" ] || fail "man -l $page warns: $warn"
	[ "$(wc -l <"$dir/$page.txt")" -gt 20 ] || fail "$page rendered to almost nothing"
	grep -q "^\.TH .* \"canopy $version\"" "$f" || fail "$page is not marked canopy $version"
done
pass "the three pages render without warnings"

# every long option of --help is in the page (the page follows --help)
for pair in "canopy-agent.8:$CANOPY_AGENT" "canopyctl.8:$CANOPYCTL"; do
	page=${pair%%:*}
	for opt in $("${pair#*:}" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
		grep -q -- "${opt//-/\\\\-}" "$src/man/$page" || fail "$page does not document $opt (in --help)"
	done
done
pass "the pages document every option --help lists"

# completion: source it and call the function as bash would
source "$src/deploy/bash-completion/canopyctl"
complete_words() { # WORDS... (the last one is being completed)
	COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()
	_canopyctl
	printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '
}
[ "$(complete_words canopyctl '')" = "certs cluster config deletes drill expr failed logs plan provision resume resync status " ] ||
	fail "commands: $(complete_words canopyctl '')"
[ "$(complete_words canopyctl cl)" = "cluster " ] || fail "cl: $(complete_words canopyctl cl)"
[ "$(complete_words canopyctl --server 127.0.0.1:8001 cluster '')" = "abort add remove transfer " ] ||
	fail "cluster after --server: $(complete_words canopyctl --server 127.0.0.1:8001 cluster '')"
[ "$(complete_words canopyctl deletes a)" = "approve " ] || fail "deletes a: $(complete_words canopyctl deletes a)"
[ "$(complete_words canopyctl drill failover --mode '')" = "crash transfer " ] || fail "--mode"
[ "$(complete_words canopyctl logs --e)" = "--errors " ] || fail "logs --e: $(complete_words canopyctl logs --e)"
[ "$(complete_words canopyctl logs --c)" = "--cluster " ] || fail "logs --c: $(complete_words canopyctl logs --c)"
[ "$(complete_words canopyctl --v)" = "--version " ] || fail "--v: $(complete_words canopyctl --v)"
[ "$(complete_words canopyctl resync --f)" = "--failed " ] || fail "resync --f"
[ "$(complete_words canopyctl config '')" = "apply history rollback show " ] || fail "config: $(complete_words canopyctl config '')"
[ "$(complete_words canopyctl config apply --d)" = "--dry-run " ] || fail "config apply --d"
[ "$(complete_words canopyctl expr 'Now()' --t)" = "--taken " ] || fail "expr --t: $(complete_words canopyctl expr 'Now()' --t)"
[ "$(complete_words canopyctl provision uid=x,dc=y --d)" = "--dry-run " ] || fail "provision --d"
[ "$(complete_words canopyctl plan --d)" = "--details " ] || fail "plan --d"
# every command --help lists is offered
for c in $("$CANOPYCTL" --help | sed -n '/^commands:/,/^options:/p' | grep -oE '^  [a-z]+' | sort -u); do
	grep -qw "$c" <<<"$(complete_words canopyctl '')" || fail "completion lacks the command $c"
done
pass "completion: commands, sub-commands, flags, option values"

# cmake --install: pages, completion, unit, sysusers/tmpfiles in place
cmake --install "$CANOPY_BUILD_DIR" --prefix "$dir/root" >"$dir/install.log" 2>&1 ||
	fail "cmake --install: $(tail -5 "$dir/install.log")"
for f in bin/canopy-agent bin/canopyctl share/man/man8/canopy-agent.8 share/man/man8/canopyctl.8 \
	share/man/man5/canopy.yaml.5 share/bash-completion/completions/canopyctl \
	lib/systemd/system/canopy-agent.service lib/sysusers.d/canopy.conf lib/tmpfiles.d/canopy.conf; do
	[ -f "$dir/root/$f" ] || fail "cmake --install did not install $f"
done
grep -qx "ExecStart=$dir/root/bin/canopy-agent --config /etc/canopy/agent.yaml" \
	"$dir/root/lib/systemd/system/canopy-agent.service" ||
	fail "the installed unit does not start the installed binary: $(grep ExecStart "$dir/root/lib/systemd/system/canopy-agent.service")"
pass "cmake --install puts binaries, pages, completion and systemd files in place"
