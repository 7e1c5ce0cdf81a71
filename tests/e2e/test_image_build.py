"""seed image build (issue 9, items 1 and 3): reproducible, layered OCI images of an
instance, checked with real clients (skopeo, umoci, podman) as oracles.

podman runs in a private mount namespace with a tmpfs over /sys/fs/cgroup/unified (crun
refuses the hybrid layout), its own storage in a temporary directory, cgroupfs, and no
network: the port is checked from inside with `podman exec`.
"""
import hashlib
import json
import os
import pathlib
import resource
import shutil
import socket

import pytest

from seedtest import SEED, BUSYBOX, run, workdir

SPEC = {"web": {"root": "rootfs", "size": "xs", "expose": {"http": 8080, "dns": {"port": 53, "protocol": "dns"}},
                "storage": {"data": "64Mi"}, "env": {"GREETING": "hello from seed"},
                "processes": {"httpd": {"command": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]}}},
        "job": {"root": "rootfs", "processes": {"p": {"command": ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"],
                                                      "restart": "no"}}}}

LONG = "a-file-name-longer-than-the-hundred-bytes-a-ustar-header-holds-" + "x" * 60


def need(tool, package):
    if shutil.which(tool):
        return
    r = run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package], timeout=600,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if r.returncode != 0 or not shutil.which(tool):
        pytest.skip(f"{tool} is not installed ({package}) and could not be installed")


def files_of_root():
    """(path, kind, data) of a root, in a fixed order: kind f (file), x (executable), l (symlink),
    h (hard link to data), d (directory)."""
    items = [("bin", "d", None), ("bin/busybox", "x", pathlib.Path(BUSYBOX).read_bytes()),
             ("bin/sh", "l", "busybox"), ("bin/httpd", "l", "busybox"), ("bin/wget", "l", "/bin/busybox"),
             ("etc", "d", None), ("etc/passwd", "f", b"root:x:0:0:root:/root:/bin/sh\n"),
             ("etc/group", "f", b"root:x:0:\n"), ("www", "d", None),
             ("www/index.html", "f", b"hello\n"), ("www/" + LONG, "f", b"long\n"),
             ("www/same.html", "h", "www/index.html"), ("tmp", "d", None),
             ("usr", "d", None), ("usr/share", "d", None), ("usr/share/doc", "d", None),
             ("usr/share/doc/readme", "f", b"doc\n")]
    return items


def make_root(path, reverse=False, umask=0o022, mtime=None, owner=None):
    old = os.umask(umask)
    try:
        path.mkdir()
        items = files_of_root()
        dirs = [i for i in items if i[1] == "d"]
        rest = [i for i in items if i[1] != "d"]
        if reverse:
            dirs, rest = list(reversed(dirs)), list(reversed(rest))
            # hard links need their target first
            rest.sort(key=lambda i: i[1] == "h")
        for p, _, _ in dirs:
            (path / p).mkdir(parents=True, exist_ok=True)
        for p, kind, data in rest:
            f = path / p
            if kind == "l":
                f.symlink_to(data)
            elif kind == "h":
                os.link(path / data, f)
            else:
                f.write_bytes(data)
                if kind == "x":
                    f.chmod(0o777 & ~umask)
                else:
                    f.chmod(0o666 & ~umask)
        (path / "tmp").chmod(0o1777)
        for p, kind, _ in items:
            f = path / p
            if mtime is not None:
                os.utime(f, (mtime, mtime), follow_symlinks=False)
            if owner is not None:
                os.lchown(f, owner, owner)
    finally:
        os.umask(old)


def make_project(base, **kw):
    proj = base / "project"
    proj.mkdir(parents=True)
    make_root(proj / "rootfs", **kw)
    (proj / "seeds.json").write_text(json.dumps(SPEC))
    for p in [base, proj, proj / "rootfs"]:
        p.chmod(0o755)
    return proj


def build(proj, *args, name="web", cwd=None, env=None, check=True):
    r = run([SEED, "image", "build", name, str(proj), *args], timeout=300, cwd=cwd,
            env=dict(os.environ, **(env or {})))
    if check:
        assert r.returncode == 0, r.stderr
    return r


def build_json(proj, *args, **kw):
    return json.loads(build(proj, "--json", *args, **kw).stdout)


