#!/usr/bin/python3
# LABELS: slow nbd
# TIMEOUT: 300
"""212-nbd-crash: a volume under a write-heavy NBD client survives kill -9 and
a simulated power cut.

A writer process (python3-libnbd, 8 writes in flight over two connections)
writes numbered 4 KiB blocks (each names its block and the write's sequence
number; the rest is derived from both), some with FUA, some WRITE_ZEROES over
whole 64 KiB blocks, never two in-flight writes over the same block, and
every 20-80 writes drains and FLUSHes on one of the connections, in turn
(the export is multi-conn: a FLUSH covers the writes completed on both). It
journals each write when it is sent ("W"), when it is acknowledged ("A") and
each completed FLUSH ("F", the journal fsync'd). The test kill -9s the server
after a random number of flushes and writes (counted, not timed), restarts it
(in the power-loss rounds after `cairn powerloss-replay`, which drops every
unsynced write and tears the newest), re-attaches and reads the whole volume
back. Every 512-byte sector must hold what the block held at the last
completed FLUSH (or its last FUA-acknowledged write), or what a write sent
after that carried. Under kill -9 (the page cache survives) no acknowledged
write may be missing either, as bs.h promises. `cairn fsck` must be clean
and the two replica files of every extent equal (bs_open resyncs the extents
that had write intents). Four kill -9 rounds, three power-loss rounds, and
two power-loss rounds on a clone of a half-written snapshot (4 KiB writes
copy up 64 KiB blocks from the parent); each round goes on writing over what
the last one left.

NBD_DEV_NBDKIT=1 runs the same rounds against `nbdkit file` (kill -9 only) to
check the test itself."""
import glob
import hashlib
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

BLK = 4096
SECT = 512
NBLK = 8192               # a 32 MiB volume
ZBLK = 16                 # 64 KiB: a WRITE_ZEROES unit
QD = 8                    # writes in flight, over ...
NCONN = 2                 # ... two connections (FLUSH on one covers both)
REPLICAS = 2
HDR = struct.Struct(">8sQQ")


def block_bytes(seq, blk):
    """Content of block blk as write seq wrote it."""
    d = hashlib.sha256(b"%d:%d" % (seq, blk)).digest()
    return HDR.pack(b"CAIRNBLK", blk, seq) + (d * 128)[:BLK - HDR.size]


# ---- the writer (a child process, so the test can kill the server under it) ----

def writer(url, journal, seq, seed):
    import nbd
    signal.alarm(240)
    rng = random.Random(seed)
    j = open(journal, "a", buffering=1)

    def jline(s, sync=False):
        j.write(s + "\n")
        if sync:
            j.flush()
            os.fsync(j.fileno())

    try:
        hs = []
        for _ in range(NCONN):
            h = nbd.NBD()
            h.connect_uri(url)
            hs.append(h)
        if hs[0].get_size() != NBLK * BLK or not hs[0].can_multi_conn():
            jline(f"E size {hs[0].get_size()} multi-conn {hs[0].can_multi_conn()}", True)
            return
        hs[0].flush()
        jline(f"F {seq}", True)      # what the last round left is durable now
        inflight = [{} for _ in hs]  # per connection: cookie -> (seq, blocks, buffer)
        busy = set()
        since_flush, flush_every, nflush = 0, rng.randint(20, 80), 0

        def retire():
            for i, h in enumerate(hs):
                while inflight[i]:
                    c = h.aio_peek_command_completed()
                    if c <= 0:
                        break
                    h.aio_command_completed(c)    # raises when the write failed
                    s, blocks, _ = inflight[i].pop(c)
                    busy.difference_update(blocks)
                    jline(f"A {s}")

        def wait_one():
            """Blocks until some connection with requests in flight progresses."""
            for i, h in enumerate(hs):
                if inflight[i]:
                    h.poll(-1)
                    return

        while True:
            retire()
            if since_flush >= flush_every:
                while any(inflight):
                    wait_one()
                    retire()
                # multi-conn: a FLUSH on one connection covers the writes
                # completed on all of them; take turns
                hs[nflush % NCONN].flush()
                nflush += 1
                jline(f"F {seq}", True)
                since_flush, flush_every = 0, rng.randint(20, 80)
                continue
            if sum(len(x) for x in inflight) >= QD:
                wait_one()
                continue
            r = rng.random()
            if r < 0.06:
                kind, n = "Z", ZBLK * rng.randint(1, 4)
                b0 = rng.randrange(0, NBLK - n + 1, ZBLK)
            else:
                kind, n = "D", rng.choice([1, 1, 1, 2, 4, 8, 16])
                b0 = rng.randrange(0, NBLK - n + 1)
            blocks = set(range(b0, b0 + n))
            if blocks & busy:
                wait_one()
                continue
            fua = kind == "D" and r > 0.92
            seq += 1
            since_flush += 1
            i = seq % NCONN
            h = hs[i]
            jline(f"W {seq} {kind} {b0} {n} {int(fua)}")
            if kind == "Z":
                c = h.aio_zero(n * BLK, b0 * BLK)
                buf = None
            else:
                buf = nbd.Buffer.from_bytearray(bytearray(
                    b"".join(block_bytes(seq, b) for b in range(b0, b0 + n))))
                c = h.aio_pwrite(buf, b0 * BLK, flags=nbd.CMD_FLAG_FUA if fua else 0)
            inflight[i][c] = (seq, blocks, buf)
            busy |= blocks
    except Exception as e:  # noqa: BLE001 - the server was killed under us
        jline(f"E {type(e).__name__}: {str(e)[:200]}", True)


