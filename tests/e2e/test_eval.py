"""`seed eval` driven as a user would: example projects, the README's Seed examples,
namespaces from URIs, exit codes, output formats, and usage errors."""
import json
import os
import shutil

import pytest

from conftest import EXAMPLES, run


def eval_json(seed, *args, cwd=None):
    r = run([seed, "eval", *args, "--json"], cwd=cwd)
    assert r.returncode == 0, r.stderr + r.stdout
    return json.loads(r.stdout)


def test_hello_is_valid(seed):
    r = run([seed, "eval", str(EXAMPLES / "hello")])
    assert r.returncode == 0, r.stderr
    assert "web" in r.stdout and "api" in r.stdout
    assert "namespace s-" in r.stdout and "generation" in r.stdout


def test_hello_meta(seed):
    meta = eval_json(seed, str(EXAMPLES / "hello"))
    assert sorted(meta) == ["api", "web"]
    web = meta["web"]
    assert web["name"] == "web"
    assert web["size"] == "xs"
    assert web["resources"] == {"vcpus": 1, "memory": 512}
    assert web["expose"] == {"http": {"port": 8080, "protocol": "http"}}
    assert web["storage"] == {
        "data": {"size": "64Mi", "sizeBytes": 64 << 20, "mountPoint": "/seed/storage/data"}
    }
    assert meta["api"]["connect"] == {"web": {"service": "seed-web", "port": 8080}}
    assert web["namespace"] == meta["api"]["namespace"]
    assert len(web["identity"]) == 64
    assert web["root"] == "host"
    assert web["toplevel"] is None
    assert web["processes"]["httpd"]["restart"] == "always"


def test_seed_readme_examples(seed):
    """The project that mirrors every example of Seed's README evaluates to the meta
    Seed's module would give (coercions and defaults included)."""
    meta = eval_json(seed, str(EXAMPLES / "seed-readme"))
    assert sorted(meta) == ["api", "db", "dns", "web", "worker"]
    web = meta["web"]
    assert web["size"] == "s" and web["resources"] == {"vcpus": 1, "memory": 1024}
    assert web["expose"]["http"] == {"port": 8080, "protocol": "http"}
    assert web["storage"]["data"] == {
        "size": "1Gi", "sizeBytes": 1073741824, "mountPoint": "/seed/storage/data"}
    assert web["rollout"] == "recreate" and web["shoot"] == {"enable": False, "max": 4}
    dns = meta["dns"]["expose"]
    assert dns == {"dns": {"port": 53, "protocol": "dns"}, "grpc": {"port": 9090, "protocol": "grpc"}}
    w = meta["worker"]
    assert w["storage"]["cache"] == {
        "size": "500Mi", "sizeBytes": 500 << 20, "mountPoint": "/tmp/cache"}
    assert w["connect"] == {"redis": {"service": "my-redis", "port": None},
                            "db": {"service": "postgres", "port": 5432}}
    assert w["rollout"] == "rolling" and w["shoot"] == {"enable": True, "max": 4}
    assert w["resources"] == {"vcpus": 2, "memory": 2048}
    assert meta["api"]["connect"] == {"db": {"service": "seed-db", "port": None}}
    assert meta["db"]["resources"] == {"vcpus": 4, "memory": 4096}
    assert meta["db"]["storage"]["data"]["mountPoint"] == "/var/lib/postgresql"


def test_shoot_max(seed, tmp_path):
    """shoot.max: how many shoots of an instance run at once (default 4, 1..256), in
    the table and the meta; out of range is an error at its option path."""
    (tmp_path / "seeds.json").write_text(json.dumps({
        "a": {"shoot": {"enable": True, "max": 16}}, "b": {"shoot": {"enable": True}}, "c": {}}))
    r = run([seed, "eval", str(tmp_path)])
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:4]}
    assert rows["a"].endswith("yes (max 16)") and rows["b"].endswith("yes (max 4)") and rows["c"].endswith("no")
    meta = eval_json(seed, str(tmp_path))
    assert meta["a"]["shoot"] == {"enable": True, "max": 16}
    assert meta["c"]["shoot"] == {"enable": False, "max": 4}
    for bad, needle in ((0, "shoot.max 0 is out of range: expected an integer from 1 to 256"),
                        (257, "from 1 to 256"), ("4", "expected how many shoots may run at once")):
        (tmp_path / "seeds.json").write_text(json.dumps({"a": {"shoot": {"enable": True, "max": bad}}}))
        r = run([seed, "eval", str(tmp_path)])
        assert r.returncode == 1 and "seeds.json: a.shoot.max: " in r.stderr and needle in r.stderr, r.stderr


@pytest.mark.parametrize("uri,ns", [
    ("github:loomtex/seed", "s-gaydazldmnsg"),
    ("github:example/infra", "s-gjstmojyha4t"),
])
def test_namespace_from_uri(seed, uri, ns):
    meta = eval_json(seed, str(EXAMPLES / "hello"), "--uri", uri)
    assert {m["namespace"] for m in meta.values()} == {ns}