def sha(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def test_reproducible():
    """Copies made in different orders, on different paths, with different umasks, mtimes
    and owners give the same manifest digest and byte-identical archives."""
    a = make_project(workdir() / "one")
    b = make_project(workdir() / "two" / "deeper", reverse=True, umask=0o077, mtime=1234567890, owner=4321)
    outs = {}
    for name, proj in [("a", a), ("b", b)]:
        out = workdir()
        res = {}
        for fmt, path in [("oci", "img"), ("oci-archive", "img.tar"), ("docker-archive", "img.docker")]:
            res[fmt] = build_json(proj, "--format", fmt, "-o", str(out / path))
        outs[name] = (out, res)
    (oa, ra), (ob, rb) = outs["a"], outs["b"]
    for fmt in ra:
        assert ra[fmt]["manifest"] == rb[fmt]["manifest"], fmt
        assert [x["digest"] for x in ra[fmt]["layers"]] == [x["digest"] for x in rb[fmt]["layers"]]
    assert ra["oci"]["manifest"] == ra["oci-archive"]["manifest"] == ra["docker-archive"]["manifest"]
    assert sha(oa / "img.tar") == sha(ob / "img.tar")
    assert sha(oa / "img.docker") == sha(ob / "img.docker")
    for f in ["index.json", "oci-layout"]:
        assert sha(oa / "img" / f) == sha(ob / "img" / f)
    assert sorted(os.listdir(oa / "img" / "blobs" / "sha256")) == sorted(os.listdir(ob / "img" / "blobs" / "sha256"))
    # Nothing of where it was built: no path of either project in any blob.
    for blob in (oa / "img" / "blobs" / "sha256").iterdir():
        data = blob.read_bytes()
        assert str(a).encode() not in data and b"seed-e2e-" not in data
    # Rebuilt in another directory with another SOURCE_DATE_EPOCH: other digests, same again
    # when repeated.
    c1 = build_json(a, "-o", str(workdir() / "c"), env={"SOURCE_DATE_EPOCH": "1700000000"})
    c2 = build_json(b, "-o", str(workdir() / "c"), env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert c1["manifest"] == c2["manifest"] != ra["oci"]["manifest"]


def test_tar_normalised():
    """Entries sorted, owners 0, one mtime, modes as identity sees them; hard links and
    absolute symlinks stored as they are; the long name kept."""
    out = workdir() / "img.tar"
    proj = make_project(workdir(), umask=0o077, owner=4321, mtime=999)
    res = build_json(proj, "--format", "oci-archive", "-o", str(out))
    layout = workdir()
    run(["tar", "-xf", str(out), "-C", str(layout)]).check_returncode()
    www = next(x for x in res["layers"] if x["holds"] == ["/www"])
    listing = run(["tar", "--numeric-owner", "--full-time", "-tvzf",
                   str(layout / "blobs" / "sha256" / www["digest"][7:])]).stdout.splitlines()
    names = [line.split()[5] for line in listing]
    assert names == sorted(names) == ["www/", "www/" + LONG, "www/index.html", "www/same.html"]
    for line in listing:
        assert " 0/0 " in line and "1970-01-01 00:00:01" in line, line
    assert listing[2].startswith("-rw-r--r--") and listing[0].startswith("drwxr-xr-x")
    assert "link to www/index.html" in listing[3]
    bins = next(x for x in res["layers"] if x["holds"] == ["/bin"])
    listing = run(["tar", "-tvzf", str(layout / "blobs" / "sha256" / bins["digest"][7:])]).stdout
    assert "bin/wget -> /bin/busybox" in listing and "-rwxr-xr-x" in listing
    tmp = next(x for x in res["layers"] if x["holds"] == ["/tmp"])
    assert run(["tar", "-tvzf", str(layout / "blobs" / "sha256" / tmp["digest"][7:])]).stdout.startswith("drwxrwxrwt")


def test_layers_split():
    """One layer per top-level directory (big ones split further), seed's own files last;
    changing one application file changes exactly one layer."""
    proj = make_project(workdir())
    lib = proj / "rootfs" / "usr" / "lib"
    (lib / "big").mkdir(parents=True)
    (lib / "loose.so").write_bytes(os.urandom(5 << 20))
    (lib / "big" / "data").write_bytes(os.urandom(5 << 20))
    out = workdir()
    r1 = build_json(proj, "-o", str(out / "one"))
    holds = [x["holds"] for x in r1["layers"]]
    assert holds == [["/bin"], ["/etc"], ["/tmp"], ["/usr/*"], ["/usr/lib/*"], ["/usr/lib/big"],
                     ["/usr/share"], ["/www"], ["/seed"]], holds
    text = build(proj, "-o", str(out / "text")).stdout
    assert "/usr/lib/big" in text and "/seed" in text and "9 layers" in text

    (proj / "rootfs" / "www" / "index.html").write_text("changed\n")
    r2 = build_json(proj, "-o", str(out / "two"))
    changed = [i for i, (x, y) in enumerate(zip(r1["layers"], r2["layers"])) if x["digest"] != y["digest"]]
    assert [r1["layers"][i]["holds"] for i in changed] == [["/www"]]
    assert r1["manifest"] != r2["manifest"]

    # Fewer layers allowed: the largest units keep theirs, the rest share one; seed's last.
    r3 = build_json(proj, "-o", str(out / "three"), "--max-layers", "4")
    holds = [x["holds"] for x in r3["layers"]]
    assert len(holds) == 4 and holds[-1] == ["/seed"]
    assert holds[0] == ["/usr/lib/*"] and holds[1] == ["/usr/lib/big"], holds
    assert sorted(holds[2]) == sorted(["/bin", "/etc", "/tmp", "/usr/*", "/usr/share", "/www"])
    assert build_json(proj, "-o", str(out / "four"), "--max-layers", "4")["manifest"] == r3["manifest"]


def test_clients_accept_it():
    """skopeo inspects every format with our digests; umoci unpacks the layout into the
    files of the root plus /seed."""
    need("skopeo", "skopeo")
    need("umoci", "umoci")
    proj = make_project(workdir())
    out = workdir()
    res = build_json(proj, "-o", str(out / "img"), "--tag", "v1", "--uri", "git+https://example.com/x.git")
    res_tar = build_json(proj, "-o", str(out / "img.tar"), "--format", "oci-archive", "--tag", "v1")
    res_docker = build_json(proj, "-o", str(out / "img.docker"), "--format", "docker-archive", "--tag", "v1")
    # --uri puts the namespace into the environment: only seed's own layer differs.
    assert [x["digest"] for x in res["layers"][:-1]] == [x["digest"] for x in res_tar["layers"][:-1]]
    assert res["layers"][-1]["digest"] != res_tar["layers"][-1]["digest"]
    for ref, want in [(f"oci:{out}/img:v1", res), (f"oci-archive:{out}/img.tar", res_tar),
                      (f"docker-archive:{out}/img.docker", res_docker)]:
        r = run(["skopeo", "inspect", ref])
        assert r.returncode == 0, (ref, r.stderr)
        info = json.loads(r.stdout)
        if ref.startswith("docker-archive"):  # skopeo names docker-archive layers by diff_id
            assert info["Layers"] == [x["diff_id"] for x in want["layers"]], ref
        else:
            assert info["Layers"] == [x["digest"] for x in want["layers"]], ref
            assert info["Digest"] == want["manifest"], ref
        assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    r = run(["skopeo", "inspect", "--config", f"oci:{out}/img:v1"])
    cfg = json.loads(r.stdout)["config"]
    assert cfg["Entrypoint"] == ["/seed/bin/seed-init"]
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/tcp": {}, "53/udp": {}}
    assert list(cfg["Volumes"]) == ["/seed/storage/data"]
    assert "GREETING=hello from seed" in cfg["Env"] and "SEED_INSTANCE=web" in cfg["Env"]
    assert any(e.startswith("SEED_NAMESPACE=s-") for e in cfg["Env"])
    labels = cfg["Labels"]
    assert labels["org.opencontainers.image.source"] == "git+https://example.com/x.git"
    assert labels["dev.seed.instance"] == "web" and len(labels["dev.seed.identity"]) == 64
    # Without --uri: no namespace (it would come from the project's path).
    r = run(["skopeo", "inspect", "--config", f"oci-archive:{out}/img.tar"])
    cfg = json.loads(r.stdout)["config"]
    assert not any(e.startswith("SEED_NAMESPACE=") for e in cfg["Env"])
    assert "dev.seed.namespace" not in cfg["Labels"]

    bundle = workdir() / "bundle"
    r = run(["umoci", "unpack", "--image", f"{out}/img:v1", str(bundle)], timeout=120)
    assert r.returncode == 0, r.stderr
    rootfs = bundle / "rootfs"
    for p, kind, data in files_of_root():
        f = rootfs / p
        if kind == "l":
            assert os.readlink(f) == data
        elif kind == "h":
            assert f.read_bytes() == (rootfs / data).read_bytes()
            assert os.stat(f).st_ino == os.stat(rootfs / data).st_ino
        elif kind == "d":
            assert f.is_dir()
        else:
            assert f.read_bytes() == data, p
    assert os.access(rootfs / "seed" / "bin" / "seed-init", os.X_OK)
    conf = json.loads((rootfs / "seed" / "image.json").read_text())
    assert conf["name"] == "web" and conf["processes"][0]["argv"][0] == "/bin/httpd"


PODMAN_SCRIPT = r"""
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /sys/fs/cgroup/unified
P="podman --root $W/root --runroot $W/runroot --storage-driver vfs --cgroup-manager cgroupfs --events-backend none"
trap '$P rm -f -t 0 t >/dev/null 2>&1 || true' EXIT
if [ -n "${PULL:-}" ]; then $P pull -q $PULL >/dev/null; fi
$P run -d --name t --network none --ulimit nofile=$NOFILE:$NOFILE --ulimit nproc=$NPROC:$NPROC $IMAGE >/dev/null
for i in $(seq 1 100); do
    if $P exec t /bin/busybox wget -qO- http://127.0.0.1:8080/index.html > $W/answer 2>/dev/null; then break; fi
    sleep 0.2
done
echo "pid1=$($P exec t /bin/busybox cat /proc/1/comm)"
$P stop -t 20 t >/dev/null
echo "exit=$($P inspect t --format '{{.State.ExitCode}}')"
$P logs t > $W/logs 2>&1
[ -n "${JOB:-}" ] || exit 0
set +e
$P run --rm --network none --ulimit nofile=$NOFILE:$NOFILE --ulimit nproc=$NPROC:$NPROC $JOB > $W/job.out 2> $W/job.err
echo "job=$?"
"""


def test_podman_run():
    """podman runs the image: seed-init is PID 1, httpd answers on the exposed port, and
    podman stop (SIGTERM) stops it gracefully with exit code 0; a process that exits 3
    makes the container exit 3."""
    need("podman", "podman")
    if not os.path.isdir("/sys/fs/cgroup"):
        pytest.skip("no cgroup filesystem")
    proj = make_project(workdir())
    out = workdir()
    build_json(proj, "-o", str(out / "img"))
    build_json(proj, "-o", str(out / "job"), name="job")
    w = workdir()

    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 4096)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[0], 4096)
    env = dict(os.environ, W=str(w), IMAGE=f"oci:{out}/img:latest", JOB=f"oci:{out}/job:latest", NOFILE=str(nofile), NPROC=str(nproc))
    r = run(["unshare", "-m", "sh", "-c", PODMAN_SCRIPT], timeout=300, env=env)
    logs = (w / "logs").read_text() if (w / "logs").exists() else ""
    assert r.returncode == 0, (r.stdout, r.stderr, logs)
    assert (w / "answer").read_text() == "hello\n", (r.stdout, logs)
    assert "pid1=seed-init" in r.stdout
    assert "exit=0" in r.stdout, (r.stdout, logs)
    assert "httpd (seed): was killed by signal 15" in logs, logs
    # A process that ends on its own: its lines on stdout/stderr, its status as the exit code.
    assert "job=3" in r.stdout, (r.stdout, (w / "job.err").read_text())
    assert (w / "job.out").read_text() == "p: out\n"
    assert "p: err\n" in (w / "job.err").read_text()
    shutil.rmtree(w / "root", ignore_errors=True)