# ---- the checker ---------------------------------------------------------------

class Journal:
    def __init__(self, path):
        self.writes = {}     # seq -> (kind, b0, n, fua)
        self.acked = set()
        self.flushes = []    # seq covered by each completed FLUSH
        self.end = None
        with open(path) as f:
            lines = f.read().split("\n")
        if lines and lines[-1] != "":
            lines = lines[:-1]   # a torn last line (cannot happen: the writer outlives the server)
        for ln in lines:
            p = ln.split(" ")
            if p[0] == "W":
                self.writes[int(p[1])] = (p[2], int(p[3]), int(p[4]), p[5] == "1")
            elif p[0] == "A":
                self.acked.add(int(p[1]))
            elif p[0] == "F":
                self.flushes.append(int(p[1]))
            elif p[0] == "E":
                self.end = ln


def count_lines(path):
    """(F lines, W lines after the last F, E seen) of a journal being written."""
    try:
        with open(path) as f:
            data = f.read()
    except OSError:
        return 0, 0, False
    nf = data.count("\nF ") + data.startswith("F ")
    tail = data[data.rfind("F "):] if nf else data
    return nf, tail.count("\nW "), "\nE " in data or data.startswith("E ")


def verify(t, label, img, base, jr):
    """img: the volume read back; base: per block, the bytes the round started
    from (durable: the writer flushed first). Returns (new base, stats)."""
    last_f = jr.flushes[-1] if jr.flushes else None
    floor = {}       # block -> seq of its durable version (None: base)
    later = {}       # block -> [seq of writes sent after it]
    for seq in sorted(jr.writes):
        kind, b0, n, fua = jr.writes[seq]
        durable = (last_f is not None and seq <= last_f) or (fua and seq in jr.acked)
        for b in range(b0, b0 + n):
            if durable:
                floor[b] = seq
                later.pop(b, None)
            else:
                later.setdefault(b, []).append(seq)

    def content(seq, b):
        if seq is None:
            return base[b]
        kind = jr.writes[seq][0]
        return bytes(BLK) if kind == "Z" else block_bytes(seq, b)

    bad, torn, newer, lost_acked = [], 0, 0, 0
    new_base = list(base)
    for b in range(NBLK):
        got = img[b * BLK:(b + 1) * BLK]
        new_base[b] = got
        cands = [floor.get(b)] + later.get(b, [])
        # the newest candidate it matches (a zeroed block equals an old zero version too)
        idx = max((i for i, s in enumerate(cands) if got == content(s, b)), default=None)
        if idx is not None:
            if idx > 0:
                newer += 1
            acked_later = [i for i, s in enumerate(cands) if i > 0 and s in jr.acked]
            if acked_later and idx < acked_later[-1]:
                lost_acked += 1
                if lost_acked <= 3:
                    t.log(f"{label}: block {b} reads as {'the flushed version' if idx == 0 else 'write'} "
                          f"seq {cands[idx]}, not acknowledged write seq {cands[acked_later[-1]]} "
                          f"{jr.writes[cands[acked_later[-1]]]} (sent after the last flush, seq {last_f})")
            continue
        # torn: every sector must come from one of the candidates
        cs = [content(s, b) for s in cands]
        if all(any(got[i:i + SECT] == c[i:i + SECT] for c in cs) for i in range(0, BLK, SECT)):
            torn += 1
            continue
        bad.append(b)
    for b in bad[:5]:
        got = img[b * BLK:(b + 1) * BLK]
        magic, gb, gs = HDR.unpack(got[:HDR.size])
        what = f"block {gb} seq {gs}" if magic == b"CAIRNBLK" else \
            ("zeroes" if got == bytes(BLK) else f"unknown bytes {got[:16].hex()}")
        t.log(f"{label}: block {b} holds {what}; durable version seq {floor.get(b)}, "
              f"later sent {later.get(b, [])[:6]}")
    t.check(f"{label}: every block reads as of the last flush (or a later write) "
            f"[{len(jr.writes)} writes, {len(jr.flushes)} flushes, {newer} newer, {torn} torn]",
            not bad, f"{len(bad)} bad blocks, first {bad[:10]}")
    return new_base, dict(writes=len(jr.writes), unflushed=sum(
        1 for s in jr.writes if last_f is None or s > last_f), lost_acked=lost_acked, torn=torn)


