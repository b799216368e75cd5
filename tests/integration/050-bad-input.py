#!/usr/bin/python3
# LABELS: s3
# TIMEOUT: 300
"""050-bad-input: hand-made malformed requests over raw sockets. Each must get
the right S3 error or a closed connection, never a 5xx or a crash, and the
server must keep serving: huge headers and URLs, malformed Authorization,
bad URL encoding, absurd ranges, truncated bodies, Content-Length mismatches,
malformed XML to ?delete, too many connections, slow clients (idle, trickled
headers, stalled body); plus the HTTP features real clients rely on
(keep-alive, Expect: 100-continue, chunked bodies) and the error body shape."""
import hashlib
import base64
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from lib import build_request, raw_request, read_response, error_code, Closed  # noqa: E402

MAXCONN = 16
t = lib.Test()
conf = os.path.join(t.dir, "bad.conf")
with open(conf, "w") as f:
    f.write(f"[s3]\nmax_connections = {MAXCONN}\ntimeout = 20\n")
srv = t.server(extra=["--config", conf])
srv.start()
P = srv.s3_port
s3 = srv.client()
B = "bad-input"
s3.create_bucket(Bucket=B)
TEN = b"0123456789"
s3.put_object(Bucket=B, Key="ten", Body=TEN)


def alive(desc):
    """A normal signed GET on a new connection still works."""
    try:
        st, _, body = raw_request(P, build_request("GET", f"/{B}/ten", P), timeout=30)
        return t.check(f"still serving after {desc}", st == 200 and body == TEN, f"got {st} {body[:200]!r}")
    except Exception as e:  # noqa: BLE001
        return t.check(f"still serving after {desc}", False, f"{type(e).__name__}: {e}")


def send(data, timeout=30, shut=False):
    """Sends data, returns (status, headers, body) or ('closed', None, msg)."""
    try:
        with socket.create_connection(("127.0.0.1", P), timeout=timeout) as s:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            if shut:
                s.shutdown(socket.SHUT_WR)
            return read_response(s, timeout)
    except Closed as e:
        return "closed", None, str(e).encode()
    except (ConnectionResetError, BrokenPipeError) as e:
        return "closed", None, str(e).encode()


def is_s3_error(st, hdrs, body, codes=None, statuses=None):
    """A proper S3 error: XML with Code/Message/RequestId, x-amz-request-id."""
    if st == "closed":
        return False
    code = error_code(body)
    ok = code is not None and b"<RequestId>" in body and "x-amz-request-id" in hdrs
    if codes is not None:
        ok = ok and code in codes
    if statuses is not None:
        ok = ok and st in statuses
    return ok


def probe(desc, data, codes=None, statuses=(400,), allow_close=True, **kw):
    st, hd, body = send(data, **kw)
    if st == "closed":
        t.check(f"{desc} -> closed connection", allow_close, f"connection closed, wanted an S3 error {codes}")
    else:
        t.check(f"{desc} -> {st} {error_code(body)}", is_s3_error(st, hd, body, codes, statuses),
                f"want S3 error {codes} status {statuses}; got {st} {hd} {body[:300]!r}")
    return st, hd, body


# ---- error body shape -----------------------------------------------------------------
st, hd, body = send(build_request("GET", f"/{B}/missing", P))
t.check("404 NoSuchKey has Code, Message, Resource, RequestId",
        st == 404 and all(x in body for x in (b"<Code>NoSuchKey</Code>", b"<Message>", b"<Resource>", b"<RequestId>")),
        f"got {st} {body[:400]!r}")
rid = body.split(b"<RequestId>")[1].split(b"</RequestId>")[0].decode() if b"<RequestId>" in body else None
t.check("x-amz-request-id header equals the body's RequestId", hd and hd.get("x-amz-request-id") == rid,
        f"header {hd and hd.get('x-amz-request-id')!r} body {rid!r}")

# ---- HTTP features -------------------------------------------------------------------------
with socket.create_connection(("127.0.0.1", P), timeout=30) as s:
    good = 0
    for i in range(3):
        s.sendall(build_request("GET", f"/{B}/ten", P))
        try:
            st, _, body = read_response(s)
            good += st == 200 and body == TEN
        except Closed:
            break
    t.check("keep-alive: three GETs on one connection", good == 3, f"{good} of 3 answered")
