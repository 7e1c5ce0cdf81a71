"""seed image push / inspect against a real registry (Debian's docker-registry, see
registry.py), with skopeo as the oracle: what we push, skopeo pulls with the same
digests. Input images are made with umoci and skopeo (standard OCI layouts/archives)."""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from registry import PASSWORD, USER, HangingServer, Registry
from seedtest import SEED

pytestmark = pytest.mark.skipif(not (shutil.which("docker-registry") and shutil.which("skopeo")
                                     and shutil.which("umoci")),
                                reason="needs docker-registry, skopeo and umoci (scripts/deps.sh)")

CREDS = f"{USER}:{PASSWORD}"


def seed(*args, env=None, timeout=120):
    e = dict(os.environ)
    e.update(env or {})
    with tempfile.TemporaryDirectory() as cache:
        if "XDG_CACHE_HOME" not in (env or {}):
            e["XDG_CACHE_HOME"] = cache  # a fresh mount cache: tests opt in to mounts
        return subprocess.run([SEED, "image", *args], capture_output=True, text=True, timeout=timeout, env=e)


def push_json(*args, **kw):
    p = seed("push", *args, "--json", **kw)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def make_image(tmp, layers, name="L", tag="t", config=()):
    """An OCI layout tmp/name with one layer per dict {path: bytes} (umoci), tagged tag."""
    layout = os.path.join(tmp, name)
    if not os.path.exists(layout):
        run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", f"{layout}:{tag}")
    for i, files in enumerate(layers):
        d = os.path.join(tmp, f"{name}-{tag}-layer{i}")
        shutil.rmtree(d, ignore_errors=True)
        for p, data in files.items():
            os.makedirs(os.path.dirname(os.path.join(d, p)), exist_ok=True)
            with open(os.path.join(d, p), "wb") as f:
                f.write(data)
            os.utime(os.path.join(d, p), (1, 1))
        os.utime(d, (1, 1))
        run("umoci", "insert", "--image", f"{layout}:{tag}", d, "/")
    if config:
        run("umoci", "config", "--image", f"{layout}:{tag}", *config)
    return layout