def test_default_uri_is_path_of_directory(seed, tmp_path):
    proj = tmp_path / "proj"
    shutil.copytree(EXAMPLES / "hello", proj)
    a = eval_json(seed, str(proj))
    b = eval_json(seed, "--uri", f"path:{proj}", cwd=proj)   # SOURCE defaults to "."
    assert a == b


def test_identity_stable_across_copies_and_key_order(seed, tmp_path):
    a = eval_json(seed, str(EXAMPLES / "hello"))
    proj = tmp_path / "p"
    proj.mkdir()
    src = json.loads((EXAMPLES / "hello" / "seeds.json").read_text())
    api = json.loads((EXAMPLES / "hello" / "api.json").read_text())
    # reverse every key order, inline api
    rev = lambda d: {k: rev(v) for k, v in reversed(list(d.items()))} if isinstance(d, dict) else d
    (proj / "seeds.json").write_text(json.dumps(rev({"web": src["web"], "api": api})))
    b = eval_json(seed, str(proj))
    assert a["web"]["identity"] == b["web"]["identity"]
    assert a["api"]["identity"] == b["api"]["identity"]


def test_generation_changes_with_content(seed, tmp_path):
    (tmp_path / "seeds.json").write_text('{"a": {"size": "s"}}')
    r1 = run([seed, "eval", str(tmp_path)])
    (tmp_path / "seeds.json").write_text('{"a": {"size": "m"}}')
    r2 = run([seed, "eval", str(tmp_path)])
    (tmp_path / "seeds.json").write_text('{"a": {}}')
    r3 = run([seed, "eval", str(tmp_path)])
    gen = lambda r: r.stdout.split("generation ")[1].strip()
    assert gen(r1) != gen(r2)
    assert gen(r1) == gen(r3)   # "s" is the default


def test_empty_project(seed, tmp_path):
    (tmp_path / "seeds.json").write_text("{}")
    r = run([seed, "eval", str(tmp_path)])
    assert r.returncode == 0
    assert "generation e3b0c44298fc" in r.stdout
    assert eval_json(seed, str(tmp_path)) == {}


def test_source_may_be_the_seeds_json_file(seed):
    a = eval_json(seed, str(EXAMPLES / "hello"))
    b = eval_json(seed, str(EXAMPLES / "hello" / "seeds.json"))
    assert a == b


@pytest.mark.parametrize("args,needle", [
    (["--bogus"], "unknown option"),
    (["a", "b"], "at most one SOURCE"),
    (["--uri"], "needs an argument"),
    (["--uri", ""], "non-empty"),
])
def test_usage_errors_exit_2(seed, args, needle):
    r = run([seed, "eval", *args])
    assert r.returncode == 2
    assert needle in r.stderr


def test_cli_usage(seed):
    assert run([seed]).returncode == 2
    assert run([seed, "nonsense"]).returncode == 2
    assert run([seed, "--help"]).returncode == 0
    assert run([seed, "eval", "--help"]).returncode == 0
    r = run([seed, "version"])
    assert r.returncode == 0 and r.stdout.startswith("seed ")


def test_missing_project(seed, tmp_path):
    r = run([seed, "eval", str(tmp_path)])
    assert r.returncode == 1
    assert "seeds.json: missing" in r.stderr
    r = run([seed, "eval", str(tmp_path / "nope")])
    assert r.returncode == 1
    assert "cannot be opened" in r.stderr


def test_error_output_formats(seed, tmp_path):
    (tmp_path / "seeds.json").write_text('{"web": {"expose": {"http": 70000}, "sise": "s"}}')
    r = run([seed, "eval", str(tmp_path)])
    assert r.returncode == 1
    assert r.stdout == ""
    assert "has 2 errors" in r.stderr
    assert "seeds.json: web.expose.http.port: port 70000 is out of range" in r.stderr
    r = run([seed, "eval", str(tmp_path), "--json"])
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["count"] == 2
    assert {e["path"] for e in out["errors"]} == {"web.expose.http.port", "web.sise"}
    assert all(e["file"] == "seeds.json" for e in out["errors"])


def test_huge_project_is_bounded(seed, tmp_path):
    """A 16 MiB+ file is refused quickly instead of being parsed."""
    with open(tmp_path / "seeds.json", "wb") as f:
        f.write(b'{"a": "' + b"x" * (17 << 20) + b'"}')
    r = run([seed, "eval", str(tmp_path)], timeout=10)
    assert r.returncode == 1
    assert "larger than 16 MiB" in r.stderr


def test_unreadable_is_not_a_crash(seed, tmp_path):
    (tmp_path / "seeds.json").mkdir()
    r = run([seed, "eval", str(tmp_path)])
    assert r.returncode == 1
    assert "seeds.json" in r.stderr