body100 = os.urandom(50000)
with socket.create_connection(("127.0.0.1", P), timeout=30) as s:
    req = build_request("PUT", f"/{B}/expect", P, headers={"Expect": "100-continue"}, body=body100)
    head, _, _ = req.partition(b"\r\n\r\n")
    s.sendall(head + b"\r\n\r\n")
    try:
        st, _, _ = read_response(s, timeout=10, head_only=True)
        t.expect_eq("Expect: 100-continue gets 100 before the body", st, 100)
        s.sendall(body100)
        st, _, rb = read_response(s)
        t.check("PUT after 100-continue -> 200", st == 200, f"got {st} {rb[:200]!r}")
    except (Closed, socket.timeout) as e:
        t.fail("Expect: 100-continue", f"{type(e).__name__}: {e}")
r = t.attempt("object sent after 100-continue", lambda: s3.get_object(Bucket=B, Key="expect")["Body"].read())
t.check("object sent after 100-continue is byte-exact", r == body100)
chunked_body = os.urandom(70000)
req = build_request("PUT", f"/{B}/chunked", P, headers={"Transfer-Encoding": "chunked"},
                    payload_hash=hashlib.sha256(chunked_body).hexdigest(), content_length=None)
req = req.replace(b"Content-Length: 0\r\n", b"")
head = req.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
enc = b""
for off in range(0, len(chunked_body), 30000):
    piece = chunked_body[off:off + 30000]
    enc += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
enc += b"0\r\n\r\n"
st, hd, rb = send(head + enc)
t.check("PUT with Transfer-Encoding: chunked -> 200", st == 200, f"got {st} {rb[:300]!r}")
r = t.attempt("chunked object", lambda: s3.get_object(Bucket=B, Key="chunked")["Body"].read())
t.check("chunked object is byte-exact", r == chunked_body, f"{len(r or b'')} bytes")

# ---- huge headers and URLs ---------------------------------------------------------------------
st, hd, body = send(build_request("GET", f"/{B}/ten", P, headers={"X-Big": "a" * 200_000}))
t.check("200 KB header -> 4xx or closed", st == "closed" or 400 <= st < 500, f"got {st} {body[:200]!r}")
alive("a 200 KB header")
many = {f"X-H{i}": "v" * 50 for i in range(3000)}
st, hd, body = send(build_request("GET", f"/{B}/ten", P, headers=many, sign=False))
t.check("3000 headers -> 4xx or closed", st == "closed" or 400 <= st < 500, f"got {st} {body[:200]!r}")
st, hd, body = send(build_request("GET", f"/{B}/" + "k" * 200_000, P, sign=False))
t.check("200 KB URL -> 4xx or closed", st == "closed" or 400 <= st < 500, f"got {st} {body[:200]!r}")
for junk in [b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
             b"\x00\x01\x02\xff" * 100 + b"\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
             b"GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n"]:
    st, hd, body = send(junk)
    t.check(f"malformed request {junk[:24]!r} -> 4xx/505 or closed",
            st == "closed" or 400 <= st < 500 or st == 505, f"got {st} {body[:200]!r}")
alive("malformed request lines")

# ---- malformed Authorization ----------------------------------------------------------------------
def with_auth(value, target=f"/{B}/ten", extra=None):
    h = {"x-amz-date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
         "x-amz-content-sha256": hashlib.sha256(b"").hexdigest(), "Authorization": value}
    h.update(extra or {})
    return build_request("GET", target, P, headers=h, sign=False)


probe("Authorization 'AWS4-HMAC-SHA256 garbage'", with_auth("AWS4-HMAC-SHA256 garbage"),
      codes=("AuthorizationHeaderMalformed", "InvalidArgument", "InvalidRequest"), statuses=(400,), allow_close=False)
probe("Authorization without Signature",
      with_auth(f"AWS4-HMAC-SHA256 Credential={lib.ROOT_KEY}/20250101/us-east-1/s3/aws4_request, "
                "SignedHeaders=host;x-amz-date"),
      codes=("AuthorizationHeaderMalformed", "InvalidArgument", "InvalidRequest"), statuses=(400,), allow_close=False)
probe("Credential with too few parts",
      with_auth(f"AWS4-HMAC-SHA256 Credential={lib.ROOT_KEY}/us-east-1, SignedHeaders=host, Signature=00"),
      codes=("AuthorizationHeaderMalformed", "InvalidArgument"), statuses=(400,), allow_close=False)
