#!/bin/bash
# bench/glance/stop.sh DIR - stops the glance-api that setup.sh started: its process group (the
# parent and its workers), by the recorded id.
dir=$1
[ -f "$dir/pid" ] || exit 0
pid=$(cat "$dir/pid")
kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
for _ in $(seq 100); do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
rm -f "$dir/pid"
exit 0
