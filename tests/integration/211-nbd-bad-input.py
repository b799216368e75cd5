#!/usr/bin/python3
# LABELS: quick nbd
# TIMEOUT: 120
"""211-nbd-bad-input: hand-made NBD traffic over raw sockets. Each malformed
handshake or request must get its NBD error (and the connection goes on) or
a closed connection, never a crash or a stuck server: unknown client flags,
wrong option magic, oversized options (discarded with ERR_TOO_BIG, or closed
when absurd), GO/INFO/EXPORT_NAME on missing exports and bad tokens, LIST
naming nothing, requests before negotiation, a request with bad magic, reads
and writes past the end (EINVAL; ENOSPC with the payload skipped), oversized
reads (EINVAL) and writes (closed), unknown commands and flags, requests
pipelined behind GO, clients that vanish mid-payload and mid-read, many idle
handshakes, 300 connections at once (past the cap); structured replies,
base:allocation and BLOCK_STATUS, by hand. After all of it a new connection reads and writes, the bytes the
refused writes carried are nowhere, and the server stops cleanly (leak check).

NBD_DEV=PORT:EXPORT runs only the probes against another server (nbdkit
memory 64M, say) to check the test itself."""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
OPT_REPLY_MAGIC = 0x0003E889045565A9
REQ_MAGIC = 0x25609513
SIMPLE_MAGIC = 0x67446698
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_INFO, OPT_GO = 1, 2, 3, 6, 7
OPT_STRUCTURED_REPLY, OPT_SET_META_CONTEXT = 8, 10
REP_META_CONTEXT = 4
STRUCT_MAGIC = 0x668E33EF
RT_NONE, RT_OFFSET_DATA, RT_OFFSET_HOLE, RT_BLOCK_STATUS, RT_ERROR, RT_ERROR_OFFSET = 0, 1, 2, 5, 32769, 32770
CMD_WRITE_ZEROES, CMD_BLOCK_STATUS = 6, 7
REP_ACK, REP_SERVER, REP_INFO = 1, 2, 3
REP_ERR_TOO_BIG = 0x80000009
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM = 0, 1, 2, 3, 4
EINVAL, ENOSPC, ENOTSUP, EPERM = 22, 28, 95, 1
SIZE = 128 << 20
MIB = 1 << 20


class Closed(Exception):
    pass