@pytest.mark.parametrize("depth,ok", [(128, True), (129, False)])
def test_deep_root_is_bounded(seed, tmp_path, depth, ok):
    """A root nested 128 directories deep is hashed (each level holds a file); one
    level more is refused with a message, never a crash."""
    root = tmp_path / "root"
    d = root
    for i in range(depth):
        d = d / "d"
        d.mkdir(parents=True)
        (d / "f").write_text(str(i))
    (tmp_path / "seeds.json").write_text('{"a": {"root": "root"}}')
    r = run([seed, "eval", str(tmp_path)])
    if ok:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode == 1, r.stderr
        assert "a.root" in r.stderr and "deeper than 128 levels" in r.stderr


def test_errors_quoting_long_or_odd_text_stay_valid_utf8(seed, tmp_path):
    """Quoted keys and values are cut to a length, never inside a character; a name
    from disk that is not UTF-8 is repaired: every error reaches the JSON output."""
    key = "ab" + "\u00e9" * 100
    (tmp_path / "seeds.json").write_text(
        json.dumps({"web": {key: 1, "size": "a" + "\u00e9" * 60, "root": "root"}}, ensure_ascii=False))
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(os.path.join(bytes(root), b"pipe-\xff"))
    r = run([seed, "eval", str(tmp_path), "--json"])
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["count"] == 3 and len(out["errors"]) == 3, out
    paths = sorted(e["path"] for e in out["errors"])
    assert paths[0].startswith('web."ab\u00e9') and paths[0].endswith('..."'), paths
    assert any("FIFO" in e["message"] and "pipe-\ufffd" in e["message"] for e in out["errors"]), out


def test_health_and_rollout_timeout(seed, tmp_path):
    """health (an http or command check) and rolloutTimeout are in the meta, durations
    as milliseconds; an instance without them shows the defaults (health null)."""
    (tmp_path / "seeds.json").write_text(json.dumps({
        "web": {"expose": {"http": 8080}, "rollout": "rolling", "rolloutTimeout": "2m",
                "health": {"http": "/healthz", "port": 8080, "interval": "500ms"}},
        "db": {"health": {"command": ["pg_isready", "-q"], "timeout": 5, "retries": 10}},
        "plain": {}}))
    meta = eval_json(seed, str(tmp_path))
    web = meta["web"]
    assert web["health"] == {"http": "/healthz", "port": 8080, "intervalMs": 500, "timeoutMs": 2000,
                             "retries": 3}
    assert web["rolloutTimeoutMs"] == 120000
    assert meta["db"]["health"] == {"command": ["pg_isready", "-q"], "intervalMs": 5000,
                                    "timeoutMs": 5000, "retries": 10}
    assert meta["db"]["rolloutTimeoutMs"] == 60000
    assert meta["plain"]["health"] is None and meta["plain"]["rolloutTimeoutMs"] == 60000
    # New fields sit next to rollout; the existing order is kept.
    keys = list(web)
    assert keys[keys.index("rollout"):keys.index("rollout") + 4] == [
        "rollout", "rolloutTimeoutMs", "health", "shoot"]


def test_health_errors_name_their_option(seed, tmp_path):
    """A bad health check or rollout timeout changes nothing: eval exits 1 and every
    error names its option path and what was expected."""
    (tmp_path / "seeds.json").write_text(json.dumps({
        "web": {"expose": {"http": 8080}, "rolloutTimeout": "2 minutes",
                "health": {"http": "healthz", "port": 9090, "interval": "10ms", "retries": 0}},
        "db": {"health": {"command": ["x"], "http": "/"}}}))
    r = run([seed, "eval", str(tmp_path), "--json"])
    assert r.returncode == 1, r.stdout + r.stderr
    errors = {e["path"]: e["message"] for e in json.loads(r.stdout)["errors"]}
    assert "must start with '/'" in errors["web.health.http"]
    assert "expected one of 8080 (http)" in errors["web.health.port"]
    assert "expected from 100ms to 1h" in errors["web.health.interval"]
    assert "expected an integer from 1 to 100" in errors["web.health.retries"]
    assert "malformed duration" in errors["web.rolloutTimeout"]
    assert "exactly one kind of check" in errors["db.health"]
    assert len(errors) == 6


def test_identity_ignores_absent_health(seed, tmp_path):
    """Identities of instances without health/rolloutTimeout are the ones seed gave
    before these options existed (an upgrade rolls nothing out); adding a check
    changes that instance's identity, and only that one's."""
    project = {"w": {"system": "x86_64-linux"}, "b": {"system": "x86_64-linux", "expose": {"h": 80}}}
    (tmp_path / "seeds.json").write_text(json.dumps(project))
    before = eval_json(seed, str(tmp_path))
    assert before["w"]["identity"] == "da41ca2d54000b5e2d629691cf0282b7ff298f2f15154754fd21803431db2262"
    project["b"]["health"] = {"http": "/", "port": 80}
    (tmp_path / "seeds.json").write_text(json.dumps(project))
    after = eval_json(seed, str(tmp_path))
    assert after["w"]["identity"] == before["w"]["identity"]
    assert after["b"]["identity"] != before["b"]["identity"]
