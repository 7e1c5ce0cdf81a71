#!/usr/bin/python3
"""Benchmark: images (issue #9). The same ~200 MB root filesystem (the host's /usr/bin
files copied until 200 MB, plus busybox) is built into an OCI image and pushed to a
local registry (Debian's docker-registry, plain HTTP on 127.0.0.1 in a network
namespace of the benchmark's own), with seed and with buildah + skopeo, in one run:

  cold build                     seed image build        buildah from/copy/commit
  rebuild after a one-file change seed image build        buildah from/copy/commit
  push of the image              seed image push         skopeo copy
  push of the unchanged image    seed image push         skopeo copy
  re-push after a one-file change seed image push         skopeo copy

and what each push uploaded. Goals: rebuild after a one-file change <= 1 s; its re-push
uploads one layer and takes <= 1 s; an unchanged push <= 200 ms. Anchor: nix2container
re-pushes a one-file change in ~1.8 s where dockerTools.streamLayeredImage takes ~7.5 s.

Usage: bench/image.py [--seed PATH] [--mib N] [--runs N]
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

from common import Netns

ROOT = pathlib.Path(__file__).resolve().parents[1]


def need(program, package):
    if not shutil.which(program):
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if not shutil.which(program):
        sys.exit(f"bench/image: needs {program} (apt-get install {package})")


def make_root(path, mib):
    """busybox (httpd, sh) and the host's /usr/bin files until `mib` MiB, plus /app."""
    (path / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", path / "bin" / "busybox")
    (path / "bin" / "sh").symlink_to("busybox")
    dst = path / "usr" / "bin"
    dst.mkdir(parents=True)
    total = 0
    for f in sorted(pathlib.Path("/usr/bin").iterdir()):
        if total >= mib << 20:
            break
        if f.is_symlink() or not f.is_file():
            continue
        try:
            shutil.copy2(f, dst / f.name)
        except OSError:
            continue
        total += f.stat().st_size
    (path / "app").mkdir()
    (path / "app" / "index.html").write_text("version 0\n")
    return total


def project(path, root):
    path.mkdir()
    shutil.move(str(root), path / "rootfs")
    (path / "seeds.json").write_text(json.dumps({"web": {
        "root": "rootfs", "expose": {"http": 8080},
        "processes": {"httpd": {"command": ["busybox", "httpd", "-f", "-p", "8080", "-h", "/app"]}}}}))
    return path / "rootfs"


def config_digest(layout):
    """The config blob's digest of an OCI layout's (only) image."""
    index = json.loads((layout / "index.json").read_text())
    m = index["manifests"][0]["digest"].split(":", 1)[1]
    return json.loads((layout / "blobs" / "sha256" / m).read_text())["config"]["digest"]


def layers_uploaded(push_json, layout):
    """Layer blobs a push uploaded (the config, which names the layers, is not one)."""
    up = push_json.get("uploaded", [])
    up = [u["digest"] if isinstance(u, dict) else u for u in up]
    return len([u for u in up if u != config_digest(layout)])


def timed(cmd, cwd=None):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    ms = (time.perf_counter() - t0) * 1000
    if r.returncode != 0:
        sys.exit(f"bench/image: {' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return ms, r.stdout


class Registry:
    """docker-registry on 127.0.0.1:5000 inside the benchmark's netns, plain HTTP."""

    def __init__(self, netns, work):
        self.dir = work / "registry"
        self.dir.mkdir()
        self.log = open(work / "registry.log", "w")
        cfg = work / "registry.yml"
        cfg.write_text(f"""version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {self.dir}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
""")
        self.proc = subprocess.Popen(netns.cmd("docker-registry", "serve", str(cfg)),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(100):
            if subprocess.run(netns.cmd("curl", "-sf", "http://127.0.0.1:5000/v2/"),
                              capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        sys.exit("bench/image: docker-registry did not start")

    def blob_puts(self):
        """Blob uploads completed so far: the registry logs each request it served."""
        self.log.flush()
        text = pathlib.Path(self.log.name).read_text()
        return sum(1 for line in text.splitlines() if '"PUT /v2/' in line and "/blobs/uploads/" in line)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", default=str(ROOT / "build" / "src" / "seed"))
    ap.add_argument("--mib", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    if subprocess.run([a.seed, "image", "build", "--help"], capture_output=True).returncode != 0:
        sys.exit("bench/image: this seed has no `seed image build`")
    for prog, pkg in (("buildah", "buildah"), ("skopeo", "skopeo"), ("docker-registry", "docker-registry")):
        need(prog, pkg)

    work = pathlib.Path(tempfile.mkdtemp(prefix="seed-bench-image-"))
    work.chmod(0o755)
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")   # seed's layer and mount caches
    netns = Netns()
    reg = None
    had_containers = os.path.exists("/var/lib/containers")   # skopeo's blob cache goes there
    try:
        raw = work / "root"
        size = make_root(raw, a.mib)
        root = project(work / "proj", raw)
        print(f"image: a {size >> 20} MiB root ({sum(1 for _ in root.rglob('*'))} entries), "
              f"{a.runs} runs each, medians")
        reg = Registry(netns, work)
        st = work / "buildah"
        bah = ["buildah", "--root", str(st / "r"), "--runroot", str(st / "rr"), "--storage-driver", "vfs"]

        def seed_build(out):
            return timed([a.seed, "image", "build", "web", str(work / "proj"), "-o", str(out)])[0]

        def buildah_build(out):
            t0 = time.perf_counter()
            c = timed(bah + ["from", "scratch"])[1].strip()
            timed(bah + ["copy", c, str(root), "/"])
            timed(bah + ["config", "--entrypoint", '["/bin/busybox","httpd","-f","-p","8080","-h","/app"]', c])
            timed(bah + ["commit", "-q", c, f"oci:{out}:latest"])
            timed(bah + ["rm", c])
            return (time.perf_counter() - t0) * 1000

        results = {}

        def record(label, ms):
            results.setdefault(label, []).append(ms)

        for run in range(a.runs):
            for f in (work / "seed-a.oci", work / "seed-b.oci", work / "bah-a", work / "bah-b"):
                shutil.rmtree(f, ignore_errors=True)
            (root / "app" / "index.html").write_text(f"version {run}\n")
            shutil.rmtree(work / "cache", ignore_errors=True)   # cold: no layer or mount cache
            record("cold build: seed", seed_build(work / "seed-a.oci"))
            record("cold build: buildah", buildah_build(work / "bah-a"))
            (root / "app" / "index.html").write_text(f"version {run} changed\n")
            record("rebuild after a one-file change: seed", seed_build(work / "seed-b.oci"))
            record("rebuild after a one-file change: buildah", buildah_build(work / "bah-b"))

            repo_s, repo_b = f"127.0.0.1:5000/bench/seed{run}:v", f"127.0.0.1:5000/bench/bah{run}:v"
            push = [a.seed, "image", "push", "--insecure", "--json"]
            copy = ["skopeo", "copy", "-q", "--dest-tls-verify=false"]
            ms, out = timed(netns.cmd(*push, str(work / "seed-a.oci"), repo_s))
            record("push: seed", ms)
            record("push: skopeo", timed(netns.cmd(*copy, f"oci:{work / 'bah-a'}:latest", f"docker://{repo_b}"))[0])
            ms, out = timed(netns.cmd(*push, str(work / "seed-a.oci"), repo_s))
            record("push of the unchanged image: seed", ms)
            unchanged_up = layers_uploaded(json.loads(out), work / "seed-a.oci")
            record("push of the unchanged image: skopeo",
                   timed(netns.cmd(*copy, f"oci:{work / 'bah-a'}:latest", f"docker://{repo_b}"))[0])
            ms, out = timed(netns.cmd(*push, str(work / "seed-b.oci"), repo_s))
            record("re-push after a one-file change: seed", ms)
            changed_up = layers_uploaded(json.loads(out), work / "seed-b.oci")
            before = reg.blob_puts()
            record("re-push after a one-file change: skopeo",
                   timed(netns.cmd(*copy, f"oci:{work / 'bah-b'}:latest", f"docker://{repo_b}"))[0])
            bah_up = reg.blob_puts() - before - 1   # its config went up too
            record("seed: layers uploaded, unchanged push", unchanged_up)
            record("seed: layers uploaded, re-push after a change", changed_up)
            record("skopeo: layers uploaded, re-push after a change", bah_up)

        width = max(len(k) for k in results)
        for label, v in results.items():
            if label.startswith(("seed:", "skopeo:")):
                print(f"  {label:<{width}}  {statistics.median(v):.0f}")
            else:
                print(f"  {label:<{width}}  min {min(v):8.1f} ms  median {statistics.median(v):8.1f} ms"
                      f"  max {max(v):8.1f} ms")
        med = {k: statistics.median(v) for k, v in results.items()}
        for what in ("cold build", "rebuild after a one-file change", "push", "push of the unchanged image",
                     "re-push after a one-file change"):
            peer = "buildah" if "build" in what else "skopeo"
            print(f"  ratio {what}: seed / {peer} = {med[what + ': seed'] / med[what + ': ' + peer]:.2f}x")

        def goal(label, value, limit, unit="ms"):
            print(f"  goal {label} <= {limit} {unit}: {'met' if value <= limit else 'NOT met'} ({value:.0f} {unit})")
        goal("rebuild after a one-file change", med["rebuild after a one-file change: seed"], 1000)
        goal("re-push after a one-file change", med["re-push after a one-file change: seed"], 1000)
        goal("layers uploaded by that re-push", med["seed: layers uploaded, re-push after a change"], 1, "")
        goal("unchanged push", med["push of the unchanged image: seed"], 200)
        print("  (nix2container re-pushes a one-file change in ~1.8 s; dockerTools.streamLayeredImage ~7.5 s)")
    finally:
        if reg:
            reg.close()
        netns.close()
        shutil.rmtree(work, ignore_errors=True)
        if not had_containers:
            shutil.rmtree("/var/lib/containers", ignore_errors=True)


if __name__ == "__main__":
    main()