def no_partial(d, keep=()):
    left = [p for p in os.listdir(d) if p not in keep]
    assert left == [], left


def test_bad_input():
    base = workdir()
    out = workdir()

    # "root": "host": a clear error, nothing written (Nix store paths: test_image_nix.py).
    host = base / "host"
    host.mkdir()
    (host / "seeds.json").write_text(json.dumps({"web": {"root": "host", "processes": {"p": {"command": ["true"]}}}}))
    r = build(host, "-o", str(out / "img"), check=False)
    assert r.returncode == 1 and '"root": "host"' in r.stderr and "root directory" in r.stderr, r.stderr
    no_partial(out)

    # Unknown instance, bad options.
    proj = make_project(workdir())
    r = build(proj, name="nope", check=False)
    assert r.returncode == 1 and "no instance 'nope'" in r.stderr
    for args in [["--format", "zip"], ["--max-layers", "1"], ["--max-layers", "x"], ["--tag", "a/b"]]:
        r = build(proj, *args, "-o", str(out / "img"), check=False)
        assert r.returncode == 2, (args, r.stderr)
    r = build(proj, "-o", str(out / "img"), env={"SOURCE_DATE_EPOCH": "yesterday"}, check=False)
    assert r.returncode == 2 and "SOURCE_DATE_EPOCH" in r.stderr
    no_partial(out)

    # A socket in the root: named.
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(proj / "rootfs" / "www" / "control.sock"))
    try:
        r = build(proj, "-o", str(out / "img"), check=False)
        assert r.returncode == 1 and "control.sock" in r.stderr, r.stderr
    finally:
        sock.close()
        os.unlink(proj / "rootfs" / "www" / "control.sock")
    no_partial(out)

    # A name that unpacking would take for a deletion.
    (proj / "rootfs" / "www" / ".wh.index.html").write_text("x")
    r = build(proj, "-o", str(out / "img"), check=False)
    assert r.returncode == 1 and ".wh.index.html" in r.stderr and "deletion" in r.stderr, r.stderr
    os.unlink(proj / "rootfs" / "www" / ".wh.index.html")
    no_partial(out)

    # An unreadable file (for an unprivileged builder): named.
    secret = proj / "rootfs" / "etc" / "secret"
    secret.write_text("x")
    secret.chmod(0)
    out.chmod(0o777)
    try:
        r = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SEED, "image", "build", "web",
                 str(proj), "-o", str(out / "img")])
        assert r.returncode == 1 and "etc/secret" in r.stderr, r.stderr
    finally:
        secret.unlink()
    no_partial(out)

    # The output is something else: refused, left alone.
    (out / "dir").mkdir()
    (out / "dir" / "mine").write_text("keep")
    r = build(proj, "-o", str(out / "dir"), check=False)
    assert r.returncode == 1 and "not an OCI image layout" in r.stderr
    assert (out / "dir" / "mine").read_text() == "keep"
    shutil.rmtree(out / "dir")

    # An image there already is replaced whole.
    first = build_json(proj, "-o", str(out / "img"))
    (proj / "rootfs" / "www" / "index.html").write_text("two\n")
    second = build_json(proj, "-o", str(out / "img"))
    assert first["manifest"] != second["manifest"]
    blobs = set(os.listdir(out / "img" / "blobs" / "sha256"))
    assert blobs == {x["digest"][7:] for x in second["layers"]} | {second["manifest"][7:], second["config"][7:]}
    no_partial(out, keep=["img"])


