#!/usr/bin/env bash
# scripts/install-deps.sh -- install what canopy needs to build and test, and
# nothing when it is all there already.
#
#   Debian packages (apt-get): compiler, CMake, libraft, libuv, OpenSSL,
#     libldap, libcurl, jansson, libyaml, libmicrohttpd, cmocka, PCRE2 and
#     libunistring (mapping expressions: regular expressions, Unicode); and
#     for the tests: slapd + ldap-utils (the real OpenLDAP fixture), Samba (a
#     real AD domain controller for the Active Directory source), Node.js + npm
#     (the real SCIM server fixture), curl, python3-prometheus-client (the
#     /metrics test's exposition-format parser), man-db + groff-base (the man
#     pages' test), chromium + chromium-driver + python3-selenium (the status
#     page's test in a real browser), nftables + faketime (the chaos suite,
#     chaos-tests/), 389-ds-base (389 Directory Server, a second RFC 4533
#     source for tests/fixtures/389ds.sh: ns-slapd, dscreate); clang
#     + its runtime libraries
#     (libFuzzer, for tests/fuzz).
#   npm packages: the Node fixtures' (SCIM, Graph, and the interop matrix's
#   servers in tests/fixtures/interop), with `npm ci` from their committed lockfiles.
#
# `--demo` installs only what scripts/demo.sh needs (the build, slapd, Node
# and the SCIM fixture): a newcomer's first run does not wait for a browser,
# two directory servers and clang.
#
# Runs as root, or through sudo when it is available.
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO=0
case "${1:-}" in
--demo) DEMO=1 ;;
"") ;;
*) echo "usage: $0 [--demo]" >&2; exit 2 ;;
esac

PACKAGES=(
	build-essential cmake pkg-config
	libraft-dev libuv1-dev libssl-dev libldap-dev libcurl4-openssl-dev
	libjansson-dev libyaml-dev libmicrohttpd-dev libcmocka-dev
	libpcre2-dev libunistring-dev
	# zlib: format 2 state entries may be deflated (sync/state/state.h)
	zlib1g-dev
	# SASL/GSSAPI (Kerberos) binds to the directory (source.sasl): libldap
	# binds through Cyrus SASL, whose GSSAPI mechanism is a plugin of its
	# own (without it ldap_sasl_interactive_bind_s knows no GSSAPI); MIT
	# krb5's GSS-API headers to acquire the agent's credentials from its
	# keytab (gss_acquire_cred_from, sync/source/ldap_sasl.c).
	libsasl2-modules-gssapi-mit libkrb5-dev
	slapd ldap-utils curl util-linux iproute2 python3
)
# What only the tests need (not scripts/demo.sh).
TEST_PACKAGES=(
	# deploy/rolling-upgrade.sh reads the status API with jq
	jq
	# A real Prometheus text-format parser for the /metrics test
	# (tests/integration/metrics_exposition_test.sh).
	python3-prometheus-client
	# man -l renders the man pages in man/ (man_pages_and_completion_test)
	man-db groff-base
	# A real browser for the status page's test (status_page_test.sh):
	# headless Chromium driven through chromedriver by Selenium.
	chromium chromium-driver python3-selenium
	# the chaos suite (chaos-tests/): nftables for partitions and packet loss,
	# faketime for clock jumps
	nftables faketime
	clang libclang-rt-14-dev
	# A real Samba AD DC for the Active Directory source's tests
	# (tests/fixtures/samba.sh): the samba binary, samba-tool's provisioning
	# files, the DC's database modules, and ldbsearch for DirSync by hand.
	# policy-rc.d below keeps smbd/nmbd/samba-ad-dc/winbind from starting.
	samba samba-ad-dc samba-ad-provision samba-dsdb-modules winbind ldb-tools
	# 389 Directory Server with its content synchronization plugin (RFC 4533)
	# for tests/fixtures/389ds.sh: ns-slapd, and dscreate (lib389, Python)
	# to make an instance. About 30 s and 56 MB on Debian 12 (33 packages).
	# No service starts: the fixture runs its own ns-slapd under a temp dir.
	389-ds-base
)

[ "$DEMO" = 1 ] || PACKAGES+=("${TEST_PACKAGES[@]}")
missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing+=("$p")
	fi
done
# Node.js may come from Debian (nodejs + npm) or elsewhere (e.g. NodeSource,
# whose nodejs package bundles npm): only install Debian's when there is none.
if ! command -v node >/dev/null 2>&1; then
	missing+=(nodejs)
fi
if ! command -v npm >/dev/null 2>&1; then
	missing+=(npm)
fi

SUDO=
if [ "$(id -u)" != 0 ]; then
	SUDO=sudo
fi

if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# slapd's and samba's packages would start system-wide servers (slapd,
	# smbd, nmbd, winbind, samba-ad-dc); the tests run their own private
	# ones, so keep the packages from starting services.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
		$SUDO chmod +x /usr/sbin/policy-rc.d
		trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	$SUDO apt-get update -q
	$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
	echo "install-deps: Debian packages already installed"
fi

# npm_ci DIR WHAT: `npm ci` in DIR from its committed lockfile, unless
# node_modules was installed from this very lockfile (a stamp copy of it).
npm_ci() {
	local dir=$1 what=$2 stamp=$1/node_modules/.canopy-lock
	[ -f "$dir/package-lock.json" ] || return 0
	if [ ! -f "$stamp" ] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
		echo "install-deps: npm ci in $dir"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
		mkdir -p "$dir/node_modules"
		cp "$dir/package-lock.json" "$stamp"
	else
		echo "install-deps: $what npm packages already installed"
	fi
}

# The SCIM server fixture (SCIMMY + express).
npm_ci tests/fixtures/scim "SCIM fixture's"
[ "$DEMO" = 0 ] || exit 0
# The Microsoft Graph look-alike (no dependencies today; npm ci keeps it that
# way, and installs what a later lockfile adds).
npm_ci tests/fixtures/graph "Graph fixture's"
# The interop matrix's SCIM servers (tests/fixtures/interop: Better Auth's
# SCIM plugin, BoxyHQ Polis), one lockfile. better-sqlite3 compiles from
# source here (its prebuilt binaries are not on the registry): it needs make,
# g++ and python3, and takes a few minutes.
npm_ci tests/fixtures/interop "interop fixtures'"
