"""A Nix store path as an instance's root (issue 12, items 3 and 4): the node gives the
sandbox exactly the path's closure, read-only, under /nix/store (nothing else of the
host's store), with links from / to the path's top-level entries; an unchanged path
never restarts the instance, a changed one rolls it out; `seed image build` lays the
closure out one layer per store path.

The store paths are built for real by nix-build from derivations whose builder is
Debian's static busybox (no nixpkgs); a decoy path added with nix-store --add lies in
the same store and must stay out of sight."""
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from seedtest import BUSYBOX, PROBE, SEED, make_project, run, workdir

NIX = r"""
let
  bb = builtins.path { path = ./bb; name = "busybox"; };
  sh = "${bb}/bin/sh";
  mk = name: script: derivation {
    inherit name; system = builtins.currentSystem; builder = sh;
    args = [ "-c" "export PATH=${bb}/bin; ${script}" ];
  };
  www = mk "www" "mkdir -p $out; echo '@PAGE@' > $out/index.html";
in mk "web-env" "mkdir -p $out/bin $out/etc; for a in sh httpd ls cat touch id; do ln -s ${bb}/bin/busybox $out/bin/$a; done; ln -s ${www} $out/www; cp ${./probe} $out/bin/seed-probe; echo 'from the store' > $out/etc/motd"
"""


def store(*args):
    r = run(["nix-store", *args], timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def build(page):
    d = workdir()
    (d / "bb" / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, d / "bb" / "bin" / "busybox")
    (d / "bb" / "bin" / "sh").symlink_to("busybox")
    shutil.copy(PROBE, d / "probe")
    (d / "default.nix").write_text(NIX.replace("@PAGE@", page))
    r = run(["nix-build", "--no-out-link", str(d / "default.nix")], timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture(scope="module")
def paths():
    if not shutil.which("nix-build"):
        r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "nix-bin"],
                           capture_output=True, timeout=600, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if r.returncode != 0:
            pytest.skip("nix-build is not installed (Debian's nix-bin)")
    storedir = pathlib.Path("/nix/store")
    before = set(os.listdir(storedir))
    decoy_src = workdir() / "decoy-secret"
    decoy_src.write_text("not yours\n")
    decoy = store("--add", str(decoy_src))[0]
    yield {"v1": build("v1"), "v2": build("v2"), "decoy": decoy}
    left = {str(storedir / p) for p in set(os.listdir(storedir)) - before if p != ".links"}
    while left:  # one at a time: a set is refused whole when one path is still needed
        gone = {p for p in sorted(left) if subprocess.run(["nix-store", "--delete", p], capture_output=True).returncode == 0}
        if not gone:
            break
        left -= gone


def web(root, **extra):
    inst = {"size": "xs", "root": root, "expose": {"http": 8080},
            "processes": {"httpd": {"command": ["/bin/sh", "-c", "exec httpd -f -p 8080 -h /www"]}}}
    inst.update(extra)
    return inst


def probe(root, cmd):
    return {"size": "xs", "root": root, "processes": {"p": {"command": ["/bin/sh", "-c", cmd], "restart": "no"}}}


def test_the_instance_sees_its_closure_and_nothing_else(nodes, paths):
    v1 = paths["v1"]
    closure = sorted(os.path.basename(p) for p in store("-qR", v1))
    script = ("echo STORE $(ls /nix/store | tr '\\n' ' '); "
              f"cat {paths['decoy']} 2>/dev/null && echo DECOY-READ || echo DECOY-HIDDEN; "
              f"touch {v1}/x 2>/dev/null && echo STORE-WRITABLE || echo STORE-READONLY; "
              "echo MOTD $(cat /etc/motd); echo BIN $(ls -l /bin | sed 's/.*-> //'); "
              "echo ID $(id -u)")
    proj = make_project({"web": web(v1), "look": probe(v1, script)}, rootfs=False)
    node = nodes(proj)
    node.wait_running("web")
    assert node.wait(lambda: node.http(8080), what="web answering") == "v1\n"
    out = node.wait_log("look", "ID ")
    line = next(l for l in out.splitlines() if "STORE " in l)
    assert sorted(line.split("STORE ", 1)[1].split()) == closure, line
    assert os.path.basename(paths["decoy"]) not in line
    assert "DECOY-HIDDEN" in out and "STORE-READONLY" in out
    assert "MOTD from the store" in out and f"BIN {v1}/bin" in out


def test_an_unchanged_path_never_restarts_a_changed_one_rolls_out(nodes, paths):
    proj = make_project({"web": web(paths["v1"])}, rootfs=False)
    node = nodes(proj)
    node.wait_running("web")
    pid = node.ps()["web"]["pid"]
    r = node.cli("apply")
    assert r.returncode == 0, r.stderr
    assert node.ps()["web"]["pid"] == pid
    (proj / "seeds.json").write_text(json.dumps({"web": web(paths["v2"])}))
    r = node.cli("apply")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "~ web" in r.stdout
    assert node.wait(lambda: node.http(8080) == "v2\n" or None, what="v2")
    assert node.ps()["web"]["pid"] != pid


def test_a_path_not_in_the_store_stops_that_instance_only(nodes, paths):
    missing = "/nix/store/" + "a" * 32 + "-not-built"
    proj = make_project({"web": web(paths["v1"]), "gone": web(missing, expose={"http": 8081})}, rootfs=False)
    node = nodes(proj)
    node.wait_running("web")
    assert node.wait(lambda: node.http(8080), what="web answering") == "v1\n"

    def failed():
        g = node.ps().get("gone") or {}
        return g if "not a valid path of this machine's Nix store" in (g.get("error") or "") else None
    g = node.wait(failed, what="gone failing")
    assert missing in g["error"]


def test_image_of_a_store_root(paths):
    """seed image build: the closure one layer per path, then the links from /, then seed's
    own; podman runs it and the page comes from the store."""
    v1 = paths["v1"]
    from test_image_build import build_json, need
    need("umoci", "umoci")
    proj = make_project({"web": web(v1)}, rootfs=False)
    out = workdir()
    res = build_json(proj, "-o", str(out / "img"))
    closure = store("-qR", v1)
    holds = [x["holds"] for x in res["layers"]]
    assert sorted(h[0] for h in holds[:-2]) == sorted(closure) and all(len(h) == 1 for h in holds[:-2])
    assert holds[-2:] == [["/ -> store root"], ["/seed"]]
    bundle = workdir() / "bundle"
    r = run(["umoci", "unpack", "--image", f"{out}/img:latest", str(bundle)], timeout=120)
    assert r.returncode == 0, r.stderr
    rootfs = bundle / "rootfs"
    assert os.readlink(rootfs / "bin") == f"{v1}/bin"
    assert os.readlink(rootfs / "www") == f"{v1}/www"
    assert os.readlink(rootfs / "etc" / "motd") == f"{v1}/etc/motd"
    assert (rootfs / "etc" / "passwd").read_text().startswith("root:x:0:0:")
    assert sorted(os.listdir(rootfs / "nix" / "store")) == sorted(os.path.basename(p) for p in closure)

    # A command naming a store path the root does not depend on: refused.
    bad = make_project({"web": web(v1, processes={"p": {"command": [paths["decoy"]]}})}, rootfs=False)
    r = run([SEED, "image", "build", "web", str(bad), "-o", str(out / "bad")], timeout=120)
    assert r.returncode == 1 and "web.processes.p.command" in r.stderr and "outside the closure" in r.stderr, r.stderr
