// tests/js/s3-sdk.mjs - the AWS SDK for JavaScript v3 against cairn (issue 4).
//
// Run by tests/integration/140-js-sdk.sh with CAIRN_ENDPOINT, AWS_ACCESS_KEY_ID
// and AWS_SECRET_ACCESS_KEY set. The client keeps the SDK's defaults
// (requestChecksumCalculation and responseChecksumValidation WHEN_SUPPORTED,
// as since January 2025): PutObject and UploadPart carry CRC32 checksums,
// streams go as aws-chunked bodies with a checksum trailer, DeleteObjects
// carries a checksum header instead of Content-MD5. Over plain HTTP, as
// here, the SDK's aws-chunked is STREAMING-UNSIGNED-PAYLOAD-TRAILER.
//
// Every step runs even when an earlier one failed; a failed step prints what
// was sent and what came back. Output: "ok: STEP" / "FAIL: STEP: ..." lines
// and a last line "N passed, N failed"; exit 1 when anything failed.
// Steps can be picked with CAIRN_JS_ONLY=regex (for a quick rerun).
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';

const endpoint = process.env.CAIRN_ENDPOINT;
if (!endpoint) {
  console.error('CAIRN_ENDPOINT is not set');
  process.exit(2);
}
const only = process.env.CAIRN_JS_ONLY ? new RegExp(process.env.CAIRN_JS_ONLY) : null;
const MiB = 1024 * 1024;

// The last request and response of the client, for failure reports (the
// Authorization header and signatures are left out).
let lastReq = null;
let lastResp = null;
const trace = (next) => async (args) => {
  const q = args.request;
  lastReq = q && { method: q.method, path: q.path, query: q.query, headers: { ...q.headers } };
  if (lastReq) delete lastReq.headers.authorization;
  lastResp = null;
  const out = await next(args);
  const r = out.response;
  lastResp = r && { status: r.statusCode, headers: r.headers };
  return out;
};

const s3 = new S3Client({
  endpoint,
  region: 'us-east-1',
  forcePathStyle: true,
  credentials: {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID,
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
  },
  maxAttempts: 1, // a failure is reported, not retried away
});
s3.middlewareStack.add(trace, { step: 'deserialize', priority: 'low', name: 'cairnTrace' });

let passed = 0;
let failed = 0;

function describe(err) {
  const lines = [];
  if (err && err.$metadata) {
    lines.push(`${err.name}: ${err.message} (HTTP ${err.$metadata.httpStatusCode})`);
  } else {
    lines.push(String(err && err.stack ? err.stack : err));
  }
  if (lastReq) lines.push(`sent: ${JSON.stringify(lastReq)}`);
  if (lastResp) lines.push(`got: ${JSON.stringify(lastResp)}`);
  return lines.map((l) => `    | ${l}`).join('\n');
}

