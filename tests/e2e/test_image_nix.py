"""seed image build of a NixOS system (`toplevel`, issue 9 item 1): the store path's
closure from this machine's Nix store (Debian's nix-bin), one layer per store path,
most referred-to first, the rest merged once --max-layers is reached, as nixpkgs'
layered images do. The closure is built for real by nix-build from derivations whose
builder is Debian's static busybox, added to the store; no nixpkgs is needed.

Oracles: nix-store itself (the closure and each path's references, asked one by one),
umoci (unpacks the layout; the files equal the store's), podman (runs the image: seed-init
hands PID 1 to the system's init)."""
import json
import os
import pathlib
import resource
import shutil
import stat

import pytest

from seedtest import nix_busybox, nix_store_forget, nix_store_paths, run, workdir
from test_image_build import build, build_json, need, no_partial

# libfoo is needed by app1, app2 and (through them) the system; busybox by everything.
NIX = r"""
let
  bb = builtins.path { path = ./bb; name = "busybox"; };
  sh = "${bb}/bin/sh";
  mk = name: script: derivation {
    inherit name; system = builtins.currentSystem; builder = sh;
    args = [ "-c" "export PATH=${bb}/bin; ${script}" ];
  };
  libfoo = mk "libfoo" "mkdir -p $out/lib; echo 'foo 1' > $out/lib/foo; ln -s ${bb}/bin/busybox $out/lib/bb";
  app1 = mk "app1" "mkdir -p $out/bin; printf '#!${sh}\ncat ${libfoo}/lib/foo\necho hello from app1\n' > $out/bin/app1; chmod +x $out/bin/app1";
  app2 = mk "app2" "mkdir -p $out/share; echo ${libfoo} > $out/share/uses";
in mk "nixos-system-test" "mkdir -p $out; printf '#!${sh}\necho init is pid $$\n${app1}/bin/app1\ncat ${app2}/share/uses\necho @MARK@\nexit 0\n' > $out/init; chmod +x $out/init; ln -s ${app1} $out/sw"
"""