class Conn:
    """One raw NBD connection (fixed newstyle, NO_ZEROES, simple replies)."""

    def __init__(self, port, timeout=30):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.size = None
        self.tflags = None

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def send(self, b):
        try:
            self.s.sendall(b)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Closed(f"send: {e}")

    def recv(self, n):
        buf = b""
        while len(buf) < n:
            try:
                d = self.s.recv(n - len(buf))
            except ConnectionResetError:
                d = b""
            if not d:
                raise Closed(f"closed after {len(buf)} of {n} bytes")
            buf += d
        return buf

    def greeting(self, cflags=3):
        g = self.recv(18)
        magic, opt, hflags = struct.unpack(">QQH", g)
        if magic != NBDMAGIC or opt != IHAVEOPT:
            raise RuntimeError(f"bad greeting {g!r}")
        self.send(struct.pack(">I", cflags))
        return hflags

    def option(self, opt, data=b"", magic=IHAVEOPT, length=None):
        self.send(struct.pack(">QII", magic, opt, len(data) if length is None else length) + data)

    def opt_reply(self):
        """(option, reply type, data)."""
        magic, opt, rtype, ln = struct.unpack(">QIII", self.recv(20))
        if magic != OPT_REPLY_MAGIC:
            raise RuntimeError(f"bad option reply magic {magic:#x}")
        return opt, rtype, self.recv(ln) if ln else b""

    def go(self, name, opt=OPT_GO):
        """Sends GO (or INFO) and reads replies to the final one. Returns
        (final reply type, [info replies]); records size/flags on success."""
        nb = name.encode()
        self.option(opt, struct.pack(">I", len(nb)) + nb + struct.pack(">H", 0))
        infos = []
        while True:
            _, rtype, data = self.opt_reply()
            if rtype == REP_INFO:
                infos.append(data)
                if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == 0:
                    self.size, self.tflags = struct.unpack(">QH", data[2:12])
                continue
            return rtype, infos

    def request(self, typ, off, length, flags=0, cookie=1, magic=REQ_MAGIC, payload=b""):
        self.send(struct.pack(">IHHQQI", magic, flags, typ, cookie, off, length) + payload)

    def reply(self, read_len=0):
        """(error, cookie, data) of a simple reply; data only when error == 0."""
        magic, err, cookie = struct.unpack(">IIQ", self.recv(16))
        if magic != SIMPLE_MAGIC:
            raise RuntimeError(f"bad reply magic {magic:#x}")
        data = self.recv(read_len) if (err == 0 and read_len) else b""
        return err, cookie, data

    def sreply(self):
        """All chunks of one structured reply: [(flags, type, cookie, payload)]."""
        chunks = []
        while True:
            magic = struct.unpack(">I", self.recv(4))[0]
            if magic == SIMPLE_MAGIC and not chunks:
                # allowed for commands other than READ and BLOCK_STATUS
                err, cookie = struct.unpack(">IQ", self.recv(12))
                return [(1, RT_ERROR if err else RT_NONE, cookie, struct.pack(">IH", err, 0) if err else b"")]
            flags, typ, cookie, ln = struct.unpack(">HHQI", self.recv(16))
            if magic != STRUCT_MAGIC:
                raise RuntimeError(f"bad structured reply magic {magic:#x}")
            chunks.append((flags, typ, cookie, self.recv(ln) if ln else b""))
            if flags & 1:
                return chunks

    def is_closed(self, timeout=30):
        """True when the peer closes (EOF or reset) within timeout; unsolicited
        bytes before the close are skipped (a server may send a last reply)."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def pat(seed, n):
    return bytes((seed + i * 7) & 0xFF for i in range(n))


def run_probes(t, port, export, bad_exports, alive_extra=None):
    """Every probe against the NBD server at port; export is a good export name
    (volume of SIZE bytes), bad_exports names that must be refused."""

    def alive(desc):
        deadline = time.time() + 30   # closed connections free their slots soon, not at once
        while True:
            try:
                c = Conn(port)
                c.greeting()
                c.close()
                break
            except (Closed, OSError):
                if time.time() > deadline:
                    break
                time.sleep(0.1)
        try:
            c = Conn(port)
            c.greeting()
            rtype, _ = c.go(export)
            ok = rtype == REP_ACK and c.size == SIZE
            if ok:
                c.request(CMD_READ, 0, 4096, cookie=77)
                err, cookie, data = c.reply(4096)
                ok = err == 0 and cookie == 77 and len(data) == 4096
            c.close()
            ok = ok and (alive_extra is None or alive_extra())
            return t.check(f"still serving after {desc}", ok, f"GO reply {rtype:#x} size {c.size}")
        except Exception as e:  # noqa: BLE001
            return t.check(f"still serving after {desc}", False, f"{type(e).__name__}: {e}")

    def session():
        c = Conn(port)
        c.greeting()
        rtype, _ = c.go(export)
        if rtype != REP_ACK:
            raise RuntimeError(f"GO {export!r} refused: {rtype:#x}")
        return c

    # -- handshake --------------------------------------------------------
    c = Conn(port)
    hflags = c.greeting(cflags=0xFFFFFFFF)
    t.check("greeting offers fixed newstyle and NO_ZEROES", hflags & 3 == 3, f"flags {hflags:#x}")
    t.check("unknown client flags -> connection closed", c.is_closed())
    c.close()

    c = Conn(port)
    c.greeting()
    c.option(OPT_GO, b"\0" * 6, magic=0x1122334455667788)
    t.check("option with wrong magic -> connection closed", c.is_closed())
    c.close()
    alive("bad magics")

    c = Conn(port)
    c.greeting()
    c.option(OPT_GO, b"x" * 8192)    # over what a server keeps, under what it reads away
    try:
        _, rtype, _ = c.opt_reply()
        ok = rtype & 0x80000000 != 0
        t.check("8 KiB GO option -> an error reply (TOO_BIG/INVALID), not a crash", ok,
                f"reply type {rtype:#x}")
        rtype, _ = c.go(export)
        t.check("after the oversized option the same connection negotiates GO", rtype == REP_ACK,
                f"reply {rtype:#x}")
    except Closed as e:
        t.check("8 KiB GO option -> error reply or close", True, str(e))
    c.close()

    c = Conn(port)
    c.greeting()
    c.option(OPT_GO, b"", length=0xFFFFFFF0)
    c.send(b"y" * 65536)
    t.check("option claiming 4 GiB of data -> connection closed (not read forever)", c.is_closed())
    c.close()
    alive("oversized options")

    c = Conn(port)
    c.greeting()
    for name in bad_exports:
        rtype, _ = c.go(name)
        t.check(f"GO on {name!r} -> an error reply", rtype & 0x80000000 != 0 and c.size is None,
                f"reply {rtype:#x}, size {c.size}")
        rtype, _ = c.go(name, opt=OPT_INFO)
        t.check(f"INFO on {name!r} -> an error reply", rtype & 0x80000000 != 0, f"reply {rtype:#x}")
    rtype, infos = c.go(export)
    t.check("after refused GOs, GO on the good export works on the same connection",
            rtype == REP_ACK and c.size == SIZE, f"reply {rtype:#x} size {c.size}")
    c.close()

    c = Conn(port)
    c.greeting()
    c.option(OPT_LIST)
    names = []
    try:
        while True:
            _, rtype, data = c.opt_reply()
            if rtype == REP_SERVER:
                names.append(data[4:4 + struct.unpack(">I", data[:4])[0]])
                continue
            break
        t.check("LIST is answered (ACK or an error)", rtype == REP_ACK or rtype & 0x80000000,
                f"{rtype:#x}")
        t.check("LIST gives no token to an anonymous client",
                not any(b"@" in n for n in names), f"{names!r}")
    except Closed as e:
        t.fail("LIST closed the connection", str(e))
    c.option(OPT_ABORT)
    try:
        _, rtype, _ = c.opt_reply()
        t.check("ABORT is acknowledged", rtype == REP_ACK, f"{rtype:#x}")
    except Closed:
        t.check("ABORT closes (an ACK is optional)", True)
    c.close()

    if bad_exports:
        c = Conn(port)
        c.greeting()
        c.option(OPT_EXPORT_NAME, bad_exports[0].encode())
        t.check("EXPORT_NAME of a missing export -> connection closed", c.is_closed())
        c.close()

    c = Conn(port)
    c.greeting()
    c.request(CMD_READ, 0, 4096)
    t.check("a request before negotiation -> connection closed", c.is_closed())
    c.close()
    alive("handshake probes")

    # EXPORT_NAME of the good export (the old style end of negotiation)
    c = Conn(port)
    c.greeting()
    c.option(OPT_EXPORT_NAME, export.encode())
    try:
        size, tfl = struct.unpack(">QH", c.recv(10))
        c.request(CMD_READ, 4096, 512, cookie=5)
        err, cookie, _ = c.reply(512)
        t.check("EXPORT_NAME of the good export serves requests", size == SIZE and err == 0 and cookie == 5,
                f"size {size} err {err} cookie {cookie}")
    except (Closed, RuntimeError) as e:
        t.fail("EXPORT_NAME of the good export", str(e))
    c.close()

    # GO with a read pipelined behind it in one packet
    c = Conn(port)
    c.greeting()
    nb = export.encode()
    c.send(struct.pack(">QII", IHAVEOPT, OPT_GO, len(nb) + 6) + struct.pack(">I", len(nb)) + nb +
           struct.pack(">H", 0) + struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_READ, 9, 0, 4096))
    try:
        while True:
            _, rtype, data = c.opt_reply()
            if rtype != REP_INFO:
                break
        err, cookie, data = c.reply(4096)
        t.check("a request pipelined behind GO in the same packet is served",
                rtype == REP_ACK and err == 0 and cookie == 9, f"GO {rtype:#x} err {err} cookie {cookie}")
    except (Closed, RuntimeError) as e:
        t.fail("a request pipelined behind GO", str(e))
    c.close()

    # -- structured replies and base:allocation --------------------------
    c = Conn(port)
    c.greeting()
    c.option(OPT_STRUCTURED_REPLY)
    _, rtype, _ = c.opt_reply()
    t.check("STRUCTURED_REPLY is acknowledged", rtype == REP_ACK, f"{rtype:#x}")
    nb, q = export.encode(), b"base:allocation"
    c.option(OPT_SET_META_CONTEXT, struct.pack(">I", len(nb)) + nb + struct.pack(">II", 1, len(q)) + q)
    ctx = None
    while True:
        _, rtype, data = c.opt_reply()
        if rtype == REP_META_CONTEXT:
            ctx = (struct.unpack(">I", data[:4])[0], data[4:])
            continue
        break
    t.check("SET_META_CONTEXT base:allocation selects it", rtype == REP_ACK and ctx and ctx[1] == q,
            f"{rtype:#x} {ctx}")
    rtype, _ = c.go(export)
    t.check("GO after structured negotiation", rtype == REP_ACK, f"{rtype:#x}")
    c.request(CMD_WRITE, 96 * MIB, 65536, cookie=1, payload=pat(3, 65536))
    ch = c.sreply()
    t.check("a write's reply is one NONE chunk with DONE (or a simple reply)",
            len(ch) == 1 and ch[0][1] == RT_NONE and ch[0][2] == 1, f"{ch}")
    c.request(CMD_READ, 96 * MIB - 65536, 3 * 65536, cookie=2)
    ch = c.sreply()
    buf = bytearray(3 * 65536)
    ok = all(x[2] == 2 and x[1] in (RT_OFFSET_DATA, RT_OFFSET_HOLE, RT_NONE) for x in ch)
    for flags, typ, _, pl in ch:
        if typ == RT_OFFSET_DATA:
            off = struct.unpack(">Q", pl[:8])[0] - (96 * MIB - 65536)
            buf[off:off + len(pl) - 8] = pl[8:]
        elif typ == RT_OFFSET_HOLE:
            off, ln = struct.unpack(">QI", pl)
            off -= 96 * MIB - 65536
            buf[off:off + ln] = bytes(ln)
    t.check("a structured read (hole, data, hole) reassembles to the right bytes",
            ok and bytes(buf) == bytes(65536) + pat(3, 65536) + bytes(65536), f"{[(x[0], x[1]) for x in ch]}")
    c.request(CMD_READ, SIZE - 512, 1024, cookie=3)
    ch = c.sreply()
    t.check("a structured read past the end -> an ERROR chunk with EINVAL",
            ch and ch[-1][1] in (RT_ERROR, RT_ERROR_OFFSET) and struct.unpack(">I", ch[-1][3][:4])[0] == EINVAL
            and ch[-1][2] == 3, f"{[(x[1], x[3][:8]) for x in ch]}")
    c.request(CMD_BLOCK_STATUS, 96 * MIB - 65536, 3 * 65536, cookie=4)
    ch = c.sreply()
    ext = []
    for flags, typ, _, pl in ch:
        if typ == RT_BLOCK_STATUS:
            cid = struct.unpack(">I", pl[:4])[0]
            ext += [(cid,) + struct.unpack(">II", pl[i:i + 8]) for i in range(4, len(pl), 8)]
    t.check("BLOCK_STATUS: the hole, the written block, the hole (in the selected context)",
            len(ext) >= 3 and all(e[0] == ctx[0] for e in ext) and ext[0][1] == 65536 and ext[0][2] & 1 and
            ext[1][1] == 65536 and ext[1][2] == 0 and ext[2][2] & 1, f"{ext[:6]}")
    c.request(CMD_WRITE_ZEROES, 96 * MIB, 65536, cookie=5)
    ch = c.sreply()
    c.request(CMD_BLOCK_STATUS, 96 * MIB, 65536, cookie=6)
    ch = c.sreply()
    st_ = [struct.unpack(">II", x[3][4:12]) for x in ch if x[1] == RT_BLOCK_STATUS]
    t.check("after WRITE_ZEROES of the whole block, BLOCK_STATUS says zero", st_ and st_[0][1] & 2, f"{st_}")
    c.request(CMD_BLOCK_STATUS, SIZE - 512, 4096, cookie=7)
    ch = c.sreply()
    t.check("BLOCK_STATUS past the end -> an error chunk", ch[-1][1] in (RT_ERROR, RT_ERROR_OFFSET), f"{ch}")
    c.request(CMD_READ, 0, 512, cookie=8)
    ch = c.sreply()
    t.check("the structured connection still serves after the errors", ch and ch[-1][2] == 8 and
            all(x[1] != RT_ERROR for x in ch), f"{ch[:2]}")
    c.close()
    c = session()    # simple replies only: BLOCK_STATUS was not negotiated
    c.request(CMD_BLOCK_STATUS, 0, 4096, cookie=9)
    err, cookie, _ = c.reply()
    t.check("BLOCK_STATUS without structured replies -> EINVAL", err == EINVAL and cookie == 9, f"err {err}")
    c.close()
    alive("structured replies")

    # -- transmission -----------------------------------------------------
    c = session()
    c.request(CMD_WRITE, 0, 8192, cookie=1, payload=pat(1, 8192))
    err, _, _ = c.reply()
    t.expect_eq("write 8 KiB at 0", err, 0)
    c.request(CMD_READ, SIZE - 4096, 8192, cookie=2)
    err, cookie, _ = c.reply()
    t.check("read past the end -> EINVAL", err == EINVAL and cookie == 2, f"err {err} cookie {cookie}")
    c.request(CMD_READ, SIZE + (1 << 40), 512, cookie=3)
    err, cookie, _ = c.reply()
    t.check("read far past the end -> EINVAL", err == EINVAL and cookie == 3, f"err {err}")
    c.request(CMD_READ, (1 << 64) - 512, 1024, cookie=4)
    err, cookie, _ = c.reply()
    t.check("read whose end wraps 2^64 -> EINVAL", err == EINVAL and cookie == 4, f"err {err}")
    c.request(CMD_WRITE, SIZE - 4096, 8192, cookie=5, payload=pat(0xEE, 8192))
    err, cookie, _ = c.reply()
    t.check("write past the end -> ENOSPC", err == ENOSPC and cookie == 5, f"err {err}")
    c.request(CMD_READ, 0, 8192, cookie=6)
    err, cookie, data = c.reply(8192)
    t.check("after it the connection lives and the payload was skipped (next read is sane)",
            err == 0 and cookie == 6 and data == pat(1, 8192), f"err {err} cookie {cookie}")
    c.request(CMD_READ, SIZE - 4096, 4096, cookie=7)
    err, cookie, data = c.reply(4096)
    t.check("the refused write changed nothing at the end of the volume",
            err == 0 and data == bytes(4096), f"err {err}")
    c.request(CMD_TRIM, SIZE - 4096, 8192, cookie=8)
    err, cookie, _ = c.reply()
    t.check("trim past the end -> ENOSPC or EINVAL", err in (ENOSPC, EINVAL) and cookie == 8, f"err {err}")
    c.request(CMD_READ, 0, 33 * MIB, cookie=9)
    err, cookie, _ = c.reply(33 * MIB)
    t.check("33 MiB read (over the 32 MiB maximum) -> EINVAL (or EOVERFLOW)", err in (EINVAL, 75) and cookie == 9,
            f"err {err}")
    c.request(CMD_READ, 0, 0, cookie=10)
    err, cookie, _ = c.reply()
    t.check("zero-length read -> an answer (EINVAL or ok), connection lives", cookie == 10 and err in (0, EINVAL),
            f"err {err}")
    c.request(42, 0, 4096, cookie=11)
    err, cookie, _ = c.reply()
    t.check("unknown command -> ENOTSUP or EINVAL", err in (ENOTSUP, EINVAL) and cookie == 11, f"err {err}")
    c.request(CMD_READ, 0, 4096, flags=0x4000, cookie=12)
    err, cookie, data = c.reply(4096)
    t.check("unknown command flag -> EINVAL (or served)", cookie == 12 and err in (0, EINVAL), f"err {err}")
    c.request(CMD_FLUSH, 0, 0, cookie=13)
    err, cookie, _ = c.reply()
    t.check("FLUSH still answered on this connection", err == 0 and cookie == 13, f"err {err}")
    c.request(CMD_READ, 0, 4096, cookie=14, magic=0xDEADBEEF)
    t.check("a request with bad magic -> connection closed", c.is_closed())
    c.close()
    alive("bad requests")

    c = session()
    c.request(CMD_WRITE, 0, 100 * MIB, cookie=1)
    c.send(pat(0xAB, 65536))
    t.check("100 MiB write (over the maximum; payload not worth reading) -> closed", c.is_closed())
    c.close()
    alive("an oversized write")

    c = session()
    c.request(CMD_WRITE, 8 * MIB, MIB, cookie=1)
    c.send(pat(0xCD, 100000))
    c.close()
    alive("a client vanishing mid-payload")

    c = session()
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    for i in range(4):
        c.request(CMD_READ, 0, 32 * MIB, cookie=i)
    c.recv(1000)
    c.close()            # RST with replies still queued
    c = session()
    c.request(CMD_READ, 0, 32 * MIB, cookie=1)
    c.close()            # FIN before reading anything
    alive("clients vanishing mid-read")

    idle = []
    for _ in range(20):
        ic = Conn(port)
        ic.greeting()
        idle.append(ic)
    half = Conn(port)    # half a request header, then silence
    half.greeting()
    half.go(export)
    half.send(struct.pack(">IHH", REQ_MAGIC, 0, CMD_READ))
    alive("20 idle handshakes and a half-sent request header")
    for ic in idle:
        ic.close()
    half.close()

    many, closed = [], 0
    for i in range(300):           # past the server's connection cap (256 by default)
        try:
            mc = Conn(port)
            mc.greeting()
            if i % 2:
                mc.go(export)
            many.append(mc)
        except (Closed, OSError):
            closed += 1
    t.check("300 connections at once: each is served or closed at once (none hangs)",
            len(many) + closed == 300 and len(many) >= 100, f"{len(many)} open, {closed} closed")
    for mc in many:
        mc.close()
    alive("300 connections at once")

    c = session()
    ok = True
    for i in range(64):          # a pipeline of mixed requests, answered by cookie
        if i % 2:
            c.request(CMD_WRITE, (16 + i) * 65536, 65536, cookie=1000 + i, payload=pat(i, 65536))
        else:
            c.request(CMD_READ, i * 4096, 4096, cookie=1000 + i)
    got = {}
    for _ in range(64):
        magic, err, cookie = struct.unpack(">IIQ", c.recv(16))
        ok = ok and magic == SIMPLE_MAGIC and err == 0
        if (cookie - 1000) % 2 == 0:
            c.recv(4096)
        got[cookie] = err
    t.check("64 pipelined reads/writes are all answered once, without error",
            ok and sorted(got) == list(range(1000, 1064)), f"{len(got)} answers")
    for i in (1, 33, 63):
        c.request(CMD_READ, (16 + i) * 65536, 65536, cookie=i)
        err, _, data = c.reply(65536)
        t.check(f"pipelined write {i} reads back", err == 0 and data == pat(i, 65536), f"err {err}")
    c.request(CMD_DISC, 0, 0)
    t.check("DISC closes the connection", c.is_closed())
    c.close()

    c = session()
    c.request(CMD_READ, 8 * MIB, MIB, cookie=1)
    err, _, data = c.reply(MIB)
    t.check("the write whose client vanished mid-payload left no bytes",
            err == 0 and pat(0xCD, 100) not in data, f"err {err}")
    c.request(CMD_READ, 0, 4096, cookie=2)
    err, _, data = c.reply(4096)
    t.check("the oversized write's payload is nowhere", err == 0 and data == pat(1, 4096), f"err {err}")
    c.close()


def main():
    lib.requires("nbdinfo")
    t = lib.Test()
    t.catch_exceptions()
    dev = os.environ.get("NBD_DEV")
    if dev:
        port, _, export = dev.partition(":")
        run_probes(t, int(port), export, [])
        t.finish()
    lib.requires_nbd_server()
    srv = t.server()
    srv.start()
    if not t.check("the ready line names the NBD port", srv.nbd_port, srv.log_text()[-500:]):
        t.finish()
    rc, out = srv.cli("volume", "create", "bad", str(SIZE), check=False)
    t.check("volume create", rc == 0, out)
    srv.cli("volume", "create", "other", "1M", check=False)
    try:
        j = srv.attach("bad", host="hv-bad")
    except RuntimeError as e:
        t.fail("attach", str(e))
        t.finish()
    export, token = j["export"], j["token"]
    t.expect_eq("export name is VOLUME@TOKEN", export, f"bad@{token}")
    bad = ["nosuchvolume", "bad", "bad@", f"bad@{'0' * len(token)}", f"other@{token}",
           f"bad@{token}x", "@" + token, "b" * 4000]

    def s3_alive():
        st, _, _ = lib.raw_request(srv.api_port, lib.build_request("GET", "/admin/v1/volumes", srv.api_port))
        return st == 200 and srv.running()

    run_probes(t, srv.nbd_port, export, bad, alive_extra=s3_alive)
    deadline = time.time() + 60     # closed connections are reaped, not at once
    while True:
        st, j, _ = srv.api("GET", "/admin/v1/volumes/bad")
        if time.time() > deadline or (st == 200 and j and
                                      j.get("attachment", {}).get("connections", 0) == 0):
            break
        time.sleep(0.2)
    t.check("the volume is still attached and shows no leftover connections",
            st == 200 and j and j.get("state") == "attached" and
            j.get("attachment", {}).get("connections", 0) == 0, f"{st} {j}")
    rc, out = srv.cli("volume", "detach", "bad", check=False)
    t.check("detach (no connection left open by the bad clients)", rc == 0, out)
    t.finish()


if __name__ == "__main__":
    main()
