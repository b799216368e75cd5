#!/usr/bin/env bash
# LABELS: s3
# TIMEOUT: 240
# 140-js-sdk: the AWS SDK for JavaScript v3 from npm (tests/js, pinned in
# package-lock.json; `scripts/install-deps.sh --test` runs npm ci) with its
# 2025 default checksums against a plain-HTTP node: PutObject of a string, a
# Buffer and a stream of unknown length (aws-chunked with a CRC32 trailer),
# GetObject with ChecksumMode, HeadObject, ListObjectsV2, CopyObject,
# DeleteObjects (checksum header instead of Content-MD5), If-None-Match: *,
# a 100 MiB lib-storage Upload with 4 parts in flight read back by hash, and
# an Upload aborted mid-way. The steps are in tests/js/s3-sdk.mjs.
. "$(dirname "$0")/lib.sh"
requires node

JS=$(cd "$(dirname "$0")/../js" && pwd)
if [ ! -d "$JS/node_modules/@aws-sdk/client-s3" ] || [ ! -d "$JS/node_modules/@aws-sdk/lib-storage" ]; then
	echo "SKIP: $CAIRN_TEST_NAME requires the SDK in tests/js/node_modules (scripts/install-deps.sh --test)"
	exit 77
fi
NODE=${CAIRN_NODE:-node}
log "node $("$NODE" --version), @aws-sdk/client-s3 $("$NODE" -p "require('$JS/node_modules/@aws-sdk/client-s3/package.json').version")"

cairn_start || finish
if CAIRN_ENDPOINT=$ENDPOINT "$NODE" "$JS/s3-sdk.mjs" >"$T/js.out" 2>&1; then
	echo "ok: js sdk steps"
else
	fail "js sdk steps"
fi
cat "$T/js.out"
finish
