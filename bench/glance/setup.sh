#!/bin/bash
# bench/glance/setup.sh DIR PORT
# Runs Debian's glance-api (OpenStack Glance 25) as the peer of bench/glance.sh under DIR: the
# API on 127.0.0.1:PORT, no Keystone (any X-Auth-Token acts as admin), a sqlite database
# (DIR/glance.sqlite, made with `glance-manage db_sync`), the file store in DIR/images (one file
# per image: put DIR on the filesystem cairn's data is on). Installs glance-api when missing
# (apt-get; the package's own service is stopped and disabled again if the install started it),
# starts glance-api as its own process group (pid in DIR/pid), waits until GET / answers 300.
# bench/glance/stop.sh DIR stops it.
set -euo pipefail
dir=$1 port=$2
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v glance-api >/dev/null || ! command -v glance-manage >/dev/null; then
	echo "glance: installing glance-api" >&2
	export DEBIAN_FRONTEND=noninteractive
	# another apt-get may hold the lock for a while on a shared machine: wait for it
	apt-get -o DPkg::Lock::Timeout=600 install -y -q glance-api >"$dir.apt.log" 2>&1 ||
		{ apt-get update -q >>"$dir.apt.log" 2>&1 &&
			apt-get -o DPkg::Lock::Timeout=600 install -y -q glance-api >>"$dir.apt.log" 2>&1; } ||
		{ echo "glance: apt-get install glance-api failed, see $dir.apt.log" >&2; exit 1; }
	# the package's init script may have started the system-wide service (no policy-rc.d on
	# this machine): the bench runs its own, so that one must not stay up
	if [ -d /run/systemd/system ]; then
		systemctl disable --now glance-api >>"$dir.apt.log" 2>&1 || true
	elif [ -x /etc/init.d/glance-api ]; then
		/etc/init.d/glance-api stop >>"$dir.apt.log" 2>&1 || true
	fi
fi

mkdir -p "$dir/images" "$dir/staging" "$dir/lock"
sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" "$here/glance-api.conf.in" >"$dir/glance-api.conf"
cp "$here/glance-api-paste.ini" "$dir/glance-api-paste.ini"
rm -f "$dir/glance.sqlite"
if ! glance-manage --config-file "$dir/glance-api.conf" db_sync >"$dir/db_sync.log" 2>&1; then
	echo "glance: glance-manage db_sync failed:" >&2
	tail -5 "$dir/db_sync.log" >&2
	exit 1
fi

setsid glance-api --config-file "$dir/glance-api.conf" </dev/null >"$dir/stdout.log" 2>&1 &
echo $! >"$dir/pid"
for _ in $(seq 300); do
	if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
		echo "glance: glance-api exited; its log:" >&2
		tail -20 "$dir/glance-api.log" "$dir/stdout.log" >&2 2>/dev/null
		exit 1
	fi
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/") || true
	[ "$code" = 300 ] && exit 0
	sleep 0.1
done
echo "glance: glance-api did not answer on 127.0.0.1:$port within 30 s" >&2
exit 1