async function step(name, fn) {
  if (only && !only.test(name)) return;
  lastReq = lastResp = null;
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok: ${name} (${Date.now() - t0} ms)`);
  } catch (err) {
    failed++;
    console.log(`FAIL: ${name}\n${describe(err)}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

async function readAll(body) {
  const parts = [];
  for await (const c of body) parts.push(c);
  return Buffer.concat(parts);
}

async function sha256Of(body) {
  const h = createHash('sha256');
  for await (const c of body) h.update(c);
  return h.digest('hex');
}

// An error the SDK raised for an HTTP status.
function statusOf(err) {
  return err && err.$metadata ? err.$metadata.httpStatusCode : undefined;
}

const bucket = `js-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const buf = randomBytes(300 * 1024 + 17);

await step('CreateBucket', async () => {
  const r = await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  assert(r.$metadata.httpStatusCode === 200, `status ${r.$metadata.httpStatusCode}`);
});

await step('PutObject string body (CRC32 header by default)', async () => {
  const r = await s3.send(
    new PutObjectCommand({ Bucket: bucket, Key: 'str.txt', Body: 'hello from the js sdk\n' })
  );
  assert(r.ETag === '"' + createHash('md5').update('hello from the js sdk\n').digest('hex') + '"',
    `ETag ${r.ETag}`);
  const sent = lastReq && lastReq.headers;
  assert(sent && Object.keys(sent).some((h) => h.startsWith('x-amz-checksum-')),
    'the SDK sent no x-amz-checksum-* (not a 2025 default-checksum SDK?)');
});

await step('PutObject Buffer body', async () => {
  const r = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'buf.bin', Body: buf }));
  assert(r.ETag === '"' + createHash('md5').update(buf).digest('hex') + '"', `ETag ${r.ETag}`);
  const got = await readAll((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'buf.bin' }))).Body);
  assert(got.equals(buf), `read back ${got.length} bytes that differ from the ${buf.length} sent`);
});

await step('PutObject stream body (aws-chunked + CRC32 trailer)', async () => {
  const chunks = [];
  for (let i = 0; i < 20; i++) chunks.push(randomBytes(64 * 1024 + i));
  const want = Buffer.concat(chunks);
  // A stream: the SDK cannot hash it ahead, so it sends aws-chunked with the
  // checksum in a trailer; ContentLength becomes x-amz-decoded-content-length.
  await s3.send(new PutObjectCommand({
    Bucket: bucket, Key: 'stream.bin', Body: Readable.from(chunks), ContentLength: want.length,
  }));
  const sent = lastReq && lastReq.headers;
  assert(sent && sent['x-amz-trailer'], `no x-amz-trailer sent: ${JSON.stringify(sent)}`);
  const got = await readAll((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'stream.bin' }))).Body);
  assert(got.equals(want), `read back ${got.length} bytes, sent ${want.length}` +
    (got.length !== want.length ? ' (chunk headers or the trailer stored in the object?)' : ''));
});

// PutObject itself needs a length (the SDK cannot send aws-chunked without
// x-amz-decoded-content-length and fails before sending); an unknown-length
// stream goes through lib-storage, which buffers a small one into one
// PutObject and cuts a large one into parts.
await step('lib-storage Upload of a stream of unknown length (one PutObject)', async () => {
  const chunks = [];
  for (let i = 0; i < 13; i++) chunks.push(randomBytes(100 * 1024 + i));
  const want = Buffer.concat(chunks);
  const up = new Upload({ client: s3, params: { Bucket: bucket, Key: 'unknown.bin', Body: Readable.from(chunks) } });
  await up.done();
  const got = await readAll((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'unknown.bin' }))).Body);
  assert(got.equals(want), `read back ${got.length} bytes, sent ${want.length}`);
});

await step('GetObject ChecksumMode ENABLED returns the checksum', async () => {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'buf.bin', ChecksumMode: 'ENABLED' }));
  const got = await readAll(r.Body); // the SDK validates the checksum while reading
  assert(got.equals(buf), 'body differs');
  const sums = ['ChecksumCRC32', 'ChecksumCRC32C', 'ChecksumCRC64NVME', 'ChecksumSHA1', 'ChecksumSHA256']
    .filter((k) => r[k]);
  assert(sums.length > 0, `no x-amz-checksum-* header came back (headers: ${JSON.stringify(lastResp && lastResp.headers)})`);
});

await step('HeadObject', async () => {
  const r = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'buf.bin' }));
  assert(r.ContentLength === buf.length, `ContentLength ${r.ContentLength}`);
  assert(r.ETag === '"' + createHash('md5').update(buf).digest('hex') + '"', `ETag ${r.ETag}`);
});

await step('ListObjectsV2', async () => {
  const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  const keys = (r.Contents || []).map((c) => c.Key);
  for (const k of ['buf.bin', 'str.txt']) assert(keys.includes(k), `${k} not listed: ${keys}`);
  const b = r.Contents.find((c) => c.Key === 'buf.bin');
  assert(b.Size === buf.length, `Size ${b.Size}`);
});

await step('CopyObject', async () => {
  const r = await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy.bin', CopySource: `${bucket}/buf.bin` }));
  assert(r.CopyObjectResult && r.CopyObjectResult.ETag, 'no CopyObjectResult.ETag');
  const got = await readAll((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'copy.bin' }))).Body);
  assert(got.equals(buf), 'copy differs from its source');
});

await step('PutObject IfNoneMatch * twice: second is 412', async () => {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'lock', Body: 'first', IfNoneMatch: '*' }));
  let err = null;
  try {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'lock', Body: 'second', IfNoneMatch: '*' }));
  } catch (e) {
    err = e;
  }
  assert(err, 'the second conditional put succeeded');
  assert(statusOf(err) === 412, `second put: ${err.name} HTTP ${statusOf(err)}, want 412`);
  const got = await readAll((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'lock' }))).Body);
  assert(got.toString() === 'first', `object holds '${got}'`);
});

await step('DeleteObjects (checksum header, no Content-MD5)', async () => {
  const r = await s3.send(new DeleteObjectsCommand({
    Bucket: bucket,
    Delete: { Objects: [{ Key: 'str.txt' }, { Key: 'copy.bin' }, { Key: 'never-was' }] },
  }));
  assert(!r.Errors || r.Errors.length === 0, `Errors: ${JSON.stringify(r.Errors)}`);
  const del = (r.Deleted || []).map((d) => d.Key).sort();
  assert(JSON.stringify(del) === JSON.stringify(['copy.bin', 'never-was', 'str.txt']), `Deleted ${del}`);
  const sent = lastReq && lastReq.headers;
  const how = sent && (sent['content-md5'] ? 'Content-MD5' :
    Object.keys(sent).find((h) => h.startsWith('x-amz-checksum-')));
  console.log(`    (DeleteObjects integrity header: ${how})`);
  const l = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  const keys = (l.Contents || []).map((c) => c.Key);
  assert(!keys.includes('str.txt') && !keys.includes('copy.bin'), `still listed: ${keys}`);
});

await step('lib-storage Upload 100 MiB, 8 MiB parts, queueSize 4, then read back', async () => {
  const size = 100 * MiB + 12345;
  const data = randomBytes(size);
  const want = createHash('sha256').update(data).digest('hex');
  // A stream, so lib-storage cuts the parts itself, four in flight.
  const pieces = [];
  for (let off = 0; off < size; off += 1 * MiB) pieces.push(data.subarray(off, Math.min(off + MiB, size)));
  const up = new Upload({
    client: s3,
    params: { Bucket: bucket, Key: 'big.bin', Body: Readable.from(pieces) },
    queueSize: 4,
    partSize: 8 * MiB,
    leavePartsOnError: false,
  });
  let maxLoaded = 0;
  up.on('httpUploadProgress', (p) => { maxLoaded = Math.max(maxLoaded, p.loaded || 0); });
  const r = await up.done();
  assert(/-13"$/.test(r.ETag || ''), `ETag ${r.ETag}, want a multipart ETag of 13 parts`);
  assert(maxLoaded === size, `progress reached ${maxLoaded} of ${size}`);
  const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'big.bin' }));
  assert(h.ContentLength === size, `ContentLength ${h.ContentLength}`);
  const got = await sha256Of((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'big.bin' }))).Body);
  assert(got === want, `sha256 ${got}, want ${want}`);
});

await step('lib-storage Upload aborted mid-way leaves no upload and no object', async () => {
  const size = 48 * MiB;
  const pieces = [];
  for (let i = 0; i < size / MiB; i++) pieces.push(randomBytes(MiB));
  const up = new Upload({
    client: s3,
    params: { Bucket: bucket, Key: 'aborted.bin', Body: Readable.from(pieces) },
    queueSize: 2,
    partSize: 5 * MiB,
    leavePartsOnError: false,
  });
  let fired = false;
  up.on('httpUploadProgress', (p) => {
    if (!fired && p.loaded >= 5 * MiB) {
      fired = true;
      up.abort();
    }
  });
  let err = null;
  try {
    await up.done();
  } catch (e) {
    err = e;
  }
  assert(fired, 'no part finished, so the abort never fired');
  assert(err, 'the aborted Upload resolved');
  assert(err.name === 'AbortError', `rejected with ${err.name}: ${err.message}`);
  // done() rejects at once; lib-storage sends AbortMultipartUpload once the
  // parts in flight have finished. Wait for that (up to a minute: a slow
  // sanitizer build must not fail this).
  let left = [];
  for (let i = 0; i < 600; i++) {
    const l = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'aborted.bin' }));
    left = l.Uploads || [];
    if (left.length === 0) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  for (const u of left) {
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
  }
  assert(left.length === 0, `uploads left after the abort: ${JSON.stringify(left.map((u) => u.UploadId))}`);
  let herr = null;
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'aborted.bin' }));
  } catch (e) {
    herr = e;
  }
  assert(herr && statusOf(herr) === 404, `HeadObject after abort: ${herr ? statusOf(herr) : 200}`);
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
