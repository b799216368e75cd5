"""tests/integration/reglib.py - helpers of the registry (Glance v2) tests.

Not a test itself (the suite globs NNN-*.py). On top of lib.py:

    import lib, reglib
    t = lib.Test()
    srv = reglib.server(t, config={"web_download_allow": "127.0.0.1"})
    g = reglib.Glance(t, srv)            # srv started; g.url, g.admin token
    tok = g.token("alice")              # cairn user create + cairn token create
    gc = g.client(tok)                  # glanceclient.Client('2', ...)
    r = g.req("GET", "/v2/images", tok) # requests.Response
    g.expect_error("desc", r, 404)      # Glance-style JSON error body

The server runs `cairn serve --registry-listen 127.0.0.1:0` and the Glance
port is the one its ready line names ("Glance http://H:P"). The admin token
comes from CAIRN_ADMIN_TOKEN (set here, before the server starts).
"""
import hashlib
import json
import os
import re
import subprocess
import time

import lib

ADMIN_TOKEN = "cairn-test-admin-token-0123456789abcdef"
GLANCE_READY_RE = re.compile(r"Glance http://(\[[^\]]*\]|[^\s:/,]+):(\d+)")
MIB = 1 << 20
# Test-of-the-tests: REGLIB_REF_URL=http://H:P runs the Glance parts against a
# reference glance-api instead of cairn (tokens "tok-USER"; no cairn, S3, pool).
REF_URL = os.environ.get("REGLIB_REF_URL")


