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
import shutil
import subprocess

import pytest

from seedtest import PROBE, SEED, make_project, nix_busybox, nix_store_forget, nix_store_paths, run, workdir

NIX = r"""
let
  bb = builtins.path { path = ./bb; name = "busybox"; };
  sh = "${bb}/bin/sh";
  mk = name: script: derivation {
    inherit name; system = builtins.currentSystem; builder = sh;
    args = [ "-c" "export PATH=${bb}/bin; ${script}" ];
  };
  www = mk "www" "mkdir -p $out; echo '@PAGE@' > $out/index.html";
in mk "web-env" "mkdir -p $out/bin $out/etc; for a in sh httpd ls cat touch id; do ln -s ${bb}/bin/busybox $out/bin/$a; done; ln -s ${www} $out/www; cp ${./probe} $out/bin/seed-probe; echo 'from the store' > $out/etc/motd; echo '10.9.9.9 from-the-store' > $out/etc/hosts"
"""


def store(*args):
    r = run(["nix-store", *args], timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def build(page):
    d = workdir()
    nix_busybox(d)
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
    before = nix_store_paths()
    decoy_src = workdir() / "decoy-secret"
    decoy_src.write_text("not yours\n")
    decoy = store("--add", str(decoy_src))[0]
    yield {"v1": build("v1"), "v2": build("v2"), "decoy": decoy}
    nix_store_forget(before)


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
              "echo HOSTS $(grep -c seed-web /etc/hosts) $(grep -c from-the-store /etc/hosts); echo ID $(id -u)")
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
    assert "HOSTS 1 0" in out, out  # the node's /etc/hosts, not the root's


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
    assert not os.path.lexists(rootfs / "etc" / "hosts")  # the runtime's own, not a link into the store
    assert (rootfs / "etc" / "passwd").read_text().startswith("root:x:0:0:")
    assert sorted(os.listdir(rootfs / "nix" / "store")) == sorted(os.path.basename(p) for p in closure)

    # A command naming a store path the root does not depend on: refused.
    bad = make_project({"web": web(v1, processes={"p": {"command": [paths["decoy"]]}})}, rootfs=False)
    r = run([SEED, "image", "build", "web", str(bad), "-o", str(out / "bad")], timeout=120)
    assert r.returncode == 1 and "web.processes.p.command" in r.stderr and "outside the closure" in r.stderr, r.stderr


HELLO = ('derivation { name = "hello"; system = "x86_64-linux"; builder = "/bin/sh"; '
         'args = [ "-c" "export PATH=/usr/bin:/bin; mkdir -p $out/bin; printf \'#!/bin/sh\\necho hello from a nix profile\\n\' > $out/bin/hello; '
         'chmod +x $out/bin/hello" ]; }')


