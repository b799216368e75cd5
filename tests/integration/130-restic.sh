#!/usr/bin/env bash
# LABELS: s3
# TIMEOUT: 240
# 130-restic: restic's S3 backend (minio-go) against cairn: init, a backup
# of small files and a 30 MiB random file, a second backup after changes,
# check --read-data, restore byte-compared with diff -r, forget --prune,
# check and restore again. Run twice: over plain HTTP, where minio-go
# streams aws-chunked bodies with per-chunk signatures
# (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), and over HTTPS with a test CA
# (--cacert), where it signs UNSIGNED-PAYLOAD.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tls-certs.sh"
requires restic diff openssl

export RESTIC_PASSWORD=cairn-restic-test-password
export RESTIC_CACHE_DIR=$T/restic-cache
SRC=$T/src
RO=()

make_source() {
	rm -rf "$SRC"
	mkdir -p "$SRC/docs/deep/er" "$SRC/empty-dir"
	local i
	for i in $(seq 1 120); do
		head -c $(((i * 7919) % 20000)) /dev/urandom >"$SRC/docs/f$i"
	done
	for i in $(seq 1 30); do
		printf 'line %d of a small text file\n' $(seq 1 $i) >"$SRC/docs/deep/er/t$i.txt"
	done
	: >"$SRC/zero-length"
	ln -s docs/f1 "$SRC/link-to-f1"
	rand_file "$SRC/big.bin" $((30 * 1024 * 1024))
	# the start of another file repeats the big one: restic and cairn dedup
	head -c $((8 * 1024 * 1024)) "$SRC/big.bin" >"$SRC/half-copy.bin"
	head -c $((1024 * 1024)) /dev/urandom >>"$SRC/half-copy.bin"
}

# rs DESC ARGS...: restic ARGS as a check
rs() {
	local desc=$1
	shift
	check "$desc" restic "${RO[@]}" "$@"
}

# snapshots: how many the repository lists ("?" when restic fails)
snapshots() {
	restic "${RO[@]}" snapshots --json 2>/dev/null |
		"$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo "?"
}

# restic_suite LABEL URL [RESTIC OPTIONS...]: the whole sequence on a new
# repository at URL/BUCKET/repo.
restic_suite() {
	local label=$1 url=$2
	shift 2
	RO=(-o s3.region=us-east-1 -o s3.bucket-lookup=path "$@")
	export RESTIC_REPOSITORY="s3:$url/restic-$label-$RANDOM$RANDOM/repo"
	rm -rf "$RESTIC_CACHE_DIR" "$T/restore"
	mkdir -p "$RESTIC_CACHE_DIR"
	make_source
	log "restic over $label: $RESTIC_REPOSITORY"
	# Nothing else can work without a repository.
	rs "$label: restic init" init || return 1
	# cd: the snapshot holds "src/...", restored under the target as src/
	cd "$T" || return 1
	rs "$label: restic backup #1 (small files + 30 MiB)" backup src
	echo "changed" >>"$SRC/docs/f7"
	rm "$SRC/docs/f9"
	head -c 123456 /dev/urandom >"$SRC/docs/new-file"
	dd if=/dev/urandom of="$SRC/big.bin" bs=1M seek=12 count=1 conv=notrunc status=none
	rs "$label: restic backup #2 (after changes)" backup src
	expect_eq "$label: two snapshots" "$(snapshots)" 2
	rs "$label: restic check --read-data" check --read-data
	rs "$label: restic restore latest" restore latest --target "$T/restore"
	check "$label: restored tree equals the source (diff -r)" \
		diff -r --no-dereference "$SRC" "$T/restore/src"
	rs "$label: restic forget --keep-last 1 --prune" forget --keep-last 1 --prune
	expect_eq "$label: one snapshot after forget" "$(snapshots)" 1
	rs "$label: restic check --read-data after prune" check --read-data
	rm -rf "$T/restore"
	rs "$label: restic restore after prune" restore latest --target "$T/restore"
	check "$label: restored tree after prune equals the source" \
		diff -r --no-dereference "$SRC" "$T/restore/src"
	rm -rf "$T/restore"
}

if ! tls_certs "$T/certs"; then
	fail "openssl could not make the test certificates"
	finish
fi
cairn_start --tls-cert "$T/certs/srv.pem" --tls-key "$T/certs/srv.key" || finish
restic_suite https "https://localhost:$S3_PORT" --cacert "$T/certs/ca.pem"
cairn_stop

cairn_start || finish
restic_suite http "$ENDPOINT"
rm -rf "$SRC" "$RESTIC_CACHE_DIR"
finish
