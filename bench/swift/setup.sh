#!/bin/bash
# bench/swift/setup.sh DIR BASE_PORT
# Runs an all-in-one OpenStack Swift (Debian's packages) with the s3api middleware under DIR:
# proxy on 127.0.0.1:BASE_PORT, account/container/object servers on BASE_PORT+1..+3, memcached
# on BASE_PORT+4; one device folder DIR/srv/d1, rings with one replica. S3 credentials: access
# key "test:tester", secret "testing" (tempauth). Installs the packages when missing (apt-get),
# starts every server as its own process group (pids in DIR/pids), waits until an S3 request
# is answered. bench/swift/stop.sh DIR stops them.
set -euo pipefail
dir=$1 base=$2
here=$(cd "$(dirname "$0")" && pwd)
pkgs="swift swift-proxy swift-account swift-container swift-object python3-swift memcached"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "swift: installing$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q $missing >"$dir.apt.log" 2>&1 ||
		{ apt-get update -q >>"$dir.apt.log" 2>&1 && apt-get install -y -q $missing >>"$dir.apt.log" 2>&1; } ||
		{ echo "swift: apt-get install failed, see $dir.apt.log" >&2; exit 1; }
fi

mkdir -p "$dir/etc" "$dir/srv/d1" "$dir/log" "$dir/run"
: >"$dir/pids"
proxy=$base account=$((base + 1)) container=$((base + 2)) object=$((base + 3)) mc=$((base + 4))
user=$(id -un)
fill() { # fill TEMPLATE PORT OUT
	sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$2|g" -e "s|@USER@|$user|g" \
	    -e "s|@MEMCACHE_PORT@|$mc|g" -e "s|@SUFFIX@|$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')|g" \
	    -e "s|@PREFIX@|$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')|g" "$here/$1" >"$3"
}
fill swift.conf.in 0 "$dir/etc/swift.conf"
fill proxy-server.conf.in "$proxy" "$dir/etc/proxy-server.conf"
fill account-server.conf.in "$account" "$dir/etc/account-server.conf"
fill container-server.conf.in "$container" "$dir/etc/container-server.conf"
fill object-server.conf.in "$object" "$dir/etc/object-server.conf"

# Rings: part power 8 (256 partitions for one device), 1 replica, min_part_hours 1.
for kind in account:$account container:$container object:$object; do
	name=${kind%%:*} port=${kind##*:}
	(
		cd "$dir/etc"
		swift-ring-builder "$name.builder" create 8 1 1
		swift-ring-builder "$name.builder" add "r1z1-127.0.0.1:$port/d1" 1
		swift-ring-builder "$name.builder" rebalance
	) >>"$dir/log/rings.log" 2>&1 || { echo "swift: ring $name failed, see $dir/log/rings.log" >&2; exit 1; }
done

start() { # start NAME CMD...: own session, so stop.sh can end the whole group by its id
	local name=$1
	shift
	setsid "$@" </dev/null >"$dir/log/$name.log" 2>&1 &
	echo "$! $name" >>"$dir/pids"
}
start memcached memcached -l 127.0.0.1 -p "$mc" -U 0 -u "$user" -m 64
start account swift-account-server "$dir/etc/account-server.conf"
start container swift-container-server "$dir/etc/container-server.conf"
start object swift-object-server "$dir/etc/object-server.conf"
start proxy swift-proxy-server "$dir/etc/proxy-server.conf"

# Ready when the proxy answers healthcheck and every backend accepts connections.
for _ in $(seq 300); do
	ok=1
	curl -sf -o /dev/null "http://127.0.0.1:$proxy/healthcheck" || ok=0
	for p in $account $container $object; do
		curl -s -o /dev/null "http://127.0.0.1:$p/" || ok=0
	done
	if [ $ok = 1 ]; then
		exit 0
	fi
	while read -r pid name; do
		kill -0 "$pid" 2>/dev/null || { echo "swift: $name exited; see $dir/log/$name.log" >&2; tail -5 "$dir/log/$name.log" >&2; exit 1; }
	done <"$dir/pids"
	sleep 0.2
done
echo "swift: not ready after 60 s; logs in $dir/log" >&2
exit 1
