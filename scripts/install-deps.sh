#!/usr/bin/env bash
# scripts/install-deps.sh - installs the Debian packages cairn needs.
#
#   scripts/install-deps.sh          build dependencies (make run)
#   scripts/install-deps.sh --test   build + test dependencies (make test, CI)
#   scripts/install-deps.sh --list [--test]   print the package names and exit
#
# Idempotent: asks dpkg-query which packages are missing and calls apt-get
# (update, then install) only for those; when everything is present it prints
# one line and does nothing else. Runs as root, or through sudo when it is
# available.
set -euo pipefail

BUILD_DEPS=(
	build-essential cmake pkg-config clang
	liburing-dev libmicrohttpd-dev libcurl4-openssl-dev libssl-dev libisal-dev
	liblmdb-dev uuid-dev libinih-dev libjansson-dev libexpat1-dev libzstd-dev
	libcmocka-dev libxxhash-dev
)
# Real clients and tools the integration tests drive (tests/integration/), and fio and bc
# for bench/datapath.sh. nodejs + npm run the AWS SDK for JavaScript v3 (tests/js, from
# the npm registry via `npm ci`); openssl makes the HTTPS test's certificates.
TEST_DEPS=(
	awscli python3 python3-boto3 python3-requests s3cmd rclone curl lmdb-utils
	clang-format procps fio bc restic nodejs npm openssl
	qemu-utils nbdkit libnbd-bin python3-libnbd jq
	python3-glanceclient python3-openstackclient
)

want_test=0
list_only=0
for a in "$@"; do
	case "$a" in
	--test) want_test=1 ;;
	--list) list_only=1 ;;
	-h | --help)
		sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "install-deps: unknown argument '$a' (try --help)" >&2
		exit 2
		;;
	esac
done

pkgs=("${BUILD_DEPS[@]}")
if [ "$want_test" = 1 ]; then
	pkgs+=("${TEST_DEPS[@]}")
fi
if [ "$list_only" = 1 ]; then
	printf '%s\n' "${pkgs[@]}"
	exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	# A nodejs package from outside Debian may bundle npm and conflict
	# with Debian's: an npm that runs is enough.
	if [ "$p" = npm ] && [ "$st" != "installed" ] && command -v npm >/dev/null 2>&1; then
		st=installed
	fi
	if [ "$st" != "installed" ]; then
		missing+=("$p")
	fi
done

# tests/js: the SDK's exact tree from package-lock.json, fetched again only
# when node_modules is missing or was installed from another lock file.
js_deps() {
	local js lock stamp want
	js="$(cd "$(dirname "$0")/.." && pwd)/tests/js"
	lock="$js/package-lock.json"
	stamp="$js/node_modules/.cairn-lock.sha256"
	[ -f "$lock" ] || return 0
	want=$(sha256sum "$lock" | cut -d' ' -f1)
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		return 0
	fi
	echo "install-deps: npm ci in tests/js"
	(cd "$js" && npm ci --no-audit --no-fund --loglevel=error) || {
		echo "install-deps: npm ci in tests/js failed" >&2
		return 1
	}
	echo "$want" >"$stamp"
}

if [ "${#missing[@]}" -eq 0 ]; then
	echo "install-deps: all ${#pkgs[@]} packages present"
	if [ "$want_test" = 1 ]; then
		js_deps
	fi
	exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo)
	else
		echo "install-deps: missing ${missing[*]}; run as root or install sudo" >&2
		exit 1
	fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends "${missing[@]}"
if [ "$want_test" = 1 ]; then
	js_deps
fi