def requires_registry():
    """Exit 77 when this cairn's `serve` has no --registry-listen yet."""
    if REF_URL:
        return
    try:
        r = subprocess.run([lib.cairn_bin(), "serve", "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60)
        ok = b"--registry-listen" in r.stdout
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        print("SKIP: this cairn has no --registry-listen (no image registry)")
        raise SystemExit(77)


def write_config(t, config, name="cairn.ini"):
    """A config file with a [registry] section (and any other sections given
    as {"section": {k: v}}); returns its path."""
    path = os.path.join(t.dir, name)
    sections = {}
    for k, v in (config or {}).items():
        if isinstance(v, dict):
            sections[k] = v
        else:
            sections.setdefault("registry", {})[k] = v
    with open(path, "w") as f:
        for sec, kv in sections.items():
            f.write(f"[{sec}]\n")
            for k, v in kv.items():
                f.write(f"{k} = {v}\n")
    return path


def server(t, config=None, data=None):
    """A Cairn (lib.py) that also serves the registry on a free port."""
    requires_registry()
    os.environ["CAIRN_ADMIN_TOKEN"] = ADMIN_TOKEN
    extra = ["--registry-listen", "127.0.0.1:0"]
    if config:
        extra += ["--config", write_config(t, config)]
    return t.server(data=data, extra=extra)


def glance_port(srv):
    """The Glance port named by the last start's ready line."""
    text = srv._log_bytes(srv.logs[-1]).decode(errors="replace")
    m = GLANCE_READY_RE.search(text)
    return int(m.group(2)) if m else None


class Glance:
    def __init__(self, t, srv, start=True):
        self.t = t
        self.srv = srv
        self.admin = ADMIN_TOKEN
        self.users = {}
        if start:
            self.start()

    def start(self, must=True):
        if REF_URL:
            import urllib.parse
            self.port = urllib.parse.urlsplit(REF_URL).port
            return True
        ok = self.srv.start(must=must)
        if ok:
            self.port = glance_port(self.srv)
            if not self.t.check("the ready line names the Glance endpoint", self.port,
                                self.srv._tail(self.srv.logs[-1])):
                self.t.finish()
        return ok

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    # ---- users and tokens ----
    def user(self, name):
        """`cairn user create` + `cairn key create` once; returns (key, secret)."""
        if name not in self.users:
            self.users[name] = self.srv.create_user_key(name)
        return self.users[name]

    def token(self, user, ttl=None):
        """`cairn token create USER`: the token (line 1 of stdout). Creates
        the user first (not root)."""
        if REF_URL:
            return "tok-" + user
        if user != "root":
            self.user(user)
        args = ["token", "create", user] + (["--ttl", str(ttl)] if ttl is not None else [])
        rc, out, err = self.srv.cli3(*args)
        if rc != 0 or not out.strip():
            raise RuntimeError(f"cairn {' '.join(args)}: exit {rc}: {out} {err}")
        tok = out.splitlines()[0].strip()
        if not re.fullmatch(r"[0-9a-f]{64}", tok):
            raise RuntimeError(f"cairn token create printed {out!r}: line 1 is not a token")
        return tok

    # ---- clients ----
    def client(self, token):
        import glanceclient
        return glanceclient.Client("2", endpoint=self.url, token=token)

    def req(self, method, path, token=None, json_body=None, data=None, headers=None,
            timeout=60, stream=False, **kw):
        """A plain HTTP request (python3-requests) to the Glance port.
        token=None sends no X-Auth-Token."""
        import requests
        h = dict(headers or {})
        # as a client that asks for JSON (Glance answers webob's JSON error
        # body then; glanceclient itself sends no Accept and gets HTML)
        h.setdefault("Accept", "application/json")
        if token is not None:
            h["X-Auth-Token"] = token
        if json_body is not None:
            data = json.dumps(json_body).encode()
            h.setdefault("Content-Type", "application/json")
        return requests.request(method, self.url + path, data=data, headers=h,
                                timeout=timeout, stream=stream, **kw)

    def patch(self, image_id, token, ops, ctype="application/openstack-images-v2.1-json-patch"):
        return self.req("PATCH", f"/v2/images/{image_id}", token,
                        data=json.dumps(ops).encode() if not isinstance(ops, bytes) else ops,
                        headers={"Content-Type": ctype})

    def show(self, image_id, token=None):
        r = self.req("GET", f"/v2/images/{image_id}", token or self.admin)
        return r.json() if r.status_code == 200 else None

    def wait_status(self, image_id, want, token=None, timeout=60):
        """Polls (0.2 s) until the image's status is want or timeout
        seconds passed; returns the last image JSON (None: not visible)."""
        deadline = time.time() + timeout
        img = None
        while True:
            img = self.show(image_id, token)
            if (img and img.get("status") == want) or time.time() >= deadline:
                return img
            time.sleep(0.2)

    def wait_done(self, image_id, token=None, timeout=60):
        """After an import answered 202: polls until the image is no longer
        importing/saving, then looks again a second later (an import that
        had not started yet must not turn active behind the check)."""
        deadline = time.time() + timeout
        while True:
            img = self.show(image_id, token)
            if not img or img.get("status") not in ("importing", "saving") or time.time() >= deadline:
                break
            time.sleep(0.2)
        time.sleep(1.0)
        return self.wait_status(image_id, "__settled__", token, timeout=0) if img else img

    # ---- assertions ----
    def expect_error(self, desc, r, status, msg_re=None):
        """r (a requests.Response) must have this status and a Glance-style
        JSON error body {"message", "code": "NNN Title", "title"}."""
        ok = self.t.check(f"{desc} -> {status}", r.status_code == status,
                          f"got {r.status_code} {r.content[:200]!r}")
        if not ok:
            return False
        try:
            j = r.json()
        except ValueError:
            j = None
        ct = r.headers.get("Content-Type", "")
        good = (isinstance(j, dict) and isinstance(j.get("message"), str) and
                isinstance(j.get("title"), str) and
                j.get("code") == f"{status} {j.get('title')}" and ct.startswith("application/json"))
        self.t.check(f"{desc}: JSON error body {{message, code '{status} Title', title}}", good,
                     f"Content-Type {ct!r}, body {r.text[:300]!r}")
        if msg_re and isinstance(j, dict):
            self.t.check(f"{desc}: message matches /{msg_re}/",
                         re.search(msg_re, str(j.get("message")), re.I), f"{j.get('message')!r}")
        return good

    def import_refused(self, desc, r, image_id, token, statuses):
        """An import the server must refuse: at once (one of statuses, with a
        Glance error body) or, answered 202, by failing (the image never turns
        active). Returns "now" or "later" (for the report), None on failure."""
        if r.status_code == 202:
            img = self.wait_done(image_id, token)
            ok = self.t.check(f"{desc}: accepted (202) then refused: the image is not active",
                              img is not None and img.get("status") != "active", img)
            self.t.log(f"note: {desc}: 202 then failure (Glance would refuse at once)")
            return "later" if ok else None
        ok = self.t.check(f"{desc} -> one of {statuses}", r.status_code in statuses,
                          f"got {r.status_code} {r.content[:200]!r}")
        if ok:
            self.expect_error(desc, r, r.status_code)
        return "now" if ok else None

    def expect_status(self, desc, r, status):
        return self.t.check(f"{desc} -> {status}", r.status_code == status,
                            f"got {r.status_code} {r.content[:200]!r}")

    # ---- pool space (no leak checks) ----
    def pool(self):
        if REF_URL:
            return {}
        st, j, raw = self.srv.api("GET", "/admin/v1/pool/stats")
        if st != 200 or not j:
            raise RuntimeError(f"GET /admin/v1/pool/stats: {st} {raw[:200]!r}")
        return j["pool"]

    def gc(self):
        if REF_URL:
            return ""
        rc, out = self.srv.cli("gc", check=False)
        self.t.check("cairn gc exits 0", rc == 0, out[-1000:])
        return out


def md5(b):
    return hashlib.md5(b).hexdigest()


def sha512(b):
    return hashlib.sha512(b).hexdigest()


def pattern_bytes(n, seed):
    """n bytes, deterministic per seed, not compressible, not dedupable
    across seeds."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha512(b"%s:%d" % (str(seed).encode(), i)).digest()
        i += 1
    return bytes(out[:n])


def raw_put(port, path, token, parts, content_length=None, chunked=False, finish=True,
            ctype="application/octet-stream", timeout=60):
    """PUT over a raw socket: headers, then each of parts (bytes) as sent
    (chunked: each part one chunk, and the 0-chunk when finish). finish=False
    closes the connection right after the last part (an upload cut short) and
    returns None; else returns (status, headers, body) (send errors while
    the server answers early are ignored)."""
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    head = [f"PUT {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"X-Auth-Token: {token}",
            f"Content-Type: {ctype}", "Accept: application/json"]
    if chunked:
        head.append("Transfer-Encoding: chunked")
    elif content_length is not None:
        head.append(f"Content-Length: {content_length}")
    try:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        for p in parts:
            s.sendall(b"%x\r\n%s\r\n" % (len(p), p) if chunked else p)
        if chunked and finish:
            s.sendall(b"0\r\n\r\n")
    except OSError:
        pass
    if not finish:
        s.close()
        return None
    try:
        return lib.read_response(s, timeout)
    finally:
        s.close()