def test_full_disk():
    """A build that runs out of space fails with ENOSPC and leaves nothing behind."""
    proj = make_project(workdir())
    (proj / "rootfs" / "www" / "big").write_bytes(os.urandom(4 << 20))
    mnt = workdir()
    script = f"""
set -e
mount --make-rprivate /
mount -t tmpfs -o size=2m tmpfs {mnt}
set +e
{SEED} image build web {proj} -o {mnt}/img --format oci-archive
echo "rc=$?"
echo "left=$(ls -A {mnt})"
"""
    r = run(["unshare", "-m", "sh", "-c", script], timeout=120)
    assert "rc=1" in r.stdout, (r.stdout, r.stderr)
    assert "No space left on device" in r.stderr, r.stderr
    assert "left=\n" in r.stdout, r.stdout


def test_layer_cache_never_changes_the_image():
    """A rebuild takes unchanged layers from the layer cache ($XDG_CACHE_HOME/seed/layers)
    instead of writing them again; what it gives is byte for byte what a build without a
    cache gives, also when a file was rewritten with its size and mtime kept (its ctime
    moves: the cache misses)."""
    proj = make_project(workdir())
    out = workdir()
    cache = workdir() / "cache"
    warm = {"XDG_CACHE_HOME": str(cache)}
    a = build_json(proj, "-o", str(out / "a"), env=warm)
    assert list((cache / "seed" / "layers").glob("*.json")), "nothing was cached"
    b = build_json(proj, "-o", str(out / "b"), env=warm)          # every layer from the cache
    assert b["manifest"] == a["manifest"]
    assert sha(out / "b" / "index.json") == sha(out / "a" / "index.json")

    page = proj / "rootfs" / "www" / "index.html"
    st = page.stat()
    page.write_text("X" * st.st_size)                             # same size ...
    os.utime(page, ns=(st.st_atime_ns, st.st_mtime_ns))             # ... and the same mtime
    c = build_json(proj, "-o", str(out / "c"), env=warm)
    cold = build_json(proj, "-o", str(out / "d"), env={"XDG_CACHE_HOME": str(workdir() / "fresh")})
    assert c["manifest"] == cold["manifest"] != a["manifest"]
    changed = [x["holds"] for x, y in zip(a["layers"], c["layers"]) if x["digest"] != y["digest"]]
    assert changed == [["/www"]], changed


