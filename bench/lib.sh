# bench/lib.sh - shell functions shared by the benchmark scripts (sourced, not run).
# The caller sets: here (bench/), tmp (scratch dir), results (RESULT lines file), lg (loadgen),
# cairn_bin; and keeps srv_pgids naming the server under test.

say() { echo "== $*" >&2; }

# A base port with N free ports above it on 127.0.0.1. Below the kernel's ephemeral range
# (32768 up by default), and free of any socket, not only listeners: a busy machine's outgoing
# connections use ephemeral local ports, and a server that binds one gets EADDRINUSE (seen with
# Swift's memcached while other test suites ran).
free_ports() {
	local n=$1 base p busy lo
	lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "$lo" -gt 21000 ] 2>/dev/null || lo=50000
	for _ in $(seq 50); do
		base=$((20000 + RANDOM % (lo - 20000 - n)))
		busy=0
		for ((p = base; p < base + n; p++)); do
			if ss -Htan "sport = :$p" | grep -q .; then busy=1; fi
		done
		[ $busy = 0 ] && { echo $base; return 0; }
	done
	return 1
}

drop_caches() {
	[ "${BENCH_DROP_CACHES:-0}" = 1 ] || return 0
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || say "cannot drop caches (read-only /proc/sys?)"
}

# CPU ticks (user + system) used so far by every process whose process group is in $srv_pgids:
# the server under test (each server is started with setsid, so its pgid is its first pid).
# Fields after "comm) ": state ppid pgrp ... utime is the 12th, stime the 13th.
srv_pgids=""
cpu_ticks() {
	[ -n "$srv_pgids" ] || { echo 0; return; }
	cat /proc/[0-9]*/stat 2>/dev/null | sed 's/^.*) //' |
		awk -v g=" $srv_pgids " 'index(g, " " $3 " ") { s += $12 + $13 } END { print s + 0 }'
}
clk_tck=$(getconf CLK_TCK)

# check_loopback NAME: every socket the server under test listens on must be on loopback.
check_loopback() {
	local pids bad
	pids=$(ps -e -o pid=,pgid= | awk -v g=" $srv_pgids " 'index(g, " " $2 " ") { print $1 }')
	bad=$(ss -Hltnup 2>/dev/null | grep -F -f <(sed 's/.*/pid=&,/' <<<"$pids") |
		awk '$5 !~ /^(127\.|\[::1\]|\[::ffff:127\.)/ { print $5 }')
	if [ -n "$bad" ]; then
		say "WARNING: $1 listens beyond loopback: $bad"
		echo "$1 listens beyond loopback: $bad" >>"$tmp/notes"
	fi
}

# run TARGET TEST loadgen-args...: one measurement; its RESULT line, with the server's CPU
# seconds during the run added, is appended to results.txt
run() {
	local target=$1 test=$2 c0 c1 srv
	shift 2
	say "$target $test"
	c0=$(cpu_ticks)
	"$lg" "$@" --label "$target" >"$tmp/last.out" 2>"$tmp/last.err"
	local rc=$?
	c1=$(cpu_ticks)
	srv=$(awk -v a="$c0" -v b="$c1" -v hz="$clk_tck" 'BEGIN { printf "%.2f", (b - a) / hz }')
	sed 's/^/   /' "$tmp/last.err" >&2
	grep '^RESULT ' "$tmp/last.out" | sed -e "s/^/$target $test /" \
		-e "s/}\$/,\"server_cpu_s\":$srv}/" >>"$results"
	return $rc
}

stop_cairn() {
	[ -n "$cairn_pid" ] || return 0
	kill -TERM "$cairn_pid" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$cairn_pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$cairn_pid" 2>/dev/null && kill -KILL "$cairn_pid" 2>/dev/null
	wait "$cairn_pid" 2>/dev/null
	cairn_pid=""
}

# start_cairn DIR S3PORT [extra serve args...]: starts cairn serve on DIR/data with the S3 API on
# 127.0.0.1:S3PORT and the admin API on S3PORT+1, logging to DIR/log; waits until it answers.
# Sets cairn_pid and srv_pgids. Returns 1 (and notes it) when it does not come up.
cairn_pid=""
start_cairn() {
	local dir=$1 s3=$2 code up=0
	shift 2
	say "cairn: starting $cairn_bin serve on 127.0.0.1:$s3 (api :$((s3 + 1)))"
	setsid "$cairn_bin" serve --data "$dir/data" --s3-listen "127.0.0.1:$s3" \
		--api-listen "127.0.0.1:$((s3 + 1))" "$@" </dev/null >>"$dir/log" 2>&1 &
	cairn_pid=$!
	for _ in $(seq 600); do
		if ! kill -0 "$cairn_pid" 2>/dev/null; then
			break
		fi
		code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$s3/") || true
		if [ "$code" != 000 ]; then
			up=1
			break
		fi
		sleep 0.1
	done
	if [ $up = 0 ]; then
		say "cairn did not start; its log:"
		tail -20 "$dir/log" >&2
		echo "cairn did not start" >>"$tmp/notes"
		stop_cairn
		return 1
	fi
	srv_pgids=$cairn_pid
	return 0
}

# cairn_usable: 0 when $cairn_bin can serve (warns about Debug/sanitizer builds), else 1.
cairn_usable() {
	if [ ! -x "$cairn_bin" ] || ! "$cairn_bin" serve --help >/dev/null 2>&1; then
		say "cairn not built ($cairn_bin serve is missing): benching the others only"
		echo "cairn not built" >>"$tmp/notes"
		return 1
	fi
	local cache=$root/build/CMakeCache.txt
	if [ "$(dirname "$(dirname "$cairn_bin")")" = "$root/build" ] && [ -f "$cache" ] &&
		grep -qE '^(CMAKE_BUILD_TYPE:STRING=Debug|CAIRN_SANITIZE:BOOL=ON)' "$cache"; then
		say "warning: $cairn_bin is a Debug or sanitizer build; figures will be low"
		echo "cairn binary is a Debug or sanitizer build" >>"$tmp/notes"
	fi
	return 0
}
