#!/usr/bin/python3
"""bench/ring/compare.py - cairn's ring vs swift-ring-builder, same shapes, one run.

usage: /usr/bin/python3 bench/ring/compare.py CAIRN_RING_CLI OUT_DIR [--quick] [--no-sim]
       /usr/bin/python3 bench/ring/compare.py --plot-only OUT_DIR

CAIRN_RING_CLI takes `BUILDER VERB ...` (`cairn ring` or the ring_cli driver).
Both builders get the same devices through their CLIs; the assignments are then
read back (cairn: `dump --json`; Swift: its builder file via
swift.common.ring.RingBuilder) and scored by the same code here:

  balance     max over devices of |parts / weight share - 1| in %  (Swift's)
  overload    max over devices of (parts / weight share - 1) in %
  disp_max    % partitions whose fullest zone holds more replicas than the
              fewest the shape allows (two in a zone while there are >= R zones)
  disp_zone   % partitions whose replicas use fewer zones than min(R, zones)
  over_m      EC shapes: % partitions with more than m fragments in one zone
              although the shape allows at most m
  moved       partition-replicas that changed device when one device is added
              (counted as sets per partition, so slot order does not matter)
  ideal       the new device's weight share: the least a balanced ring must move

Also: the growth simulation (6 -> 1000 devices) for both, written as CSV and
plotted to PNG with matplotlib, and Swift's and cairn's build times.
"""
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, "/usr/lib/python3/dist-packages")
from swift.common.ring import RingBuilder  # noqa: E402

SWIFT = "/usr/bin/swift-ring-builder"


def run(cmd, ok=(0, 1)):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode not in ok:
        raise RuntimeError("%s: exit %d\n%s%s" % (" ".join(cmd[:3]), p.returncode, p.stdout, p.stderr))
    return p.stdout


def dev_arg(d):
    ip = "[%s]" % d["ip"] if ":" in d["ip"] else d["ip"]
    return "r%dz%d-%s:%d/%s" % (d["region"], d["zone"], ip, d["port"], d["device"])


class Cairn:
    name = "cairn"

    def __init__(self, cli, path, pp, R, m=0):
        self.cli, self.path, self.R = cli, path + ".builder", R
        self.now = 1000000
        for f in (self.path, path + ".ring"):
            if os.path.exists(f):
                os.unlink(f)
        extra = ["--ec-m", str(m)] if m else []
        run([cli, self.path, "create", str(pp), str(R), "1", "--seed", "1"] + extra, ok=(0,))

    def add(self, devs):
        for i in range(0, len(devs), 200):
            args = []
            for d in devs[i:i + 200]:
                args += [dev_arg(d), str(d["weight"])]
            run([self.cli, self.path, "add"] + args, ok=(0,))

    def rebalance(self):
        self.now += 3601  # past min_part_hours, as an operator would wait
        t = time.time()
        run([self.cli, self.path, "rebalance", "--now", str(self.now)])
        return time.time() - t

    def assignment(self):
        j = json.loads(run([self.cli, self.path, "dump", "--json"], ok=(0,)))
        devs = {d["id"]: d for d in j["devices"]}
        return devs, j["partitions"]


class Swift:
    name = "swift"

    def __init__(self, path, pp, R, m=0):
        self.path, self.R = path + ".builder", R
        if os.path.exists(self.path):
            os.unlink(self.path)
        run([SWIFT, self.path, "create", str(pp), str(R), "1"], ok=(0,))

    def add(self, devs):
        for i in range(0, len(devs), 200):
            args = []
            for d in devs[i:i + 200]:
                args += [dev_arg(d), str(d["weight"])]
            run([SWIFT, self.path, "add"] + args)

    def rebalance(self):
        run([SWIFT, self.path, "pretend_min_part_hours_passed"])
        t = time.time()
        run([SWIFT, self.path, "rebalance", "-s", "1"])
        return time.time() - t

    def assignment(self):
        b = RingBuilder.load(self.path)
        devs = {d["id"]: {"id": d["id"], "region": d["region"], "zone": d["zone"],
                          "weight": d["weight"]} for d in b.devs if d is not None}
        r2p2d = b._replica2part2dev
        parts = [[r2p2d[r][p] for r in range(len(r2p2d))] for p in range(len(r2p2d[0]))]
        return devs, parts