def test_built_pushed_pulled_and_run():
    """The whole way: seed image build, seed image push to a registry with TLS and Basic
    auth, then podman pulls it from there and runs it: httpd answers, seed-init is PID 1."""
    need("podman", "podman")
    from registry import PASSWORD, USER, Registry
    proj = make_project(workdir())
    out = workdir()
    build_json(proj, "-o", str(out / "img"))
    with Registry(workdir(), auth="basic") as reg:
        ref = f"{reg.host}/seed/web:1"
        r = run([SEED, "image", "push", str(out / "img"), ref, "--creds", f"{USER}:{PASSWORD}",
                 "--ca-cert", reg.ca, "--json"], timeout=120)
        assert r.returncode == 0, r.stderr
        certs = workdir()
        shutil.copy(reg.ca, certs / "ca.crt")
        w = workdir()
        nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 4096)
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[0], 4096)
        env = dict(os.environ, W=str(w), IMAGE=ref, NOFILE=str(nofile), NPROC=str(nproc),
                   PULL=f"--cert-dir {certs} --creds {USER}:{PASSWORD} docker://{ref}")
        r = run(["unshare", "-m", "sh", "-c", PODMAN_SCRIPT], timeout=300, env=env)
        logs = (w / "logs").read_text() if (w / "logs").exists() else ""
        assert r.returncode == 0, (r.stdout, r.stderr, logs)
        assert (w / "answer").read_text() == "hello\n", (r.stdout, logs)
        assert "pid1=seed-init" in r.stdout
        assert "exit=0" in r.stdout, (r.stdout, logs)
        shutil.rmtree(w / "root", ignore_errors=True)


