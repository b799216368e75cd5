#!/usr/bin/python3
"""bench/loadgen_sink.py PORT SECRET - an HTTP sink that checks what loadgen's issue-4 modes send.

A self-test of bench/loadgen.c (run by bench/selftest-loadgen.sh), independent of any S3 server.

aws-chunked: it accepts `PUT /bucket` (200) and `PUT /bucket/key` with an aws-chunked body,
decodes it while it streams in and answers 200 only when the body is exactly right, else 400
with an S3-style <Error><Code>..</Code> naming what was wrong. Checked, from the AWS SigV4
streaming documents:
- Content-Encoding aws-chunked, x-amz-decoded-content-length = the decoded bytes, Content-Length
  = the encoded bytes; chunk frames "<hex>[;chunk-signature=<64 hex>]\\r\\n<data>\\r\\n", a final
  0-size frame;
- STREAMING-UNSIGNED-PAYLOAD-TRAILER: x-amz-trailer names x-amz-checksum-crc32, the trailer
  line after the final frame carries base64(big-endian CRC32) of the decoded bytes (zlib.crc32),
  then an empty line;
- STREAMING-AWS4-HMAC-SHA256-PAYLOAD: the Authorization header's seed signature recomputed from
  its SignedHeaders (the secret is the second argument), and every chunk signature chained on
  the previous one (AWS4-HMAC-SHA256-PAYLOAD string to sign).
The decoded bytes are also hashed (MD5) and returned as the ETag, so a caller can compare them
with `loadgen gen-file` output.

Multipart, kept in memory (part MD5s only): POST ?uploads= (CreateMultipartUpload), PUT
?partNumber=N&uploadId=U (ETag = MD5 of the part), POST ?uploadId=U (Complete: the parts listed
must be 1..N in order with the ETags given, the answer is a CompleteMultipartUploadResult with
ETag MD5(part MD5s)-N), DELETE ?uploadId=U. Buckets named for a fault make it misbehave the
way a broken server would, so the self-test can check loadgen reports an error and no speed:
"fault-etag" (a wrong object ETag), "fault-200err" (Complete answers 200 with an <Error> body),
"fault-part3" (UploadPart 3 answers 500). Debian's python3, standard library only. Not used by
run.sh.
"""
import base64
import hashlib
import hmac
import http.server
import re
import sys
import threading
import urllib.parse
import uuid
import zlib

SECRET = sys.argv[2] if len(sys.argv) > 2 else ""
EMPTY = hashlib.sha256(b"").hexdigest()
UPLOADS = {}  # upload id -> {part number: md5 bytes}
LOCK = threading.Lock()


class Bad(Exception):
    pass


