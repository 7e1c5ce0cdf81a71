#!/usr/bin/python3
"""Benchmark: a 1,000-instance flake (issue 12).

Times, in one run, each RUNS times (median, min, max):
  seed        `seed eval --json DIR`: one `nix eval` for the whole flake, then seed's checks;
  bare nix    `nix eval --json .#plain`: the same 1,000 instances as a plain attribute set,
              no mkSeed, no checks: what evaluating the data costs at all;
  nix spec    `nix eval --json .#seeds --apply (s: s.spec)`: what seed asks Nix for;
  per-inst.   Seed's way, `nix eval .#seeds.<name>.meta --json` once per instance: 20 of
              them timed, times 50;
  JSON twin   `seed eval --json` of the same project as seeds.json.
Goals: seed within 2x of bare nix; seed at least 100x faster than one evaluation per
instance. Needs Debian's nix-bin.

Usage: bench/nix-eval.py [--seed PATH] [--instances N] [--runs N]
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
NIX = ["nix", "--extra-experimental-features", "nix-command flakes"]


def instance(i, n):
    return {
        "size": ["xs", "s", "m", "l", "xl"][i % 5],
        "expose": {"http": 10000 + i, "metrics": {"port": 20000 + i, "protocol": "tcp"}},
        "storage": {"data": f"{1 + i % 7}Gi", "cache": {"size": "512Mi", "mountPoint": f"/var/cache/svc{i}"}},
        "connect": {"db": "seed-db", "next": {"service": f"seed-svc-{(i + 1) % n:04d}", "port": 10000 + (i + 1) % n}},
        "rollout": "rolling" if i % 2 else "recreate",
        "shoot": {"enable": i % 3 == 0},
        "env": {"INDEX": str(i), "MODE": "bench"},
        "processes": {"main": {"command": ["/usr/bin/svc", "--port", str(10000 + i)], "env": {"LOG": "info"},
                               "cwd": "/srv", "user": "www-data"},
                      "sidecar": {"command": ["sleep", "infinity"], "restart": "on-failure"}},
    }


def nix_lit(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, str)):
        return json.dumps(v)
    if isinstance(v, list):
        return "[ " + " ".join(nix_lit(x) for x in v) + " ]"
    return "{ " + " ".join(f"{json.dumps(k)} = {nix_lit(x)};" for k, x in v.items()) + " }"


def generate(d, n):
    seeds = {f"svc-{i:04d}": instance(i, n) for i in range(n)}
    flake = d / "flake"
    flake.mkdir()
    # one module per instance, as Seed's projects are written
    (flake / "modules").mkdir()
    for name, spec in seeds.items():
        (flake / "modules" / f"{name}.nix").write_text("{ lib, ... }: { seed = " + nix_lit(spec) + "; }\n")
    (flake / "data.nix").write_text("{\n" + "".join(f"  {json.dumps(k)} = {nix_lit(v)};\n" for k, v in seeds.items()) + "}\n")
    (flake / "flake.nix").write_text(f"""{{
  inputs.seed.url = "path:{ROOT / 'nix'}";
  outputs = {{ seed, ... }}: {{
    seeds = builtins.listToAttrs (map (name: {{ inherit name; value = seed.lib.mkSeed {{ inherit name; module = ./modules + "/${{name}}.nix"; }}; }})
      (builtins.attrNames (import ./data.nix)));
    plain = builtins.mapAttrs (name: _: import (./modules + "/${{name}}.nix") {{ lib = {{}}; }}) (import ./data.nix);
  }};
}}
""")
    twin = d / "twin"
    twin.mkdir()
    (twin / "seeds.json").write_text(json.dumps(seeds))
    return flake, twin, sorted(seeds)


def timed(cmd, cwd=None):
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{r.stderr[-2000:]}")
    return dt, r.stdout


def series(cmd, runs, cwd=None):
    out = None
    ts = []
    for _ in range(runs):
        dt, out = timed(cmd, cwd)
        ts.append(dt)
    return ts, out


def fmt(ts):
    return f"{statistics.median(ts) * 1000:8.1f} ms  (min {min(ts) * 1000:.1f}, max {max(ts) * 1000:.1f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", default=str(ROOT / "build" / "src" / "seed"))
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    if not shutil.which("nix"):
        sys.exit("bench/nix-eval.py needs nix (Debian's nix-bin)")
    store = pathlib.Path("/nix/store")
    before = set(os.listdir(store)) if store.is_dir() else set()
    try:
        run(a)
    finally:
        forget(store, before)


def forget(store, before):
    """Delete the store paths the run added (the flake's copies), one at a time."""
    left = {str(store / p) for p in set(os.listdir(store)) - before if p != ".links"}
    while left:
        gone = {p for p in sorted(left)
                if subprocess.run(["nix-store", "--delete", p], capture_output=True).returncode == 0}
        if not gone:
            break
        left -= gone


def run(a):
    with tempfile.TemporaryDirectory(prefix="seed-bench-nix-") as tmp:
        os.environ["XDG_CACHE_HOME"] = str(pathlib.Path(tmp) / "cache")  # nix's eval cache: not the home's
        flake, twin, names = generate(pathlib.Path(tmp), a.instances)
        ref = f"path:{flake}"
        # warm: the flake and its input copied into the store once
        timed([a.seed, "eval", "--json", str(flake)])
        seed_ts, seed_out = series([a.seed, "eval", "--json", str(flake)], a.runs)
        bare_ts, _ = series([*NIX, "eval", "--json", "--no-write-lock-file", f"{ref}#plain"], a.runs)
        spec_ts, _ = series([*NIX, "eval", "--json", "--no-write-lock-file", f"{ref}#seeds", "--apply",
                             "ss: builtins.mapAttrs (n: s: s.spec) ss"], a.runs)
        twin_ts, twin_out = series([a.seed, "eval", "--json", str(twin), "--uri", ref], a.runs)
        if json.loads(seed_out) != json.loads(twin_out):
            sys.exit("seed eval of the flake and of its seeds.json twin differ")
        sample = names[:: max(1, len(names) // 20)][:20]
        per = []
        for name in sample:
            dt, out = timed([*NIX, "eval", "--json", "--no-write-lock-file", f"{ref}#seeds.{name}.meta"])
            per.append(dt)
            if json.loads(out)["identity"] != json.loads(seed_out)[name]["identity"]:
                sys.exit(f"nix eval .#seeds.{name}.meta and seed eval disagree")
        per_total = statistics.median(per) * len(names)

    seed_med, bare_med = statistics.median(seed_ts), statistics.median(bare_ts)
    print(f"{len(names)} instances, {a.runs} runs each (per-instance: {len(sample)} timed, x{len(names) / len(sample):.0f})")
    print(f"  seed eval (flake)        {fmt(seed_ts)}")
    print(f"  bare nix eval (.#plain)  {fmt(bare_ts)}")
    print(f"  nix eval .#seeds spec    {fmt(spec_ts)}")
    print(f"  seed eval (JSON twin)    {fmt(twin_ts)}")
    print(f"  per-instance nix eval    {statistics.median(per) * 1000:8.1f} ms each, {per_total:.1f} s for all")
    r1 = seed_med / bare_med
    r2 = per_total / seed_med
    print(f"  seed / bare nix: {r1:.2f}x (goal <= 2x: {'met' if r1 <= 2 else 'NOT met'})")
    print(f"  per-instance / seed: {r2:.0f}x (goal >= 100x: {'met' if r2 >= 100 else 'NOT met'})")


if __name__ == "__main__":
    main()