CRUN_SCRIPT = r"""
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /sys/fs/cgroup/unified
C="crun --root $W/crun"
trap '$C delete -f t >/dev/null 2>&1 || true' EXIT
$C run -d -b $W/bundle t
for i in $(seq 1 100); do
    if $C exec t /bin/busybox wget -qO- http://127.0.0.1:8080/index.html > $W/answer 2>/dev/null; then break; fi
    sleep 0.2
done
echo "pid1=$($C exec t /bin/busybox cat /proc/1/comm)"
$C kill t TERM
for i in $(seq 1 100); do
    [ "$($C state t | sed -n 's/.*"status": "\([a-z]*\)".*/\1/p')" = stopped ] && break
    sleep 0.1
done
echo "state=$($C state t | sed -n 's/.*"status": "\([a-z]*\)".*/\1/p')"
"""


def test_crun_runs_the_unpacked_image():
    """umoci unpacks the image into a runtime bundle and crun runs it: seed-init is PID 1,
    httpd answers, and SIGTERM stops it."""
    need("crun", "crun")
    need("umoci", "umoci")
    proj = make_project(workdir())
    out = workdir()
    build_json(proj, "-o", str(out / "img"))
    w = workdir()
    r = run(["umoci", "unpack", "--image", f"{out / 'img'}:latest", str(w / "bundle")], timeout=120)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((w / "bundle" / "config.json").read_text())
    assert cfg["process"]["args"] == ["/seed/bin/seed-init"], cfg["process"]
    cfg["process"]["terminal"] = False
    # crun gives a new network namespace a loopback that is down, and the bundle keeps
    # no capability to bring it up: the container joins one of the test's own.
    netns = "seedi-" + os.urandom(4).hex()
    assert run(["ip", "netns", "add", netns]).returncode == 0
    try:
        assert run(["ip", "-n", netns, "link", "set", "lo", "up"]).returncode == 0
        for ns in cfg["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = f"/run/netns/{netns}"
        (w / "bundle" / "config.json").write_text(json.dumps(cfg))
        r = run(["unshare", "-m", "sh", "-c", CRUN_SCRIPT], timeout=120, env=dict(os.environ, W=str(w)))
    finally:
        run(["ip", "netns", "del", netns])
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert (w / "answer").read_text() == "hello\n", (r.stdout, r.stderr)
    assert "pid1=seed-init" in r.stdout and "state=stopped" in r.stdout, r.stdout
