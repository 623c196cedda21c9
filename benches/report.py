#!/usr/bin/env python3
"""Turns the last `cargo bench --bench sched` run (target/criterion) into the tables of
BENCHMARKS.md: criterion's median estimate for every id, the targets, and the peer ratios.

    cargo bench --bench sched 2> bench.log && python3 benches/report.py
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
SIZES = [10, 100, 1000, 10000]
ALGORITHMS = ["rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "mh", "fo",
              "ovf", "twos", "swrr", "edf", "random", "p2c", "ring", "maglev", "rendezvous",
              "jump", "maglev+bounded"]
PEERS = [
    ("ring lookup, 1000 x 160 points", "sched/ring/pick-w1/1000", "peers/pingora-ketama/lookup/1000"),
    ("ring build, 1000 x 160 points", "sched/ring/build/1000", "peers/pingora-ketama/build/1000"),
    ("Maglev lookup, 1000, table 65537", "sched/maglev/pick-w1/1000", "peers/maglev/lookup/1000"),
    ("Maglev build, 1000, table 65537", "sched/maglev/build/1000", "peers/maglev/build/1000"),
    ("smooth WRR pick, 1000", "sched/swrr/pick/1000", "peers/weighted-rs/smooth/pick/1000"),
]


def medians():
    out = {}
    for bench in ROOT.glob("**/new/benchmark.json"):
        full_id = json.loads(bench.read_text())["full_id"]
        estimates = json.loads((bench.parent / "estimates.json").read_text())
        out[full_id] = estimates["median"]["point_estimate"]
    return out


def fmt(ns):
    if ns is None:
        return "-"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns" if ns < 100 else f"{ns:.0f} ns"


def main():
    m = medians()
    if not m:
        sys.exit(f"no criterion results under {ROOT}: run cargo bench --bench sched first")
    print("## Targets\n")
    print("| target | id | median | met? |\n|---|---|--:|---|")
    targets = [(f"sched/{a}/pick/1000", 10.0, "≤ 10 ns per pick at 1000 backends")
               for a in ["rr", "wrr", "swrr", "sh", "dh", "mh", "maglev", "jump"]]
    for a in ["lc", "wlc", "sed", "nq"]:
        targets.append((f"sched/{a}/pick/1000", 50.0, "least-connection family ≤ 50 ns at 1000"))
        targets.append((f"sched/{a}/pick+update/1000", 50.0, "(pick + open + close, for reference)"))
    targets.append(("sched/maglev/build/1000", 1e6, "Maglev build ≤ 1 ms (1000, table 65537)"))
    for id_, limit, what in targets:
        v = m.get(id_)
        met = "-" if v is None else ("**met**" if v <= limit else "missed")
        print(f"| {what} | `{id_}` | {fmt(v)} | {met} |")
    print("\n## Pick cost per algorithm (median)\n")
    print("| algorithm | measured | " + " | ".join(f"n = {n}" for n in SIZES) + " |")
    print("|---|---|" + "--:|" * len(SIZES))
    for a in ALGORITHMS:
        for kind in ["pick", "pick+update"]:
            row = [m.get(f"sched/{a}/{kind}/{n}") for n in SIZES]
            if any(v is not None for v in row):
                print(f"| `{a}` | {kind} | " + " | ".join(fmt(v) for v in row) + " |")
    print("\n## Peers, same run (median)\n")
    print("| operation | lb-sched | peer | peer / lb-sched |\n|---|--:|--:|--:|")
    for what, ours, theirs in PEERS:
        a, b = m.get(ours), m.get(theirs)
        ratio = f"{b / a:.2f}×" if a and b else "-"
        print(f"| {what} (`{ours}` vs `{theirs}`) | {fmt(a)} | {fmt(b)} | {ratio} |")
    print("\n## Other ids\n")
    shown = {t[0] for t in targets} | {p[1] for p in PEERS} | {p[2] for p in PEERS}
    shown |= {f"sched/{a}/{k}/{n}" for a in ALGORITHMS for k in ["pick", "pick+update"] for n in SIZES}
    print("| id | median |\n|---|--:|")
    for id_ in sorted(set(m) - shown):
        print(f"| `{id_}` | {fmt(m[id_])} |")


if __name__ == "__main__":
    main()
