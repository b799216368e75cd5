#!/bin/bash
# bench/swift/stop.sh DIR - stops what setup.sh started: each recorded process group, by id.
dir=$1
[ -f "$dir/pids" ] || exit 0
while read -r pid _; do
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
done <"$dir/pids"
for _ in $(seq 50); do
	alive=0
	while read -r pid _; do kill -0 "$pid" 2>/dev/null && alive=1; done <"$dir/pids"
	[ $alive = 0 ] && break
	sleep 0.1
done
while read -r pid _; do
	kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
done <"$dir/pids"
rm -f "$dir/pids"
exit 0
