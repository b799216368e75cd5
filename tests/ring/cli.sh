#!/bin/bash
# tests/ring/cli.sh CLI - `cairn ring` end to end. CLI is a command that takes
# `BUILDER_FILE VERB ...` (the cairn binary's `ring` subcommand, or the
# test-only tests/ring/ring_cli_driver). Exit 77 when python3 is missing.
set -u
CLI=("$@")
[ ${#CLI[@]} -ge 1 ] || { echo "usage: $0 CLI..." >&2; exit 2; }
PY=/usr/bin/python3
[ -x $PY ] || PY=$(command -v python3) || { echo "requires python3"; exit 77; }
T=$(mktemp -d /tmp/ring-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
B=$T/object.builder
R=$T/object.ring
fails=0
ok() { echo "ok - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
# expect CODE DESC -- ARGS...: run the CLI, check its exit code
expect() {
	local code=$1 desc=$2
	shift 3
	"${CLI[@]}" "$@" >"$T/out" 2>"$T/err"
	local rc=$?
	if [ $rc -eq "$code" ]; then ok "$desc"; else
		bad "$desc (exit $rc, want $code)"; sed 's/^/    /' "$T/out" "$T/err" | head -20
	fi
}
same_file() { cmp -s "$1" "$2"; }
sum() { md5sum "$1" | cut -d' ' -f1; }

expect 2 "no arguments prints usage, exit 2" --
grep -q "usage: cairn ring" "$T/err" || bad "usage text on stderr"
expect 0 "--help exits 0" -- --help
grep -q "set_weight" "$T/out" || bad "usage lists set_weight"

expect 0 "create 8 3 1" -- "$B" create 8 3 1
[ -f "$B" ] || bad "builder file written"
s0=$(sum "$B")
expect 2 "create refuses to overwrite" -- "$B" create 8 3 1
[ "$(sum "$B")" = "$s0" ] && ok "builder untouched" || bad "builder overwritten by create"
expect 2 "create with replicas 0" -- "$T/x.builder" create 8 0 1
expect 2 "create with part power 30" -- "$T/x.builder" create 30 3 1
[ ! -e "$T/x.builder" ] && ok "no file from a bad create" || bad "bad create left a file"

expect 0 "add swift syntax" -- "$B" add r1z1-10.0.0.1:6200/sdb 100
grep -q "d0r1z1-10.0.0.1:6200/sdb" "$T/out" || bad "add reports d0"
expect 0 "add several pairs" -- "$B" add r1z2-10.0.0.2:6200/sdb 100 r1z3-10.0.0.3:6200/sdb 100
expect 0 "add without region (z-only, region 1)" -- "$B" add z4-10.0.0.4:6200/sdb_meta 100
expect 0 "add long form" -- "$B" add --region 1 --zone 2 --ip 10.0.0.5 --port 6200 --device sdb --weight 100
expect 0 "add IPv6" -- "$B" add "r1z3-[fd00::6]:6200/sdc" 50
s1=$(sum "$B")
expect 2 "add zero weight" -- "$B" add r1z1-10.0.0.9:6200/sdb 0
expect 2 "add negative weight" -- "$B" add r1z1-10.0.0.9:6200/sdb -5
expect 2 "add non-numeric weight" -- "$B" add r1z1-10.0.0.9:6200/sdb heavy
expect 2 "add duplicate device" -- "$B" add r1z1-10.0.0.1:6200/sdb 100
expect 2 "add duplicate id" -- "$B" add --id 0 --region 1 --zone 1 --ip 10.0.0.9 --port 6200 --device sdz --weight 1
expect 2 "add malformed value" -- "$B" add r1z1-10.0.0.9/sdb 100
expect 2 "add missing weight" -- "$B" add r1z1-10.0.0.9:6200/sdb
[ "$(sum "$B")" = "$s1" ] && ok "bad adds overwrite nothing" || bad "a bad add changed the builder"

expect 0 "search d1" -- "$B" search d1
grep -q "^d1r1z2-10.0.0.2:6200/sdb" "$T/out" || bad "search d1 finds d1"
expect 0 "search r1z2-10.0.0.5/sdb" -- "$B" search r1z2-10.0.0.5/sdb
[ "$(wc -l <"$T/out")" -eq 1 ] && grep -q "^d4" "$T/out" || bad "search by zone-ip-device finds d4 only"
expect 0 "search z3" -- "$B" search z3
[ "$(wc -l <"$T/out")" -eq 2 ] || bad "z3 holds two devices"
expect 2 "search with no match" -- "$B" search d99
expect 2 "search malformed" -- "$B" search "q!"

expect 0 "rebalance" -- "$B" rebalance --now 1000000
grep -q "Reassigned" "$T/out" || bad "rebalance reports"
[ -f "$R" ] && ok "rebalance wrote the ring file" || bad "no ring file"
expect 0 "validate" -- "$B" validate
grep -q "is valid" "$T/out" || bad "validate says valid"

expect 0 "show" -- "$B" show
grep -q "256 partitions, 3 replicas, 1 regions, 4 zones, 6 devices" "$T/out" || bad "show header"
expect 0 "show with no verb" -- "$B"
expect 0 "show --json" -- "$B" show --json
$PY - "$T/out" <<'EOF' && ok "show --json facts" || bad "show --json facts"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["partitions"] == 256 and j["replicas"] == 3 and j["zones"] == 4
devs = j["devices"]
assert len(devs) == 6
assert sum(d["partitions"] for d in devs) == 768
for d in devs:
    assert abs(d["partitions"] - d["wanted"]) < 1, d
assert j["dispersion"] == 0
assert j["max_replicas_in_zone"] == 1
EOF
expect 0 "dump --json" -- "$B" dump --json
$PY - "$T/out" <<'EOF' && ok "dump --json: 256 x 3 distinct devices" || bad "dump --json"
import json, sys
j = json.load(open(sys.argv[1]))
ids = {d["id"] for d in j["devices"]}
zone = {d["id"]: d["zone"] for d in j["devices"]}
assert len(j["partitions"]) == 256
for row in j["partitions"]:
    assert len(row) == 3 and len(set(row)) == 3 and set(row) <= ids
    assert len({zone[i] for i in row}) == 3
EOF
expect 2 "dump without --json" -- "$B" dump

expect 0 "lookup a name" -- "$B" lookup my-bucket
grep -q "partition" "$T/out" || bad "lookup prints the partition"
expect 0 "lookup --json" -- "$B" lookup my-bucket --json
$PY - "$T/out" <<'EOF' && ok "lookup --json: 3 primaries, 3 handoffs" || bad "lookup --json"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["kind"] == "name" and 0 <= j["partition"] < 256
p = [d["id"] for d in j["primaries"]]
h = [d["id"] for d in j["handoffs"]]
assert len(p) == 3 and len(h) == 3 and not set(p) & set(h)
EOF
FP=$(printf 'chunk' | sha256sum | cut -d' ' -f1)
expect 0 "lookup a fingerprint" -- "$B" lookup "$FP" --json
grep -q '"fingerprint"' "$T/out" || bad "64 hex digits are a fingerprint"
expect 0 "lookup the same hex as a name" -- "$B" lookup "$FP" --name
grep -q "^name" "$T/out" || bad "--name forces a name"
expect 2 "lookup --hex with a bad fingerprint" -- "$B" lookup abc --hex

expect 0 "set_weight d0 200" -- "$B" set_weight d0 200
s2=$(sum "$B")
expect 2 "set_weight 0 refused" -- "$B" set_weight d0 0
expect 2 "set_weight negative refused" -- "$B" set_weight d0 -1
expect 2 "set_weight on several without --yes" -- "$B" set_weight z3 10
[ "$(sum "$B")" = "$s2" ] && ok "refused set_weight overwrites nothing" || bad "builder changed"
expect 0 "set_weight long form" -- "$B" set_weight --ip 10.0.0.3 --device sdb 120
expect 0 "rebalance after min_part_hours" -- "$B" rebalance --now 1010000
grep -q "Moves by device" "$T/out" || bad "rebalance reports what moved"

expect 2 "remove several without --yes" -- "$B" remove z3
expect 0 "remove d1" -- "$B" remove d1
expect 0 "rebalance drops d1" -- "$B" rebalance --now 1020000
expect 2 "d1 is gone" -- "$B" search d1
expect 0 "remove z3 --yes" -- "$B" remove z3 --yes
expect 0 "rebalance" -- "$B" rebalance --now 1030000
expect 0 "write_ring to a path" -- "$B" write_ring "$T/copy.ring"
same_file "$R" "$T/copy.ring" && ok "write_ring matches rebalance's ring" || bad "ring files differ"
expect 0 "remove d0" -- "$B" remove d0
s3=$(sum "$B")
expect 2 "rebalance with 2 devices for 3 replicas" -- "$B" rebalance --now 1040000
[ "$(sum "$B")" = "$s3" ] && ok "failed rebalance overwrites nothing" || bad "builder changed"

# corrupt, truncated and newer-version files
cp "$R" "$T/good.ring"
$PY - "$R" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[300] ^= 1
open(sys.argv[1], "wb").write(b)
EOF
expect 2 "lookup on a corrupt ring" -- "$B" lookup foo
grep -qi "checksum" "$T/err" && ok "corrupt ring: clear error" || bad "no checksum error"
expect 2 "validate on a corrupt ring" -- "$B" validate
head -c 1000 "$T/good.ring" >"$R"
expect 2 "lookup on a truncated ring" -- "$B" lookup foo
cp "$B" "$T/saved.builder"
head -c 100 "$T/saved.builder" >"$B"
expect 2 "show on a truncated builder" -- "$B" show
expect 2 "add on a truncated builder" -- "$B" add r1z1-10.0.0.9:6200/sdb 1
[ "$(wc -c <"$B")" -eq 100 ] && ok "truncated builder left as it was" || bad "builder rewritten"
cp "$T/saved.builder" "$B"
$PY - "$R" "$T/good.ring" <<'EOF'
import struct, sys
def crc32c(data):
    poly, crc = 0x82F63B78, 0xFFFFFFFF
    tab = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        tab.append(c)
    for x in data:
        crc = tab[(crc ^ x) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
b = bytearray(open(sys.argv[2], "rb").read())
assert crc32c(bytes(b[:16]) + b"\0\0\0\0" + bytes(b[20:])) == struct.unpack_from("<I", b, 16)[0]
struct.pack_into("<I", b, 8, 2)          # version 2
struct.pack_into("<I", b, 16, 0)
struct.pack_into("<I", b, 16, crc32c(bytes(b)))
open(sys.argv[1], "wb").write(b)
EOF
expect 2 "lookup on a newer-version ring" -- "$B" lookup foo
grep -qi "newer" "$T/err" && ok "newer version: clear error" || bad "no newer-version error"
cp "$T/good.ring" "$R"

# determinism: same secret, seed and inputs -> byte-identical rings
SECRET=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
for n in a b; do
	"${CLI[@]}" "$T/$n.builder" create 10 3 1 --secret $SECRET --seed 7 >/dev/null
	for i in 0 1 2 3 4 5 6 7; do
		"${CLI[@]}" "$T/$n.builder" add r1z$((i % 4))-10.0.$((i % 4)).$i:6200/sdb $((100 + i * 10)) >/dev/null
	done
	"${CLI[@]}" "$T/$n.builder" rebalance --now 5 >/dev/null
done
same_file "$T/a.ring" "$T/b.ring" && ok "same inputs, byte-identical ring" || bad "rings differ"
same_file "$T/a.builder" "$T/b.builder" && ok "same inputs, byte-identical builder" || bad "builders differ"

# the embedded default: 6 devices, one node, each its own zone; EC 4+2
E=$T/ec.builder
expect 0 "create the ec ring" -- "$E" create 10 6 1 --ec-m 2
for i in 0 1 2 3 4 5; do "${CLI[@]}" "$E" add r1z$i-127.0.0.1:6200/d$i 1 >/dev/null; done
expect 0 "rebalance the ec ring" -- "$E" rebalance
expect 0 "show --json ec" -- "$E" show --json
$PY - "$T/out" <<'EOF' && ok "ec ring: every device has all 1024 partitions" || bad "ec ring shape"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["ec_m"] == 2 and j["replicas"] == 6
assert [d["partitions"] for d in j["devices"]] == [1024] * 6
assert j["parts_over_ec_m"] == 0
EOF
expect 2 "unknown verb" -- "$B" frobnicate

echo "$fails failure(s)"
[ $fails -eq 0 ]