def read_all(url):
    import nbd
    h = nbd.NBD()
    h.connect_uri(url)
    try:
        size = h.get_size()
        img = b"".join(h.pread(min(4 << 20, size - o), o) for o in range(0, size, 4 << 20))
    finally:
        h.shutdown()
    return size, img


def run_rounds(t, srv, label, rounds, powerloss, rng, base, seq):
    """rounds crash-restart-verify rounds on srv (started, volume 'crash'
    created). Returns (base, seq, stats per round)."""
    stats = []
    for r in range(rounds):
        name = f"{label} round {r}"
        try:
            url = srv.crash_url()
        except Exception as e:  # noqa: BLE001
            t.fail(f"{name}: attach", str(e))
            break
        journal = os.path.join(t.dir, f"journal-{label}-{r}")
        open(journal, "w").close()
        want_f = rng.randint(3, 12)
        want_w = rng.randint(0, 60)
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--writer", url, journal,
                              str(seq), str(rng.randrange(1 << 30))], stdin=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline:
            nf, nw, ended = count_lines(journal)
            if ended or (nf >= want_f and nw >= want_w):
                break
            time.sleep(0.002)
        nf, nw, ended = count_lines(journal)
        srv.kill9()
        t.log(f"{name}: killed after {nf} flushes, {nw} writes since the last")
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            t.fail(f"{name}: the writer did not end within 60 s of the kill")
        jr = Journal(journal)
        if not t.check(f"{name}: the writer ran until the kill (no error of its own first)",
                       not ended and jr.end is not None and len(jr.flushes) >= 2,
                       f"end line {jr.end!r}, {len(jr.flushes)} flushes"):
            break
        if powerloss:
            r_ = subprocess.run([lib.cairn_bin(), "powerloss-replay", srv.data], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, timeout=120)
            out = r_.stdout.decode(errors="replace")
            t.check(f"{name}: cairn powerloss-replay exits 0", r_.returncode == 0, out[-2000:])
            m = re.search(r"(\d+) (?:unsynced writes|write\(s\)) reverted", out)
            t.log("replay: " + out.strip().replace("\n", " | ")[-300:])
        if not t.check(f"{name}: restart after the crash", srv.start(must=False)):
            break
        try:
            size, img = read_all(srv.crash_url())
        except Exception as e:  # noqa: BLE001
            t.fail(f"{name}: read the volume back", f"{type(e).__name__}: {e}")
            break
        t.expect_eq(f"{name}: volume size", size, NBLK * BLK)
        base, st = verify(t, name, img, base, jr)
        if powerloss:
            st["reverted"] = int(m.group(1)) if m else -1
        stats.append(st)
        seq = max(jr.writes, default=seq)
        srv.after_round(name)
    return base, seq, stats


class CairnVol:
    """The cairn server with one 32 MiB volume 'crash' attached to host 'crash'."""

    def __init__(self, t, srv):
        self.t, self.srv = t, srv
        self.data = srv.data

    def start(self, must=True):
        return self.srv.start(must=must)

    def kill9(self):
        self.srv.kill9()

    def crash_url(self):
        return self.srv.attach("crash", host="crash")["url"]

    def after_round(self, name):
        rc, out = self.srv.cli("fsck", check=False)
        self.t.check(f"{name}: cairn fsck is clean", rc == 0, out[-1500:])
        # bs.h: a written extent generation is one file per replica,
        # DATA/devices/<dev>/extents/<volume id>/<gen>.<index>; after the
        # restart (write intents resynced) the replicas must be equal.
        groups = {}
        for dev in glob.glob(os.path.join(self.data, "devices", "*")):
            for f in glob.glob(os.path.join(dev, "extents", "*", "*")):
                groups.setdefault(os.path.relpath(f, dev), []).append(f)
        differ, count = [], []
        for key, files in sorted(groups.items()):
            hs = set()
            for f in files:
                with open(f, "rb") as fh:
                    hs.add(hashlib.sha256(fh.read()).hexdigest())
            if len(hs) > 1:
                differ.append(key)
            if len(files) != REPLICAS:
                count.append((key, len(files)))
        self.t.check(f"{name}: every extent file has {REPLICAS} replicas ({len(groups)} files)",
                     groups and not count, f"{count[:5]}")
        self.t.check(f"{name}: the replicas of every extent file are byte-identical after the restart",
                     not differ, f"{len(differ)} differ: {differ[:5]}")