def score(devs, parts, R, m=0):
    W = sum(d["weight"] for d in devs.values())
    total = len(parts) * R
    count = {i: 0 for i in devs}
    zone = {i: (d["region"], d["zone"]) for i, d in devs.items()}
    zones = {}
    for i, z in zone.items():
        zones[z] = zones.get(z, 0) + 1
    for row in parts:
        for i in row:
            count[i] += 1
    bal = [100.0 * (count[i] / (total * d["weight"] / W) - 1) for i, d in devs.items()]
    want_z = min(R, len(zones))
    m_ok = m and sum(min(m, n) for n in zones.values()) >= R
    # the fewest replicas the fullest zone can hold: min k, sum(min(k, devices)) >= R
    kmin = next(k for k in range(1, R + 1) if sum(min(k, n) for n in zones.values()) >= R)
    bad_z = over_m = over_k = 0
    for row in parts:
        zs = [zone[i] for i in row]
        most = max(zs.count(z) for z in set(zs))
        if len(set(zs)) < want_z:
            bad_z += 1
        if most > kmin:
            over_k += 1
        if m_ok and most > m:
            over_m += 1
    return {"balance": max(abs(b) for b in bal), "overload": max(bal),
            "disp_zone": 100.0 * bad_z / len(parts), "disp_max": 100.0 * over_k / len(parts),
            "over_m": 100.0 * over_m / len(parts), "count": count}


def moved(before, after):
    return sum(len(a) - len(set(a) & set(b)) for a, b in zip(before, after))