def layout_manifest_digest(layout, tag="t"):
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)
    for m in idx["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return m["digest"]
    raise KeyError(tag)


def skopeo_raw_digest(reg, ref):
    raw = subprocess.run(["skopeo", "inspect", "--raw", *reg.skopeo_args(), f"docker://{reg.host}/{ref}"],
                         capture_output=True)
    assert raw.returncode == 0, raw.stderr
    return "sha256:" + hashlib.sha256(raw.stdout).hexdigest()


@pytest.fixture
def tmp(tmp_path):
    return str(tmp_path)


@pytest.fixture
def basic_reg(tmp):
    with Registry(tmp, auth="basic") as r:
        yield r


def test_push_then_skopeo_pulls_same_digests(tmp, basic_reg):
    layout = make_image(tmp, [{"etc/a": b"one\n"}, {"app/b": os.urandom(3000)}])
    want = layout_manifest_digest(layout)
    out = push_json(f"{layout}:t", f"{basic_reg.host}/seed/app:v1", "--creds", CREDS, "--ca-cert", basic_reg.ca)
    assert out["digest"] == want
    assert out["ref"] == f"{basic_reg.host}/seed/app:v1"
    assert len(out["uploaded"]) == 3 and out["skipped"] == [] and out["mounted"] == []
    assert skopeo_raw_digest(basic_reg, "seed/app:v1") == want
    # skopeo copies it back out; the blobs and manifest are byte-identical
    dst = os.path.join(tmp, "pulled")
    run("skopeo", "copy", *basic_reg.skopeo_src_args(),
        f"docker://{basic_reg.host}/seed/app:v1", f"oci:{dst}:t")
    assert layout_manifest_digest(dst) == want
    # inspect, remote and local, agree
    p = seed("inspect", f"{basic_reg.host}/seed/app:v1", "--json", "--creds", CREDS, "--ca-cert", basic_reg.ca)
    assert p.returncode == 0, p.stderr
    remote = json.loads(p.stdout)
    p = seed("inspect", f"{layout}:t", "--json")
    assert p.returncode == 0, p.stderr
    local = json.loads(p.stdout)
    assert remote["digest"] == local["digest"] == want
    assert remote["layers"] == local["layers"] and len(local["layers"]) == 2
    assert remote["config"] == local["config"]


def test_unchanged_push_uploads_nothing_and_one_changed_layer_one_blob(tmp, basic_reg):
    base = {"usr/lib/big": os.urandom(20000)}
    make_image(tmp, [base, {"app/file": b"version 1\n"}], tag="v1")
    layout = make_image(tmp, [base, {"app/file": b"version 2\n"}], tag="v2")
    args = ["--creds", CREDS, "--ca-cert", basic_reg.ca]
    first = push_json(f"{layout}:v1", f"{basic_reg.host}/app:latest", *args)
    assert len(first["uploaded"]) == 3
    n = basic_reg.upload_count("app")
    assert n == 3
    again = push_json(f"{layout}:v1", f"{basic_reg.host}/app:latest", *args)
    assert again["uploaded"] == [] and sorted(again["skipped"]) == sorted(first["uploaded"])
    assert basic_reg.upload_count("app") == n
    changed = push_json(f"{layout}:v2", f"{basic_reg.host}/app:latest", *args)
    with open(os.path.join(layout, "blobs", "sha256", layout_manifest_digest(layout, "v2")[7:])) as f:
        man = json.load(f)
    # the changed layer and the configuration (its diff_ids name the layers) go up; nothing else
    assert sorted(changed["uploaded"]) == sorted([man["layers"][1]["digest"], man["config"]["digest"]])
    assert changed["skipped"] == [man["layers"][0]["digest"]]
    assert basic_reg.upload_count("app") == n + 2
    assert skopeo_raw_digest(basic_reg, "app:latest") == changed["digest"]


def test_mount_from_another_repository(tmp, basic_reg):
    layout = make_image(tmp, [{"a": b"x" * 5000}])
    env = {"XDG_CACHE_HOME": os.path.join(tmp, "cache")}
    args = ["--creds", CREDS, "--ca-cert", basic_reg.ca]
    push_json(f"{layout}:t", f"{basic_reg.host}/one/app:t", *args, env=env)
    out = push_json(f"{layout}:t", f"{basic_reg.host}/two/app:t", *args, env=env)
    assert out["uploaded"] == [] and len(out["mounted"]) == 2
    assert basic_reg.mount_count("two/app") == 2 and basic_reg.upload_count("two/app") == 0
    assert skopeo_raw_digest(basic_reg, "two/app:t") == out["digest"]


def test_chunked_upload(tmp, basic_reg):
    layout = make_image(tmp, [{"blob": os.urandom(50000)}])
    out = push_json(f"{layout}:t", f"{basic_reg.host}/chunky:t", "--creds", CREDS, "--ca-cert", basic_reg.ca,
                    "--chunk-size", "8K")
    assert skopeo_raw_digest(basic_reg, "chunky:t") == out["digest"]
    assert basic_reg.log_text().count('"PATCH /v2/chunky/blobs/uploads/') >= 3
    dst = os.path.join(tmp, "pulled")
    run("skopeo", "copy", *basic_reg.skopeo_src_args(),
        f"docker://{basic_reg.host}/chunky:t", f"oci:{dst}:t")


def test_authfile_and_registry_auth_file(tmp, basic_reg):
    layout = make_image(tmp, [{"a": b"auth"}])
    af = os.path.join(tmp, "auth.json")
    with open(af, "w") as f:
        json.dump({"auths": {basic_reg.host: {"auth": base64.b64encode(CREDS.encode()).decode()}}}, f)
    push_json(layout, f"{basic_reg.host}/x:t", "--authfile", af, "--ca-cert", basic_reg.ca)
    out = push_json(layout, f"{basic_reg.host}/y:t", "--ca-cert", basic_reg.ca, env={"REGISTRY_AUTH_FILE": af})
    assert len(out["uploaded"]) == 2
    # docker's file under $HOME
    home = os.path.join(tmp, "home")
    os.makedirs(os.path.join(home, ".docker"))
    shutil.copy(af, os.path.join(home, ".docker", "config.json"))
    push_json(layout, f"{basic_reg.host}/z:t", "--ca-cert", basic_reg.ca,
              env={"HOME": home, "XDG_RUNTIME_DIR": os.path.join(tmp, "none")})
    # a broken auth file is an error naming it
    with open(af, "w") as f:
        f.write('{"auths": {"%s": {"auth": "!!!"}}}' % basic_reg.host)
    p = seed("push", layout, f"{basic_reg.host}/x:t", "--authfile", af, "--ca-cert", basic_reg.ca)
    assert p.returncode == 1 and af in p.stderr and "base64" in p.stderr


def test_basic_wrong_and_missing_credentials(tmp, basic_reg):
    layout = make_image(tmp, [{"a": b"nope"}])
    p = seed("push", layout, f"{basic_reg.host}/x:t", "--creds", f"{USER}:wrong", "--ca-cert", basic_reg.ca)
    assert p.returncode == 1
    assert "401" in p.stderr and "credentials were rejected" in p.stderr and basic_reg.host in p.stderr
    assert "pushed" not in p.stdout
    p = seed("push", layout, f"{basic_reg.host}/x:t", "--ca-cert", basic_reg.ca,
             env={"HOME": tmp, "XDG_RUNTIME_DIR": tmp})
    assert p.returncode == 1 and "--creds" in p.stderr and "401" in p.stderr
    assert basic_reg.upload_count() == 0


def test_tls_untrusted_then_ca_cert_then_insecure(tmp, basic_reg):
    layout = make_image(tmp, [{"a": b"tls"}])
    p = seed("push", layout, f"{basic_reg.host}/x:t", "--creds", CREDS)
    assert p.returncode == 1 and "--ca-cert" in p.stderr and "certificate" in p.stderr
    push_json(layout, f"{basic_reg.host}/x:t", "--creds", CREDS, "--insecure")


def test_bearer_token_flow(tmp):
    with Registry(tmp, auth="token") as reg:
        layout = make_image(tmp, [{"a": b"bearer"}, {"b": b"two"}])
        out = push_json(f"{layout}:t", f"{reg.host}/team/app:t", "--creds", CREDS, "--ca-cert", reg.ca)
        assert len(out["uploaded"]) == 3
        # one token for the push scope, cached for all its requests
        assert reg.token.requests == [("alice", ["repository:team/app:pull,push"])]
        assert skopeo_raw_digest(reg, "team/app:t") == out["digest"]
        p = seed("inspect", f"{reg.host}/team/app:t", "--json", "--creds", CREDS, "--ca-cert", reg.ca)
        assert p.returncode == 0 and json.loads(p.stdout)["digest"] == out["digest"]
        p = seed("push", layout, f"{reg.host}/team/app:t", "--creds", f"{USER}:bad", "--ca-cert", reg.ca)
        assert p.returncode == 1 and "token server" in p.stderr and "refused the credentials" in p.stderr
        p = seed("push", layout, f"{reg.host}/team/app:t", "--ca-cert", reg.ca,
                 env={"HOME": tmp, "XDG_RUNTIME_DIR": tmp})
        assert p.returncode == 1 and "anonymous" in p.stderr and "--creds" in p.stderr


def test_unknown_repository_and_tag(tmp, basic_reg):
    p = seed("inspect", f"{basic_reg.host}/no/such:t", "--creds", CREDS, "--ca-cert", basic_reg.ca)
    assert p.returncode == 1 and "404" in p.stderr and "no/such:t" in p.stderr and "not found" in p.stderr


def test_hanging_registry_times_out(tmp):
    layout = make_image(tmp, [{"a": b"hang"}])
    with HangingServer() as h:
        t = time.monotonic()
        p = seed("push", layout, f"{h.host}/x:t", "--timeout", "2", "--insecure", timeout=60)
        took = time.monotonic() - t
    assert p.returncode == 1 and h.host in p.stderr and ("did not answer" in p.stderr), p.stderr
    assert took < 45


class _Status(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_5xx_registry(tmp):
    layout = make_image(tmp, [{"a": b"5xx"}])
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{srv.server_address[1]}"
        p = seed("push", layout, f"{host}/x:t", "--insecure")
        assert p.returncode == 1 and "503" in p.stderr and host in p.stderr
    finally:
        srv.shutdown()
        srv.server_close()


def test_plain_http_registry_needs_insecure(tmp):
    with Registry(tmp, auth=None, tls=False) as reg:
        layout = make_image(tmp, [{"a": b"http"}])
        p = seed("push", layout, f"{reg.host}/x:t")
        assert p.returncode == 1 and "--insecure" in p.stderr
        out = push_json(layout, f"{reg.host}/x:t", "--insecure")
        assert skopeo_raw_digest(reg, "x:t") == out["digest"]


def test_tampered_layer_is_refused_and_nothing_tagged(tmp, basic_reg):
    layout = make_image(tmp, [{"a": os.urandom(4000)}])
    with open(os.path.join(layout, "blobs", "sha256", layout_manifest_digest(layout)[7:])) as f:
        layer = json.load(f)["layers"][0]["digest"]
    path = os.path.join(layout, "blobs", "sha256", layer[7:])
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xFF]))
    for chunk in ("0", "1K"):
        p = seed("push", layout, f"{basic_reg.host}/tampered:t", "--creds", CREDS, "--ca-cert", basic_reg.ca,
                 "--chunk-size", chunk)
        assert p.returncode == 1, p.stdout
        assert layer in p.stderr and "corrupt" in p.stderr and layout in p.stderr
        assert "nothing was tagged" in p.stderr and p.stdout == ""
    assert basic_reg.upload_count("tampered") == 0
    r = subprocess.run(["skopeo", "inspect", "--raw", *basic_reg.skopeo_args(),
                        f"docker://{basic_reg.host}/tampered:t"], capture_output=True, text=True)
    assert r.returncode != 0
    # a tampered configuration or manifest is found before any request
    p = seed("inspect", layout)
    assert p.returncode == 0
    man = os.path.join(layout, "blobs", "sha256", layout_manifest_digest(layout)[7:])
    os.chmod(man, 0o644)
    with open(man, "a") as f:
        f.write(" ")
    p = seed("inspect", layout)
    assert p.returncode == 1 and "corrupt" in p.stderr and layout_manifest_digest(layout) in p.stderr