class NbdkitVol:
    """Development stand-in: nbdkit's file plugin on a 32 MiB file."""

    def __init__(self, t):
        self.t = t
        self.data = t.dir
        self.file = os.path.join(t.dir, "disk.img")
        with open(self.file, "wb") as f:
            f.truncate(NBLK * BLK)
        self.proc = None
        self.port = None

    def start(self, must=True):
        self.port = lib.free_port()
        self.proc = subprocess.Popen(["nbdkit", "-f", "-p", str(self.port), "file", self.file])
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def crash_url(self):
        return f"nbd://127.0.0.1:{self.port}/"

    def after_round(self, name):
        pass


def make_clone(t, srv):
    """Volume 'src' with data in half its 64 KiB blocks (the rest never
    written), snapshot src@s, clone 'crash' of it: the writer's 4 KiB writes
    then copy up 64 KiB blocks from the parent. Returns the clone's blocks as
    it starts, or None."""
    import nbd
    try:
        srv.cli("volume", "create", "src", str(NBLK * BLK), "--replicas", str(REPLICAS))
        url = srv.attach("src", host="setup")["url"]
        h = nbd.NBD()
        h.connect_uri(url)
        for blk in range(0, NBLK, 2 * ZBLK):
            h.pwrite(b"".join(block_bytes(1 << 40, b) for b in range(blk, blk + ZBLK)), blk * BLK)
        h.flush()
        h.shutdown()
        srv.cli("volume", "detach", "src")
        srv.cli("snapshot", "create", "src", "s")
        srv.cli("volume", "clone", "crash", "--from-snapshot", "src@s")
        _, img = read_all(srv.attach("crash", host="crash")["url"])
    except Exception as e:  # noqa: BLE001
        t.fail("clone setup", f"{type(e).__name__}: {e}")
        return None
    base = [img[b * BLK:(b + 1) * BLK] for b in range(NBLK)]
    t.check("the clone reads its parent's data (every other 64 KiB) and zeroes",
            base[0] == block_bytes(1 << 40, 0) and base[ZBLK] == bytes(BLK) and
            base[2 * ZBLK + 5] == block_bytes(1 << 40, 2 * ZBLK + 5))
    return base


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        writer(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    lib.requires("nbdinfo")
    try:
        import nbd  # noqa: F401
    except ImportError:
        print("SKIP: requires python3-libnbd")
        sys.exit(77)
    t = lib.Test()
    t.catch_exceptions()
    rng = random.Random(int(os.environ.get("CAIRN_CRASH_SEED", "212")))
    zero_base = [bytes(BLK)] * NBLK
    if os.environ.get("NBD_DEV_NBDKIT"):
        v = NbdkitVol(t)
        v.start()
        run_rounds(t, v, "nbdkit", 3, False, rng, zero_base, 0)
        v.kill9()
        t.finish()
    lib.requires_nbd_server()
    all_stats = []
    for label, powerloss, rounds in (("kill9", False, 4), ("powerloss", True, 3), ("clone-powerloss", True, 2)):
        srv = t.server(data=os.path.join(t.dir, f"data-{label}"),
                       extra=["--powerloss-sim"] if powerloss else [])
        srv.start()
        if label.startswith("clone"):
            base = make_clone(t, srv)
            if base is None:
                break
        else:
            base = zero_base
            rc, out = srv.cli("volume", "create", "crash", str(NBLK * BLK), "--replicas", str(REPLICAS),
                              check=False)
            if not t.check(f"{label}: volume create", rc == 0, out):
                break
        _, _, stats = run_rounds(t, CairnVol(t, srv), label, rounds, powerloss, rng, base, 0)
        t.log(f"{label}: per round {stats}")
        all_stats += stats
        t.check(f"{label}: writes were unflushed when the server died (the test tested something)",
                any(s["unflushed"] > 0 for s in stats), str(stats))
        if powerloss:
            t.check("the replay reverted unsynced writes in some round (the simulation did something)",
                    any(s.get("reverted", 0) > 0 for s in stats), str(stats))
        else:
            # NBD makes only flushed writes durable, but bs.h promises more:
            # a write is acknowledged after its bytes reached the replica
            # files and its map change was committed, and a kill -9 keeps
            # the page cache. So no acknowledged write may go missing here.
            t.check("kill9: no block lost an acknowledged write (bs.h: bytes in the files and the "
                    "map committed before the ack; a kill -9 keeps the page cache)",
                    all(s["lost_acked"] == 0 for s in stats), f"per round {[s['lost_acked'] for s in stats]}")
        srv.stop()
    t.finish()


if __name__ == "__main__":
    main()