day = time.strftime("%Y%m%d", time.gmtime())
probe("Credential for the wrong region",
      with_auth(f"AWS4-HMAC-SHA256 Credential={lib.ROOT_KEY}/{day}/eu-west-1/s3/aws4_request, "
                f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={'0' * 64}"),
      codes=("AuthorizationHeaderMalformed",), statuses=(400,), allow_close=False)
probe("unknown Authorization scheme", with_auth("Foo bar"),
      codes=("InvalidArgument", "AuthorizationHeaderMalformed", "AccessDenied", "InvalidRequest"),
      statuses=(400, 403), allow_close=False)
probe("signature of the wrong length",
      with_auth(f"AWS4-HMAC-SHA256 Credential={lib.ROOT_KEY}/{day}/us-east-1/s3/aws4_request, "
                "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=abc"),
      codes=("SignatureDoesNotMatch", "AuthorizationHeaderMalformed", "InvalidArgument"),
      statuses=(400, 403), allow_close=False)
probe("Authorization of 100 KB",
      with_auth("AWS4-HMAC-SHA256 Credential=" + "A" * 100_000),
      codes=None, statuses=(400, 403, 431), allow_close=True)
probe("AWS v2 signature",
      with_auth(f"AWS {lib.ROOT_KEY}:c2lnbmF0dXJl"),
      codes=("InvalidArgument", "InvalidRequest", "AccessDenied", "AuthorizationHeaderMalformed",
             "SignatureDoesNotMatch", "NotImplemented"), statuses=(400, 403, 501), allow_close=False)
probe("signed request whose payload hash is not hex",
      build_request("GET", f"/{B}/ten", P, payload_hash="nothex!"),
      codes=("InvalidArgument", "XAmzContentSHA256Mismatch", "SignatureDoesNotMatch", "InvalidRequest",
             "AuthorizationHeaderMalformed"),
      statuses=(400, 403), allow_close=False)
alive("malformed Authorization headers")

# ---- bad URL encoding --------------------------------------------------------------------------------
for target in (f"/{B}/bad%ZZkey", f"/{B}/bad%2", f"/{B}/ten?list-type=2&prefix=%G1"):
    probe(f"invalid percent-encoding {target}", build_request("GET", target, P),
          codes=("InvalidURI", "InvalidArgument"), statuses=(400,), allow_close=False)
st, hd, body = send(build_request("PUT", f"/{B}/utf8-%FF%FE", P, body=b"x"))
t.check("key that is not valid UTF-8 -> 4xx S3 error", st != "closed" and 400 <= st < 500 and error_code(body),
        f"got {st} {body[:300]!r}")
alive("bad URL encoding")

# ---- absurd ranges on a 10-byte object ------------------------------------------------------------------
def range_probe(rng, accept):
    st, hd, body = send(build_request("GET", f"/{B}/ten", P, headers={"Range": rng}))
    ok = False
    if st == 200:
        ok = "200" in accept and body == TEN
    elif st == 206:
        ok = ("206" in accept and body == accept["206"][0]
              and hd.get("content-range") == accept["206"][1])
    elif st == 416:
        ok = "416" in accept and error_code(body) == "InvalidRange"
    t.check(f"Range {rng!r} -> {st}", ok, f"accepted {sorted(accept)}; got {st} {hd and hd.get('content-range')} "
            f"{body[:200]!r}")


range_probe("bytes=999999999999-", {"416": 1})
range_probe("bytes=18446744073709551615-18446744073709551615", {"416": 1})
range_probe("bytes=10-", {"416": 1})
range_probe("bytes=0-99999999999999999999999999", {"200": 1, "206": (TEN, "bytes 0-9/10"), "416": 1})
range_probe("bytes=-99999999999999999999999999", {"200": 1, "206": (TEN, "bytes 0-9/10"), "416": 1})
range_probe("bytes=5-2", {"200": 1, "416": 1})
range_probe("bytes=abc", {"200": 1, "416": 1})
range_probe("bytes=", {"200": 1, "416": 1})
range_probe("bytes=-0", {"200": 1, "416": 1})
range_probe("bytes=--5", {"200": 1, "416": 1})
range_probe("bytes=0-1,3-4", {"200": 1, "206": (b"01", "bytes 0-1/10"), "416": 1})
range_probe("items=0-1", {"200": 1, "416": 1})
range_probe("bytes=" + "1" * 5000 + "-", {"200": 1, "416": 1})
alive("absurd ranges")

# ---- truncated bodies and Content-Length mismatches -------------------------------------------------------
full = os.urandom(100_000)
st, _, _ = send(build_request("PUT", f"/{B}/trunc", P, body=full)[:-99_000], shut=True, timeout=30)
t.check("truncated body (signed hash, then close) is not acknowledged", st != 200, f"got {st}")
st, _, _ = send(build_request("PUT", f"/{B}/trunc-unsigned", P, body=full,
                              payload_hash="UNSIGNED-PAYLOAD")[:-99_000], shut=True, timeout=30)
t.check("truncated body (UNSIGNED-PAYLOAD, then close) is not acknowledged", st != 200, f"got {st}")
time.sleep(0.5)
for k in ("trunc", "trunc-unsigned"):
    t.expect_error(f"truncated upload {k} left no object", lambda: s3.head_object(Bucket=B, Key=k), "404", 404)
s3.put_object(Bucket=B, Key="keep", Body=b"old complete version")
send(build_request("PUT", f"/{B}/keep", P, body=full)[:-50_000], shut=True, timeout=30)
time.sleep(0.5)
r = t.attempt("object after a truncated overwrite", lambda: s3.get_object(Bucket=B, Key="keep")["Body"].read())
t.expect_eq("truncated overwrite keeps the old version", r, b"old complete version")

twenty = b"ABCDEFGHIJKLMNOPQRST"
st, hd, body = send(build_request("PUT", f"/{B}/cl-short", P, body=twenty, content_length=10))
t.check("Content-Length 10 with a signed hash of 20 bytes -> 400 XAmzContentSHA256Mismatch",
        st == 400 and error_code(body) == "XAmzContentSHA256Mismatch", f"got {st} {body[:300]!r}")
t.expect_error("no object after a hash mismatch", lambda: s3.head_object(Bucket=B, Key="cl-short"), "404", 404)
st, hd, body = send(build_request("PUT", f"/{B}/cl-unsigned", P, body=twenty, content_length=10,
                                  payload_hash="UNSIGNED-PAYLOAD"))
t.check("Content-Length 10, 20 bytes sent, UNSIGNED-PAYLOAD -> 200 for the first 10", st == 200, f"got {st} {body[:300]!r}")
r = t.attempt("object of the declared length", lambda: s3.get_object(Bucket=B, Key="cl-unsigned")["Body"].read())
t.expect_eq("stored exactly Content-Length bytes", r, twenty[:10])
for cl in ("-5", "abc", "1e3", "99999999999999999999999", "10, 20"):
    req = build_request("PUT", f"/{B}/cl-bad", P, body=b"0123456789", payload_hash="UNSIGNED-PAYLOAD")
    req = req.replace(b"Content-Length: 10", f"Content-Length: {cl}".encode())
    st, hd, body = send(req, timeout=30)
    t.check(f"Content-Length: {cl} -> 4xx or closed", st == "closed" or 400 <= st < 500, f"got {st} {body[:200]!r}")
t.expect_error("no object after bad Content-Length values", lambda: s3.head_object(Bucket=B, Key="cl-bad"), "404", 404)
req = build_request("PUT", f"/{B}/huge", P, payload_hash="UNSIGNED-PAYLOAD", content_length=6 * 1024 ** 3)
probe("PUT declaring 6 GiB", req, codes=("EntityTooLarge",), statuses=(400,), allow_close=False)
alive("truncated bodies and length mismatches")

# ---- malformed XML to ?delete ----------------------------------------------------------------------------
def post_delete(xml):
    md5 = base64.b64encode(hashlib.md5(xml).digest()).decode()
    return build_request("POST", f"/{B}?delete=", P, headers={"Content-MD5": md5,
                                                               "Content-Type": "application/xml"}, body=xml)


laughs = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
          + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(8))
          + b']><Delete><Object><Key>&i;</Key></Object></Delete>')