def test_archives(tmp, basic_reg):
    layout = make_image(tmp, [{"a": b"archive"}, {"b": os.urandom(1000)}])
    oa, da = os.path.join(tmp, "img.oci.tar"), os.path.join(tmp, "img.docker.tar")
    run("skopeo", "copy", f"oci:{layout}:t", f"oci-archive:{oa}:t")
    run("skopeo", "copy", f"oci:{layout}:t", f"docker-archive:{da}:seed/app:t")
    args = ["--creds", CREDS, "--ca-cert", basic_reg.ca]
    out = push_json(oa, f"{basic_reg.host}/oa:t", *args)
    assert out["digest"] == layout_manifest_digest(layout)
    assert skopeo_raw_digest(basic_reg, "oa:t") == out["digest"]
    out = push_json(da, f"{basic_reg.host}/da:t", *args)
    assert skopeo_raw_digest(basic_reg, "da:t") == out["digest"]
    dst = os.path.join(tmp, "from-docker")
    run("skopeo", "copy", *basic_reg.skopeo_src_args(),
        f"docker://{basic_reg.host}/da:t", f"oci:{dst}:t")
    for src in (oa, da):
        p = seed("inspect", src, "--json")
        assert p.returncode == 0, p.stderr
        assert len(json.loads(p.stdout)["layers"]) == 2