def hm(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, code, body=b"", etag=None):
        self.send_response(code)
        if etag:
            self.send_header("ETag", '"%s"' % etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_exact(self, n):
        data = self.rfile.read(n)
        if len(data) != n:
            raise Bad("ShortBody")
        self.consumed += n
        return data

    def read_line(self):
        line = self.rfile.readline(4096)
        self.consumed += len(line)
        if not line.endswith(b"\r\n"):
            raise Bad("BadLineEnd")
        return line[:-2].decode()

    def seed_signature(self, auth):
        # "AWS4-HMAC-SHA256 Credential=AK/date/region/s3/aws4_request, SignedHeaders=a;b, Signature=x"
        parts = dict(p.strip().split("=", 1) for p in auth.split(" ", 1)[1].split(","))
        cred = parts["Credential"].split("/")
        scope = "/".join(cred[1:])
        names = parts["SignedHeaders"].split(";")
        canon_h = "".join("%s:%s\n" % (n, " ".join(self.headers.get(n, "").split()))
                          for n in names)
        path, _, query = self.path.partition("?")
        creq = "\n".join([self.command, path, query, canon_h, parts["SignedHeaders"],
                          self.headers["x-amz-content-sha256"]])
        date = self.headers["x-amz-date"]
        sts = "\n".join(["AWS4-HMAC-SHA256", date, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
        key = ("AWS4" + SECRET).encode()
        for p in cred[1:]:
            key = hm(key, p)
        if hmac.new(key, sts.encode(), hashlib.sha256).hexdigest() != parts["Signature"]:
            raise Bad("SignatureDoesNotMatch")
        return key, date, scope, parts["Signature"]

    def error(self, code, s3code):
        self.answer(code, f"<Error><Code>{s3code}</Code></Error>".encode())

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode()
        path, _, query = self.path.partition("?")
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        if "uploads" in q:
            uid = uuid.uuid4().hex + "+/="  # characters loadgen must URI-encode
            with LOCK:
                UPLOADS[uid] = {}
            return self.answer(200, ("<InitiateMultipartUploadResult><UploadId>%s</UploadId>"
                                     "</InitiateMultipartUploadResult>" % uid).encode())
        uid = q.get("uploadId", [""])[0]
        with LOCK:
            parts = UPLOADS.pop(uid, None)
        if parts is None:
            return self.error(404, "NoSuchUpload")
        listed = re.findall(r"<Part><PartNumber>(\d+)</PartNumber><ETag>([^<]*)</ETag></Part>",
                            body)
        if [int(n) for n, _ in listed] != list(range(1, len(parts) + 1)):
            return self.error(400, "InvalidPartOrder")
        for n, etag in listed:
            if etag.strip('"') != parts[int(n)].hex():
                return self.error(400, "InvalidPart")
        if path.startswith("/fault-200err/"):
            return self.answer(200, b"<Error><Code>InternalError</Code></Error>")
        md = hashlib.md5(b"".join(parts[n] for n in sorted(parts))).hexdigest()
        if path.startswith("/fault-etag/"):
            md = "0" * 32
        self.answer(200, ("<CompleteMultipartUploadResult><ETag>&quot;%s-%d&quot;</ETag>"
                          "</CompleteMultipartUploadResult>" % (md, len(parts))).encode())

    def do_DELETE(self):
        q = urllib.parse.parse_qs(self.path.partition("?")[2])
        with LOCK:
            UPLOADS.pop(q.get("uploadId", [""])[0], None)
        self.answer(204)

    def do_PUT(self):
        self.consumed = 0
        length = int(self.headers.get("Content-Length", "0"))
        path = urllib.parse.unquote(self.path.split("?")[0])
        if path.count("/") < 2:  # PUT /bucket
            self.rfile.read(length)
            return self.answer(200)
        q = urllib.parse.parse_qs(self.path.partition("?")[2])
        if "uploadId" in q:  # UploadPart
            data = self.rfile.read(length)
            n = int(q["partNumber"][0])
            if path.startswith("/fault-part3/") and n == 3:
                return self.error(500, "InternalError")
            md = hashlib.md5(data).digest()
            with LOCK:
                if q["uploadId"][0] not in UPLOADS:
                    return self.error(404, "NoSuchUpload")
                UPLOADS[q["uploadId"][0]][n] = md
            return self.answer(200, etag=md.hex())
        try:
            etag = self.decode(length)
        except (Bad, ValueError, KeyError) as e:
            # drain what is left so the connection stays usable, then say what was wrong
            if length > self.consumed:
                self.rfile.read(length - self.consumed)
            msg = ("<Error><Code>%s</Code><Message>%s</Message></Error>"
                   % (type(e).__name__ if not isinstance(e, Bad) else e.args[0], e))
            return self.answer(400, msg.encode())
        self.answer(200, etag=etag)

    def decode(self, length):
        mode = self.headers.get("x-amz-content-sha256", "")
        if "aws-chunked" not in self.headers.get("Content-Encoding", ""):
            raise Bad("NotAwsChunked")
        want = int(self.headers["x-amz-decoded-content-length"])
        signed = mode == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
        if signed:
            key, date, scope, prev = self.seed_signature(self.headers["Authorization"])
        elif mode == "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
            if self.headers.get("x-amz-trailer") != "x-amz-checksum-crc32":
                raise Bad("TrailerNotAnnounced")
        else:
            raise Bad("UnexpectedContentSha256")
        crc, md5, got = 0, hashlib.md5(), 0
        while True:
            hdr = self.read_line()
            size_s, _, ext = hdr.partition(";")
            size = int(size_s, 16)
            data = self.read_exact(size) if size else b""
            if signed:
                if not ext.startswith("chunk-signature="):
                    raise Bad("MissingChunkSignature")
                sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", date, scope, prev, EMPTY,
                                 hashlib.sha256(data).hexdigest()])
                prev = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
                if prev != ext[len("chunk-signature="):]:
                    raise Bad("ChunkSignatureDoesNotMatch")
            elif ext:
                raise Bad("UnexpectedChunkExtension")
            if size == 0:
                break
            if self.read_line() != "":
                raise Bad("BadChunkEnd")
            crc = zlib.crc32(data, crc)
            md5.update(data)
            got += size
        if not signed:
            trailer = self.read_line()
            expect = base64.b64encode(crc.to_bytes(4, "big")).decode()
            if trailer != "x-amz-checksum-crc32:" + expect:
                raise Bad("BadDigest")
        if self.read_line() != "":
            raise Bad("BadFinalLine")
        if got != want:
            raise Bad("IncompleteBody")
        if self.consumed != length:
            raise Bad("ContentLengthMismatch")
        return md5.hexdigest()


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
