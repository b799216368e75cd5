#!/bin/bash
# bench/nginx/start.sh DIR PORT LOADGEN [SMALL_COUNT [BIG_SIZE]]
# Writes the bytes the load generator uploads (bucket "bench": key "big" of BIG_SIZE, default
# 1G, and keys small-00000000.. of 4 KiB) under DIR/www/bench/, then runs nginx in the foreground of a
# background job on 127.0.0.1:PORT with its own conf, pid and logs in DIR (never the system
# service). PUTs to /sink/ go to a tmpfs folder under /dev/shm (DIR/shm-path) for the upload
# ceiling. Prints nothing on success; DIR/nginx.run-pid holds the master's pid for stop.sh.
set -euo pipefail
dir=$1 port=$2 loadgen=$3 nsmall=${4:-1000} bigsize=${5:-1G}
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v nginx >/dev/null; then
	echo "nginx: installing nginx-light" >&2
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get install -y -q nginx-light || { apt-get update -q && apt-get install -y -q nginx-light; }; } \
		>"$dir.apt.log" 2>&1 || { echo "nginx: apt-get install failed, see $dir.apt.log" >&2; exit 1; }
fi
mkdir -p "$dir/www/bench" "$dir/tmp"
shm=$(mktemp -d /dev/shm/cairn-bench-nginx.XXXXXX)
echo "$shm" >"$dir/shm-path"
mkdir -p "$shm/tmp" "$shm/sink"
"$loadgen" gen-file --size "$bigsize" --out "$dir/www/bench/big"
"$loadgen" gen-small --size 4K --count "$nsmall" --out "$dir/www/bench"
sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@SHM@|$shm|g" "$here/nginx.conf.in" >"$dir/nginx.conf"
nginx -t -q -c "$dir/nginx.conf" -p "$dir" 2>"$dir/check.log" || { cat "$dir/check.log" >&2; exit 1; }
setsid nginx -c "$dir/nginx.conf" -p "$dir" </dev/null >>"$dir/stdout.log" 2>&1 &
echo $! >"$dir/nginx.run-pid"
for _ in $(seq 100); do
	if curl -sf -o /dev/null "http://127.0.0.1:$port/bench/small-00000000"; then exit 0; fi
	sleep 0.1
done
echo "nginx did not come up on 127.0.0.1:$port; see $dir/error.log" >&2
exit 1