for name, xml in [("truncated XML", b"<Delete><Object><Key>ten</Key></Object"),
                  ("not XML", b"this is not xml at all"),
                  ("wrong root element", b"<Remove><Object><Key>ten</Key></Object></Remove>"),
                  ("Object without Key", b"<Delete><Object></Object></Delete>"),
                  ("billion laughs", laughs),
                  ("external entity", b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                                      b"<Delete><Object><Key>&x;</Key></Object></Delete>"),
                  ("1001 objects", b"<Delete>" + b"".join(b"<Object><Key>k%d</Key></Object>" % i
                                                          for i in range(1001)) + b"</Delete>"),
                  ("deeply nested", b"<Delete>" + b"<a>" * 50000 + b"</a>" * 50000 + b"</Delete>")]:
    probe(f"?delete with {name}", post_delete(xml), codes=("MalformedXML",), statuses=(400,), allow_close=False)
probe("?delete with an empty body", post_delete(b""), codes=("MalformedXML", "MissingRequestBodyError"),
      statuses=(400,), allow_close=False)
r = t.attempt("object survives the malformed deletes", lambda: s3.get_object(Bucket=B, Key="ten")["Body"].read())
t.expect_eq("ten intact", r, TEN)
alive("malformed XML")

# ---- too many connections ------------------------------------------------------------------------------------
import resource  # noqa: E402
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < 4096:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
N = MAXCONN + 24
socks = [socket.create_connection(("127.0.0.1", P), timeout=10) for _ in range(N)]
time.sleep(1.0)
for s in socks:
    try:
        s.sendall(build_request("GET", f"/{B}/ten", P))
    except OSError:
        pass