def test_inspect_local_config(tmp):
    layout = make_image(tmp, [{"a": b"cfg"}], config=[
        "--config.entrypoint", "/seed/bin/seed-init", "--config.env", "A=1", "--config.exposedports", "8080/tcp",
        "--config.volume", "/data", "--config.label", "org.opencontainers.image.title=web"])
    p = seed("inspect", layout, "--json")
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    c = j["config"]
    assert c["entrypoint"] == ["/seed/bin/seed-init"] and "A=1" in c["env"]
    assert c["exposedPorts"] == ["8080/tcp"] and c["volumes"] == ["/data"]
    assert c["labels"] == {"org.opencontainers.image.title": "web"}
    assert j["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    p = seed("inspect", layout)
    assert p.returncode == 0 and "8080/tcp" in p.stdout and j["digest"] in p.stdout


def test_usage_errors(tmp):
    p = seed("push", "only-one")
    assert p.returncode == 2 and "expected SRC and REF" in p.stderr
    p = seed("push", tmp, "Bad Ref")
    assert p.returncode == 2
    p = seed("push", "--creds", "a:b", "--authfile", "f", "x", "y")
    assert p.returncode == 2 and "exclude" in p.stderr
    p = seed("push", "--help")
    assert p.returncode == 0 and "Usage: seed image push" in p.stdout
    p = seed("push", os.path.join(tmp, "missing"), "127.0.0.1:1/x:t")
    assert p.returncode == 1 and "no image at" in p.stderr