def sexec(node, *args, timeout=180):
    return subprocess.run([SEED, "--state-dir", str(node.state), "exec", "-e", "HOME=/tmp", "dev", "--", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_nix_inside_an_instance_keeps_its_profile_across_restarts(nodes):
    """nix.enable: the host's nix (root "host") works inside the instance on a store of its
    own on the volume; `nix profile install` of a derivation built there survives a
    restart of the instance; builds run unsandboxed, GC limits from the
    spec are in nix.conf; the host's store stays out of sight."""
    if not shutil.which("nix"):
        pytest.skip("nix is not installed (Debian's nix-bin)")
    spec = {"dev": {"size": "s", "root": "host", "storage": {"data": "256Mi"},
                    "nix": {"enable": True, "minFree": "16Mi", "maxFree": "64Mi"},
                    "processes": {"idle": {"command": ["sleep", "infinity"]}}}}
    proj = make_project(spec, rootfs=False)
    node = nodes(proj)
    node.wait_running("dev")
    conf = sexec(node, "cat", "/etc/nix/nix.conf")
    assert conf.returncode == 0 and "sandbox = false" in conf.stdout
    assert f"min-free = {16 << 20}" in conf.stdout and f"max-free = {64 << 20}" in conf.stdout
    r = sexec(node, "nix", "profile", "install", "--option", "substituters", "", "--impure", "--expr", HELLO)
    assert r.returncode == 0, r.stderr
    profile = "/nix/var/nix/profiles/default/bin/hello"  # root's profile
    r = sexec(node, profile)
    assert r.stdout == "hello from a nix profile\n", (r.stdout, r.stderr, sexec(node, "ls", "-la", "/nix/var/nix/profiles", "/nix/var/nix/profiles/per-user/root", "/tmp").stdout)
    # The store is the instance's own: the host's paths are not in it.
    listing = sexec(node, "ls", "/nix/store").stdout.split()
    assert all(p.endswith("-hello") or p.endswith(".drv") or p.endswith("-source") or ".links" in p
               or "profile" in p or "env-manifest" in p or "user-environment" in p for p in listing), listing

    r = node.cli("restart", "dev")
    assert r.returncode == 0, r.stderr
    node.wait_running("dev")
    assert sexec(node, profile).stdout == "hello from a nix profile\n"
    r = sexec(node, "nix", "profile", "list")
    assert r.returncode == 0 and "hello" in r.stdout, r.stdout + r.stderr


def test_nix_with_a_store_root_and_a_daemon(nodes, paths):
    """nix.enable beside a store root: the closure lies read-only over the instance's own
    writable store, the node hands the closure's registration over (seed-init registers
    it where the root has nix-store, and says so where it has none), and nix.daemon runs a
    nix-daemon process with NIX_REMOTE=daemon for the others."""
    v1 = paths["v1"]
    script = (f"touch /nix/mine && echo NIX-WRITABLE; touch {v1}/x 2>/dev/null || echo CLOSURE-READONLY; "
              "echo ENV $NIX_REMOTE; sleep 1; echo DONE")
    spec = {"web": {"size": "xs", "root": v1, "storage": {"store": "64Mi"}, "nix": {"enable": True, "daemon": True},
                    "processes": {"p": {"command": ["/bin/sh", "-c", script], "restart": "no"}}}}
    proj = make_project(spec, rootfs=False)
    node = nodes(proj)
    out = node.wait_log("web", "DONE")
    assert "NIX-WRITABLE" in out and "CLOSURE-READONLY" in out and "ENV daemon" in out, out
    assert "nix: no nix-store in the root" in out, out
    # This root has no nix-daemon to run: the init says so, as of any missing program.
    logs = node.wait_log("web", "nix-daemon")
    assert "nix-daemon" in logs, (logs, node.ps()["web"])


SYSTEM = r"""
let
  bb = builtins.path { path = ./bb; name = "busybox"; };
  sh = "${bb}/bin/sh";
  mk = name: script: derivation {
    inherit name; system = builtins.currentSystem; builder = sh;
    args = [ "-c" "export PATH=${bb}/bin; ${script}" ];
  };
  www = mk "www" "mkdir -p $out; echo 'served by the system init' > $out/index.html";
in mk "nixos-system-test" "mkdir -p $out; printf '#!${sh}\nexec ${bb}/bin/busybox httpd -f -p 8080 -h ${www}\n' > $out/init; chmod +x $out/init; ln -s ${bb} $out/sw"
"""


def test_a_nixos_toplevel_runs_its_init_as_pid_1_on_a_node(nodes, paths):
    """A toplevel on a node: the sandbox holds the system's closure as its store and the
    system's init replaces seed-init as PID 1 (here a stand-in init that serves a page:
    no NixOS can be built offline)."""
    d = workdir()
    nix_busybox(d)
    (d / "default.nix").write_text(SYSTEM)
    r = run(["nix-build", "--no-out-link", str(d / "default.nix")], timeout=300)
    assert r.returncode == 0, r.stderr
    top = r.stdout.strip()  # deleted with what the module made (paths), once no node runs it
    proj = make_project({"sys": {"toplevel": top, "expose": {"http": 8080}}}, rootfs=False)
    node = nodes(proj)
    node.wait_running("sys")
    assert node.wait(lambda: node.http(8080), what="the system answering") == "served by the system init\n"
    bb = next(p for p in store("-qR", top) if p.endswith("-busybox"))
    r = subprocess.run([SEED, "--state-dir", str(node.state), "exec", "sys", "--", f"{bb}/bin/busybox", "sh", "-c",
                        "cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /nix/store"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    first, *listing = r.stdout.splitlines()
    assert "httpd" in first, r.stdout
    assert sorted(listing) == sorted(os.path.basename(p) for p in store("-qR", top))