served = refused = 0
pending = {s.fileno(): s for s in socks}
bufs = {fd: b"" for fd in pending}
deadline = time.time() + 15
while pending and time.time() < deadline:
    rl, _, _ = select.select(list(pending), [], [], 0.5)
    for fd in rl:
        s = pending[fd]
        try:
            d = s.recv(65536)
        except OSError:
            d = b""
        if not d:
            refused += 1
            del pending[fd]
            continue
        bufs[fd] += d
        if b"\r\n\r\n" in bufs[fd]:
            status = int(bufs[fd].split(b" ", 2)[1])
            if status == 200:
                served += 1
            else:
                refused += 1
            del pending[fd]
t.check(f"{N} connections with max_connections={MAXCONN}: at most {MAXCONN} served",
        served <= MAXCONN, f"served {served}, refused {refused}, no answer {len(pending)}")
t.check(f"the {N - MAXCONN} extra connections are refused or closed, not left hanging",
        refused >= N - MAXCONN and not pending, f"served {served}, refused {refused}, no answer {len(pending)}")
for s in socks:
    s.close()
time.sleep(1.0)
alive("too many connections")

# ---- slow clients (a second server, timeout = 2 s) ------------------------------------------------------------
conf2 = os.path.join(t.dir, "slow.conf")
with open(conf2, "w") as f:
    f.write("[s3]\ntimeout = 2\nmax_connections = 8\n")
slow = t.server(data=os.path.join(t.dir, "data-slow"), extra=["--config", conf2])
slow.start()
SP = slow.s3_port


def closed_within(s, seconds, trickle=None):
    """Seconds until the server closes s (None if it did not); trickle
    sends one more byte every second meanwhile."""
    t0 = time.time()
    s.setblocking(False)
    while time.time() - t0 < seconds:
        rl, _, _ = select.select([s], [], [], 1.0)
        if rl:
            try:
                d = s.recv(65536)
            except (ConnectionResetError, BlockingIOError):
                d = b""
            if not d or b"HTTP/1.1 4" in d or b"HTTP/1.1 5" in d:
                return time.time() - t0
        if trickle:
            try:
                s.send(trickle)
            except (BrokenPipeError, ConnectionResetError):
                return time.time() - t0
            except BlockingIOError:
                pass
    return None


with socket.create_connection(("127.0.0.1", SP), timeout=10) as s:
    s.sendall(b"GET /x/y HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    dt = closed_within(s, 40)
    t.check("idle half-sent request: closed by the server (timeout 2 s)", dt is not None, "still open after 40 s")
with socket.create_connection(("127.0.0.1", SP), timeout=10) as s:
    s.sendall(b"GET /x/y HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    dt = closed_within(s, 40, trickle=b"a")
    t.check("slowloris (one header byte a second): closed by the server", dt is not None,
            "still open after 40 s of trickled header bytes")
    if dt is not None:
        t.log(f"slowloris connection closed after {dt:.1f}s")
sc = slow.client()
sc.create_bucket(Bucket="slow")
with socket.create_connection(("127.0.0.1", SP), timeout=10) as s:
    req = build_request("PUT", "/slow/stalled", SP, body=os.urandom(1 << 20), payload_hash="UNSIGNED-PAYLOAD")
    s.sendall(req[:len(req) - (1 << 20) + 1000])
    dt = closed_within(s, 40)
    t.check("body stalled after 1000 of 1 MiB bytes: closed by the server", dt is not None, "still open after 40 s")
t.expect_error("stalled upload left no object", lambda: sc.head_object(Bucket="slow", Key="stalled"), "404", 404)
# the cap must not be held forever by idle connections
idle = [socket.create_connection(("127.0.0.1", SP), timeout=10) for _ in range(12)]
time.sleep(6)
try:
    st, _, body = raw_request(SP, build_request("GET", "/slow?list-type=2", SP), timeout=30)
    t.check("idle connections filling the cap time out; a new client is served", st == 200, f"got {st} {body[:200]!r}")
except Exception as e:  # noqa: BLE001
    t.fail("idle connections filling the cap time out; a new client is served", f"{type(e).__name__}: {e}")
for s in idle:
    s.close()
alive("slow clients on the other server")
t.finish()
