#!/usr/bin/python3
"""Benchmark: `seed eval --json` on a generated 1,000-instance project.

The project mixes every option (expose, storage, connect, env, processes, shoot),
keeps a quarter of the instances in their own files, and gives 50 instances a shared
root directory of 200 files, so file loading and root digests are part of the cost.
Runs each command RUNS times and prints min/median/p90 wall time. For scale it also
times `jq . seeds.json` (parsing the same JSON and nothing else) and prints the ratio.
Goal (issue #2): seed eval --json under 100 ms.

Usage: bench/eval.py [--seed PATH] [--instances N] [--runs N]
"""
import argparse
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def generate(dirpath, n):
    rootfs = dirpath / "rootfs"
    for i in range(200):
        p = rootfs / f"d{i % 10}" / f"f{i}"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"file {i}\n" * 20)
    seeds = {}
    for i in range(n):
        name = f"svc-{i:04d}"
        inst = {
            "size": ["xs", "s", "m", "l", "xl"][i % 5],
            "expose": {"http": 10000 + i, "metrics": {"port": 20000 + i, "protocol": "tcp"}},
            "storage": {"data": f"{1 + i % 7}Gi",
                        "cache": {"size": "512Mi", "mountPoint": f"/var/cache/svc{i}"}},
            "connect": {"db": "seed-db", "next": {"service": f"seed-svc-{(i + 1) % n:04d}",
                                                  "port": 10000 + (i + 1) % n}},
            "rollout": "rolling" if i % 2 else "recreate",
            "shoot": {"enable": i % 3 == 0},
            "env": {"INDEX": str(i), "MODE": "bench", "GREETING": "hello " * 5},
            "processes": {
                "main": {"command": ["/usr/bin/svc", "--port", str(10000 + i)],
                         "env": {"LOG": "info"}, "cwd": "/srv", "user": "www-data"},
                "sidecar": {"command": ["sleep", "infinity"], "restart": "on-failure"},
            },
        }
        if i % 20 == 0:
            inst["root"] = "rootfs"
        if i % 4 == 0:
            (dirpath / "instances").mkdir(exist_ok=True)
            (dirpath / "instances" / f"{name}.json").write_text(json.dumps(inst))
            if "root" in inst:  # paths are relative to the declaring file
                inst["root"] = "../rootfs"
                (dirpath / "instances" / f"{name}.json").write_text(json.dumps(inst))
            seeds[name] = f"instances/{name}.json"
        else:
            seeds[name] = inst
    (dirpath / "seeds.json").write_text(json.dumps(seeds, indent=1))


def timed(cmd, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append((time.perf_counter() - t0) * 1000)
        if r.returncode != 0:
            sys.exit(f"{cmd} failed: {r.stderr.decode()[:500]}")
    times.sort()
    return times[0], statistics.median(times), times[int(len(times) * 0.9) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", default=str(ROOT / "build" / "src" / "seed"))
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=31)
    a = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="seed-bench-eval."))
    try:
        generate(tmp, a.instances)
        size = (tmp / "seeds.json").stat().st_size
        out = subprocess.run([a.seed, "eval", str(tmp), "--json"], capture_output=True)
        if out.returncode != 0:
            sys.exit(out.stderr.decode()[:2000])
        assert len(json.loads(out.stdout)) == a.instances
        print(f"project: {a.instances} instances, seeds.json {size // 1024} KiB, "
              f"{a.instances // 4} instance files, {a.instances // 20} instances on a 200-file root")
        s = timed([a.seed, "eval", str(tmp), "--json"], a.runs)
        print(f"seed eval --json   min {s[0]:7.1f} ms   median {s[1]:7.1f} ms   p90 {s[2]:7.1f} ms"
              f"   (goal < 100 ms: {'met' if s[1] < 100 else 'NOT met'})")
        if shutil.which("jq"):
            j = timed(["jq", ".", str(tmp / "seeds.json")], a.runs)
            print(f"jq . seeds.json    min {j[0]:7.1f} ms   median {j[1]:7.1f} ms   p90 {j[2]:7.1f} ms")
            print(f"ratio seed/jq (median): {s[1] / j[1]:.2f}x  (jq only parses and prints seeds.json)")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
