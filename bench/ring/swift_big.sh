#!/bin/bash
# bench/ring/swift_big.sh - swift-ring-builder: 2^20 partitions x 3 replicas over 1000 devices, same shape as ring_bench build
set -e
F=/tmp/swift_big/big.builder; mkdir -p /tmp/swift_big; rm -f $F
/usr/bin/swift-ring-builder $F create 20 3 1
W=(100 100 200 100 400 100 200)
args=()
for i in $(seq 0 999); do
  args+=("r1z$((i % 10))-10.$((i % 10)).$(((i / 100) % 256)).$(((i / 10) % 10)):6200/sd$i" "${W[$((i % 7))]}")
done
/usr/bin/swift-ring-builder $F add "${args[@]}" > /dev/null
s=$(date +%s.%N)
/usr/bin/swift-ring-builder $F rebalance -s 1 || true
e=$(date +%s.%N)
echo "swift_build_wall_s=$(echo "$e - $s" | bc)"