def nix_build(d, mark="init done"):
    """The fake NixOS system's store path, built by nix-build in d."""
    nix_busybox(d)
    (d / "default.nix").write_text(NIX.replace("@MARK@", mark))
    r = run(["nix-build", "--no-out-link", str(d / "default.nix")], timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def store(*args):
    r = run(["nix-store", *args], timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


@pytest.fixture(scope="module")
def system():
    need("nix-build", "nix-bin")
    before = nix_store_paths()  # what the module adds to the store goes at its end
    top = nix_build(workdir())  # the directory goes after the first test; the store path stays
    yield None, top
    nix_store_forget(before)


def project(toplevel, **extra):
    proj = workdir() / "project"
    proj.mkdir()
    (proj / "seeds.json").write_text(json.dumps({"web": {"toplevel": toplevel, **extra}}))
    return proj


def popularity_order(top):
    """The closure ranked as nixpkgs' layered images rank it, from nix-store's answers."""
    closure = store("-qR", top)
    refs = {p: [r for r in store("-q", "--references", p) if r != p] for p in closure}

    def reach(p, seen):
        if p not in seen:
            seen.add(p)
            for r in refs[p]:
                reach(r, seen)
        return seen
    pop = {p: 0 for p in closure}
    for p in closure:
        for q in reach(p, set()):
            pop[q] += 1
    return sorted(closure, key=lambda p: (-pop[p], p)), pop


def test_one_layer_per_store_path(system):
    """Each path of the closure is a layer, most popular first, then seed's own; the
    unpacked image holds exactly the closure under /nix/store, byte for byte, with
    the store's modes."""
    need("umoci", "umoci")
    _, top = system
    order, pop = popularity_order(top)
    assert len(order) == 5 and pop[order[0]] == 5 and order[0].endswith("-busybox")
    assert order[-1] == top
    out = workdir()
    res = build_json(project(top), "-o", str(out / "img"))
    holds = [x["holds"] for x in res["layers"]]
    assert holds == [[p] for p in order] + [["/seed"]], holds

    bundle = workdir() / "bundle"
    r = run(["umoci", "unpack", "--image", f"{out}/img:latest", str(bundle)], timeout=120)
    assert r.returncode == 0, r.stderr
    rootfs = bundle / "rootfs"
    assert sorted(os.listdir(rootfs / "nix" / "store")) == sorted(os.path.basename(p) for p in order)
    for p in order:
        for dirpath, dirs, files in os.walk(p):
            rel = os.path.relpath(dirpath, "/")
            for name in files + dirs:
                a, b = os.path.join(dirpath, name), rootfs / rel / name
                sa, sb = os.lstat(a), os.lstat(b)
                assert stat.S_IFMT(sa.st_mode) == stat.S_IFMT(sb.st_mode), a
                if stat.S_ISLNK(sa.st_mode):
                    assert os.readlink(a) == os.readlink(b)
                    continue
                assert stat.S_IMODE(sb.st_mode) in (0o444, 0o555), (b, oct(sb.st_mode))
                if stat.S_ISREG(sa.st_mode):
                    assert pathlib.Path(a).read_bytes() == b.read_bytes(), a
    conf = json.loads((rootfs / "seed" / "image.json").read_text())
    assert conf["toplevel"] == top


def test_max_layers_merges_the_least_popular(system):
    """With fewer layers allowed than paths, the most popular keep their own layer and the
    rest share one; the image holds the same files either way."""
    _, top = system
    order, _ = popularity_order(top)
    out = workdir()
    res = build_json(project(top), "-o", str(out / "img3"), "--max-layers", "3")
    holds = [x["holds"] for x in res["layers"]]
    assert holds == [[order[0]], sorted(order[1:]), ["/seed"]], holds
    res4 = build_json(project(top), "-o", str(out / "img4"), "--max-layers", "4")
    assert [x["holds"] for x in res4["layers"]] == [[order[0]], [order[1]], sorted(order[2:]), ["/seed"]]
    assert res4["layers"][0]["digest"] == res["layers"][0]["digest"]


def test_reproducible_and_a_change_touches_its_paths_only(system):
    """The same closure gives the same digest from anywhere; a system whose init changed
    changes the system's layer and seed's (its image.json names the new path) and no
    other."""
    _, top = system
    a = build_json(project(top), "-o", str(workdir() / "a"))
    deeper = workdir() / "deeper"
    deeper.mkdir()
    b = build_json(project(top), "-o", str(deeper / "b"), env={"XDG_CACHE_HOME": str(workdir())})
    assert a["manifest"] == b["manifest"]
    top2 = nix_build(workdir(), mark="init changed")
    assert top2 != top
    c = build_json(project(top2), "-o", str(workdir() / "c"))
    changed = [i for i, (x, y) in enumerate(zip(a["layers"], c["layers"])) if x["digest"] != y["digest"]]
    assert changed == [len(a["layers"]) - 2, len(a["layers"]) - 1], changed
    assert c["layers"][-2]["holds"] == [top2]


PODMAN = r"""
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /sys/fs/cgroup/unified
P="podman --root $W/root --runroot $W/runroot --storage-driver vfs --cgroup-manager cgroupfs --events-backend none"
set +e
$P run --rm --network none --ulimit nofile=$NOFILE:$NOFILE --ulimit nproc=$NPROC:$NPROC $IMAGE > $W/out 2> $W/err
echo "rc=$?"
"""


def test_podman_runs_the_system_init(system):
    """Under podman, seed-init gives PID 1 to the system's init (a NixOS system's stage 2
    expects to be PID 1), which runs programs of its closure; its exit is the container's."""
    need("podman", "podman")
    _, top = system
    out = workdir()
    build_json(project(top), "-o", str(out / "img"))
    w = workdir()
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 4096)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[0], 4096)
    env = dict(os.environ, W=str(w), IMAGE=f"oci:{out}/img:latest", NOFILE=str(nofile), NPROC=str(nproc))
    try:
        r = run(["unshare", "-m", "sh", "-c", PODMAN], timeout=300, env=env)
        text = (w / "out").read_text()
        assert "rc=0" in r.stdout, (r.stdout, r.stderr, text, (w / "err").read_text())
        assert text.splitlines()[:3] == ["init is pid 1", "foo 1", "hello from app1"], text
        assert "init done" in text
        assert f"starting the NixOS system {top}" in (w / "err").read_text()
    finally:
        shutil.rmtree(w / "root", ignore_errors=True)


def test_bad_input(system):
    """A path not in the store, a store path that is no system, a spec naming a store path
    outside the closure and a closure with a link out of it: each a clear error, nothing
    written."""
    _, top = system
    d = workdir()
    out = workdir()
    missing = "/nix/store/" + "a" * 32 + "-nixos-system"
    r = build(project(missing), "-o", str(out / "img"), check=False)
    assert r.returncode == 1 and "not a valid path of this machine's Nix store" in r.stderr, r.stderr
    assert missing in r.stderr

    # A store path without an init.
    (d / "plain").mkdir(exist_ok=True)
    (d / "plain" / "readme").write_text("no init here\n")
    plain = store("--add", str(d / "plain"))[0]
    r = build(project(plain), "-o", str(out / "img"), check=False)
    assert r.returncode == 1 and "no executable init" in r.stderr, r.stderr

    # env names a store path the system does not depend on.
    r = build(project(top, env={"TOOL": plain + "/readme"}), "-o", str(out / "img"), check=False)
    assert r.returncode == 1 and "web.env.TOOL" in r.stderr and "outside the closure" in r.stderr, r.stderr

    # nix-store --add records no references: a link into busybox's path points outside.
    bb = next(p for p in store("-qR", top) if p.endswith("-busybox"))
    (d / "linked").mkdir(exist_ok=True)
    (d / "linked" / "init").write_text("#!/bin/sh\n")
    (d / "linked" / "init").chmod(0o755)
    if not (d / "linked" / "sh").is_symlink():
        (d / "linked" / "sh").symlink_to(bb + "/bin/sh")
    linked = store("--add", str(d / "linked"))[0]
    r = build(project(linked), "-o", str(out / "img"), check=False)
    assert r.returncode == 1 and "outside the closure" in r.stderr and bb in r.stderr, r.stderr
    assert "/sh is a symlink" in r.stderr, r.stderr
    no_partial(out)