def shape_devices(kind, rnd):
    devs = []

    def dev(region, zone, node, k, w):
        devs.append({"region": region, "zone": zone, "ip": "10.%d.%d.%d" % (region, zone, node),
                     "port": 6200, "device": "sd%s" % chr(97 + k), "weight": w})
    if kind == "embedded6":          # the chunk store's default: 6 zones, one node
        for z in range(6):
            devs.append({"region": 1, "zone": z + 1, "ip": "127.0.0.1", "port": 6200,
                         "device": "d%d" % z, "weight": 1.0})
    elif kind == "3z_uniform_48":
        for z in range(3):
            for n in range(4):
                for k in range(4):
                    dev(1, z + 1, n, k, 100)
    elif kind == "5z_mixed_60":
        for i in range(60):
            dev(1, 1 + i % 5, i // 5, i % 4, rnd.choice([100, 200, 400]))
    elif kind == "2r8z_mixed_120":
        for i in range(120):
            dev(1 + (i % 8) // 5, 1 + i % 8, i // 8, i % 3, rnd.choice([100, 100, 200, 300]))
    elif kind == "ec4z_24":
        for i in range(24):
            dev(1, 1 + i % 4, i // 4, i % 2, rnd.choice([100, 200]))
    elif kind == "10z_mixed_1000":
        for i in range(1000):
            dev(1, 1 + i % 10, i // 10, i % 10, rnd.choice([100, 200, 400, 800]))
    elif kind == "4z_skewed_40":     # one zone holds half the weight
        for i in range(40):
            dev(1, 1 + i % 4, i // 4, i % 2, 400 if i % 4 == 0 else 100)
    return devs


SHAPES = [  # name, part power, replicas, ec m
    ("embedded6", 10, 3, 0),
    ("embedded6", 10, 6, 2),
    ("3z_uniform_48", 14, 3, 0),
    ("5z_mixed_60", 14, 3, 0),
    ("2r8z_mixed_120", 16, 3, 0),
    ("ec4z_24", 12, 6, 2),
    ("4z_skewed_40", 14, 3, 0),
    ("10z_mixed_1000", 16, 3, 0),
]


def compare_shapes(cli, out, quick):
    rows = []
    for name, pp, R, m in SHAPES:
        if quick and name == "10z_mixed_1000":
            continue
        rnd = random.Random(name)
        devs = shape_devices(name, rnd)
        # the added device: a new node in zone 2 (zone 1 for one-zone-per-device shapes)
        new = dict(devs[1])
        new.update(ip="10.9.9.9", device="sdz", weight=sorted(d["weight"] for d in devs)[len(devs) // 2])
        for impl in (Cairn(cli, os.path.join(out, "c_%s_%d" % (name, R)), pp, R, m),
                     Swift(os.path.join(out, "s_%s_%d" % (name, R)), pp, R, m)):
            impl.add(devs)
            t_build = impl.rebalance()
            d0, p0 = impl.assignment()
            s0 = score(d0, p0, R, m)
            impl.add([new])
            t_add = impl.rebalance()
            d1, p1 = impl.assignment()
            s1 = score(d1, p1, R, m)
            W = sum(d["weight"] for d in d1.values())
            ideal = len(p1) * R * new["weight"] / W
            mv = moved(p0, p1)
            row = {"shape": name, "P": pp, "R": R, "m": m, "impl": impl.name,
                   "devices": len(devs), "build_s": round(t_build, 3),
                   "balance": round(s0["balance"], 3), "overload": round(s0["overload"], 3),
                   "disp_max": round(s0["disp_max"], 3), "disp_zone": round(s0["disp_zone"], 3), "over_m": round(s0["over_m"], 3),
                   "add1_moved": mv, "add1_ideal": round(ideal, 1),
                   "add1_ratio": round(mv / ideal, 3) if ideal else 0,
                   "add1_balance": round(s1["balance"], 3), "add1_disp_max": round(s1["disp_max"], 3),
                   "add1_disp_zone": round(s1["disp_zone"], 3)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def simulate(cli, out, pp=16, R=3):
    """Grow 6 -> 1000 devices; one rebalance per step, past min_part_hours."""
    rnd = random.Random(42)
    steps = [6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 200, 250, 300, 400, 500, 600, 700,
             800, 900, 1000]
    impls = [Cairn(cli, os.path.join(out, "sim_cairn"), pp, R),
             Swift(os.path.join(out, "sim_swift"), pp, R)]
    have, rows, prev = [], [], {}
    for n in steps:
        new = []
        while len(have) + len(new) < n:
            i = len(have) + len(new)
            zones = 3 if i < 24 else 6 if i < 200 else 12  # zones open as the cluster grows
            z = 1 + rnd.randrange(zones)
            new.append({"region": 1, "zone": z, "ip": "10.0.%d.%d" % (z, i // 8), "port": 6200,
                        "device": "sd%d" % (i % 8), "weight": rnd.choice([100, 200, 400, 800])})
        have += new
        for impl in impls:
            impl.add(new)
            t = impl.rebalance()
            d, p = impl.assignment()
            s = score(d, p, R)
            W = sum(x["weight"] for x in d.values())
            if impl.name in prev:
                p0, c0 = prev[impl.name]
                mv = moved(p0, p)
                # least movement to reach the new weight shares from the old counts
                ideal = sum(max(0.0, len(p) * R * x["weight"] / W - c0.get(i, 0)) for i, x in d.items())
            else:
                mv, ideal = 0, 0.0
            prev[impl.name] = (p, s["count"])
            row = {"impl": impl.name, "devices": n, "balance": round(s["balance"], 3),
                   "disp_zone": round(s["disp_zone"], 3), "moved": mv, "ideal": round(ideal, 1),
                   "rebalance_s": round(t, 3)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    with open(os.path.join(out, "sim.csv"), "w") as f:
        f.write("impl,devices,balance_pct,disp_zone_pct,moved,ideal,rebalance_s\n")
        for r in rows:
            f.write("%s,%d,%.3f,%.3f,%d,%.1f,%.3f\n" % (r["impl"], r["devices"], r["balance"],
                                                       r["disp_zone"], r["moved"], r["ideal"],
                                                       r["rebalance_s"]))
    return rows


def plot(rows, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    xl = "devices (grown from 6 to 1000; weights 100-800; 3, then 6, then 12 zones)"
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for impl, style in (("cairn", "o-"), ("swift", "s--")):
        rs = [r for r in rows if r["impl"] == impl]
        xs = [r["devices"] for r in rs]
        a1.plot(xs, [max(r["balance"], 1e-3) for r in rs], style, label=impl)
        a2.plot(xs, [r["disp_zone"] for r in rs], style, label=impl)
    a1.set_yscale("log")
    a1.set_ylabel("balance: worst device vs\nits weight share (%)")
    a2.set_ylabel("partitions with 2 replicas\nin one zone (%)")
    for a in (a1, a2):
        a.set_xscale("log")
        a.grid(True, which="both", alpha=0.3)
        a.legend()
    a2.set_xlabel(xl)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "sim_balance.png"), dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for impl, style in (("cairn", "o-"), ("swift", "s--")):
        rs = [r for r in rows if r["impl"] == impl and r["ideal"] > 0]
        ax.plot([r["devices"] for r in rs], [r["moved"] / r["ideal"] for r in rs], style, label=impl)
    ax.set_xscale("log")
    ax.set_xlabel(xl)
    ax.set_ylabel("moved / ideal partition-replicas per step")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "sim_movement.png"), dpi=90)
    plt.close(fig)


def read_csv(path):
    rows = []
    with open(path) as f:
        next(f)
        for line in f:
            impl, n, bal, disp, mv, ideal, t = line.strip().split(",")
            rows.append({"impl": impl, "devices": int(n), "balance": float(bal),
                         "disp_zone": float(disp), "moved": int(mv), "ideal": float(ideal),
                         "rebalance_s": float(t)})
    return rows


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    if sys.argv[1] == "--plot-only":
        plot(read_csv(os.path.join(sys.argv[2], "sim.csv")), sys.argv[2])
        return
    cli, out = os.path.abspath(sys.argv[1]), sys.argv[2]
    quick = "--quick" in sys.argv
    os.makedirs(out, exist_ok=True)
    rows = compare_shapes(cli, out, quick)
    with open(os.path.join(out, "shapes.json"), "w") as f:
        json.dump(rows, f, indent=1)
    if "--no-sim" not in sys.argv:
        sim = simulate(cli, out, pp=12 if quick else 16)
        plot(sim, out)


if __name__ == "__main__":
    main()
