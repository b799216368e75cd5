#!/bin/bash
# bench/nginx/stop.sh DIR - stops the nginx that start.sh started (its own pid, then its group).
dir=$1
pid=$(cat "$dir/nginx.run-pid" 2>/dev/null)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
	kill -QUIT "$pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
fi
rm -f "$dir/nginx.run-pid"
if [ -f "$dir/shm-path" ]; then
	shm=$(cat "$dir/shm-path")
	case $shm in /dev/shm/cairn-bench-nginx.*) rm -rf "$shm" ;; esac
	rm -f "$dir/shm-path"
fi
exit 0
