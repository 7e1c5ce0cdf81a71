"""Flakes as seed projects (issue 12, items 1 and 2): the seed flake (nix/, seed.lib.mkSeed
in plain Nix) and `seed eval`/`seed up`/`seed apply` on a directory with a flake.nix or a
flake reference, evaluated by Debian's nix-bin (Nix 2.8, flakes offline) in one `nix
eval` for the whole project.

Oracles: the JSON twin of each project through the C parser (`seed eval` of seeds.json),
and Nix itself (`nix eval .#seeds.<name>.meta --json`, Seed's fast feedback loop)."""
import json
import os
import pathlib
import shutil
import subprocess
import time

import pytest

from conftest import ROOT, EXAMPLES, run
from seedtest import SEED, make_rootfs, nix_busybox, nix_store_forget, nix_store_paths, workdir, git

LIB = ROOT / "nix"
NIX = ["nix", "--extra-experimental-features", "nix-command flakes"]
CORPUS = pathlib.Path(__file__).parent / "broken"


@pytest.fixture(autouse=True, scope="module")
def _nix():
    if not shutil.which("nix"):
        r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "nix-bin"],
                           timeout=600, capture_output=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if r.returncode != 0:
            pytest.skip("nix is not installed (Debian's nix-bin) and could not be installed")
    # Evaluating a path: flake copies it (and the seed library) into the store: what
    # this module added goes again at its end.
    before = nix_store_paths()
    yield
    nix_store_forget(before)


def nix_lit(v, indent=""):
    """A JSON value as a Nix expression."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, str):
        return json.dumps(v).replace("${", "\\${")
    if isinstance(v, list):
        return "[ " + " ".join(nix_lit(x, indent) for x in v) + " ]"
    inner = indent + "  "
    return "{\n" + "".join(f"{inner}{json.dumps(k)} = {nix_lit(x, inner)};\n" for k, x in v.items()) + indent + "}"


def write_flake(d, instances, uri=None, modules=None):
    """A flake with seeds.<name> = mkSeed { name; module = ./<name>.nix; } whose module sets
    seed = <the instance's JSON>; modules: {name: Nix text} replacing a module."""
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, spec in instances.items():
        text = (modules or {}).get(name) or "{ lib, ... }: {\n  seed = " + nix_lit(spec, "  ") + ";\n}\n"
        (d / f"{name}.nix").write_text(text)
        extra = f" uri = {json.dumps(uri)};" if uri else ""
        lines.append(f"    seeds.{json.dumps(name)} = seed.lib.mkSeed {{ name = {json.dumps(name)}; "
                     f"module = ./{name}.nix;{extra} }};")
    (d / "flake.nix").write_text("{\n  inputs.seed.url = \"path:" + str(LIB) + "\";\n"
                                 "  outputs = { seed, ... }: {\n" + "\n".join(lines) + "\n  };\n}\n")
    return d


def resolved(proj):
    """seeds.json with instance files read in."""
    top = json.loads((proj / "seeds.json").read_text())
    return {n: json.loads((proj / v).read_text()) if isinstance(v, str) else v for n, v in top.items()}


def seed_eval(src, *args, env=None, timeout=120):
    return subprocess.run([SEED, "eval", str(src), "--json", *args], timeout=timeout, capture_output=True,
                          text=True, env=dict(os.environ, **(env or {})))


def nix_meta(d, name):
    r = run([*NIX, "eval", "--json", "--no-write-lock-file", f"path:{d}#seeds.{name}.meta"], timeout=120)
    return r


def test_readme_examples_as_a_flake_give_the_same_meta():
    """Seed's README examples (examples/seed-readme) as a flake: `seed eval --json` prints
    the same meta as for the seeds.json twin, and `nix eval .#seeds.<name>.meta --json` is
    that same object, identity and namespace included."""
    uri = "github:loomtex/seed"
    spec = resolved(EXAMPLES / "seed-readme")
    d = write_flake(workdir() / "flake", spec, uri=uri)
    twin = seed_eval(EXAMPLES / "seed-readme", "--uri", uri)
    got = seed_eval(d, "--uri", uri)
    assert twin.returncode == 0 and got.returncode == 0, got.stderr
    want = json.loads(twin.stdout)
    assert json.loads(got.stdout) == want
    assert want["web"]["namespace"] == "s-gaydazldmnsg"  # Seed's formula, Seed's example
    for name in spec:
        r = nix_meta(d, name)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == want[name], name


def test_flake_references_and_their_namespace():
    """path: and git+file: references evaluate as the directory does; the namespace comes
    from the reference with Seed's formula (seed eval --uri of the same text agrees)."""
    spec = {"web": {"size": "m", "expose": {"http": 8080}}}
    d = write_flake(workdir() / "flake", spec)
    git("init", "-q", cwd=d)
    git("add", ".", cwd=d)
    git("commit", "-qm", "flake", cwd=d)
    plain = json.loads(seed_eval(d).stdout)
    for ref in [f"path:{d}", f"git+file://{d}"]:
        r = seed_eval(ref)
        assert r.returncode == 0, (ref, r.stderr)
        got = json.loads(r.stdout)
        assert got["web"]["identity"] == plain["web"]["identity"]
        twin = json.loads(seed_eval(d, "--uri", ref).stdout)
        assert got["web"]["namespace"] == twin["web"]["namespace"], ref
    assert json.loads(seed_eval(f"path:{d}").stdout)["web"]["namespace"] == plain["web"]["namespace"]


def test_modules_merge_as_nixos_modules_do():
    """imports, functions of config, lib.mkDefault/mkForce/mkIf/mkMerge, lists of modules,
    options seed does not read (services.*) left alone; a conflict names both files."""
    d = workdir() / "flake"
    d.mkdir()
    (d / "base.nix").write_text("""{ lib, ... }: {
  seed.size = lib.mkDefault "xs";
  seed.expose.http = 8080;
  seed.storage.data = "1Gi";
  services.nginx.enable = true;
}
""")
    (d / "web.nix").write_text("""{ config, lib, name, ... }: {
  imports = [ ./base.nix ];
  seed.size = "m";
  seed.env.GREETING = "hello from ${name} on ${toString config.seed.expose.http}";
  seed.storage.data = lib.mkForce "2Gi";
  seed.connect = lib.mkMerge [ { db = "seed-db"; } (lib.mkIf (config.seed.size == "m") { cache = "seed-cache"; }) ];
  seed.shoot.enable = lib.mkIf false true;
}
""")
    (d / "clash.nix").write_text("{ seed.rollout = \"rolling\"; }\n")
    (d / "flake.nix").write_text(f"""{{
  inputs.seed.url = "path:{LIB}";
  outputs = {{ seed, ... }}: {{
    seeds.web = seed.lib.mkSeed {{ name = "web"; module = ./web.nix; }};
    seeds.two = seed.lib.mkSeed {{ name = "two"; modules = [ ./clash.nix {{ seed.rollout = "recreate"; }} ]; }};
  }};
}}
""")
    r = seed_eval(d)
    assert r.returncode == 1
    errors = json.loads(r.stdout)["errors"]
    assert len(errors) == 1 and "seed.rollout has conflicting definitions" in errors[0]["message"], errors
    assert "clash.nix" in errors[0]["message"]

    (d / "clash.nix").write_text("{ lib, ... }: { seed.rollout = lib.mkForce \"rolling\"; }\n")
    r = seed_eval(d)
    assert r.returncode == 0, r.stdout
    meta = json.loads(r.stdout)
    web = meta["web"]
    assert web["size"] == "m" and web["resources"] == {"vcpus": 2, "memory": 2048}
    assert web["env"] == {"GREETING": "hello from web on 8080"}
    assert web["storage"]["data"]["size"] == "2Gi"
    assert web["connect"] == {"cache": {"service": "seed-cache", "port": None},
                              "db": {"service": "seed-db", "port": None}}
    assert web["shoot"]["enable"] is False
    assert meta["two"]["rollout"] == "rolling"
    r = nix_meta(d, "web")
    assert r.returncode == 0, r.stderr
    assert {k: v for k, v in json.loads(r.stdout).items() if k != "namespace"} == \
        {k: v for k, v in web.items() if k != "namespace"}


# ---- the broken corpus, as flakes ----

def convertible(case):
    """Cases whose errors are all about options of instances (not JSON syntax, files,
    directories or the project as a whole)."""
    if case in {"roots", "host-port-clash", "instance-names", "files-outside", "instance-file-errors",
                "duplicate-keys", "duplicate-keys-in-file", "invalid-utf8", "not-an-object",
                "missing-seeds-json", "deep-nesting"}:
        return False
    try:
        spec = resolved(CORPUS / case)
    except (ValueError, OSError):
        return False
    return all(isinstance(v, dict) for v in spec.values())


CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expect.json").exists() and convertible(p.name))


@pytest.mark.parametrize("case", CASES)
def test_broken_corpus_as_flakes_reports_the_same_option_paths(case):
    """seed eval of the flake reports exactly the JSON twin's option paths with the same
    messages; nix eval of each instance's meta reports the same paths (seed.X for
    <name>.X), every error at once."""
    spec = resolved(CORPUS / case)
    expect = json.loads((CORPUS / case / "expect.json").read_text())
    d = write_flake(workdir() / "flake", spec)
    r = seed_eval(d)
    assert r.returncode == 1, r.stdout
    got = {(e["path"], e["message"]) for e in json.loads(r.stdout)["errors"]}
    twin = json.loads(seed_eval(CORPUS / case).stdout)["errors"]
    assert got == {(e["path"], e["message"]) for e in twin}
    assert {p for p, _ in got} == {e["path"] for e in expect["errors"]}
    for name in spec:
        want = sorted(e["path"] for e in twin if e["path"] == name or e["path"].startswith(name + "."))
        r = nix_meta(d, name)
        if not want:
            assert r.returncode == 0, r.stderr
            continue
        assert r.returncode == 1
        paths = sorted(line.strip().split(": ", 1)[0].replace("seed", name, 1)
                       for line in r.stderr.splitlines() if line.strip().startswith("seed"))
        assert paths == want, r.stderr
        for e in twin:
            if e["path"] in want:
                assert e["message"] in r.stderr, (e, r.stderr)


# ---- Nix's own errors, and the evaluator's limits ----

def test_nix_errors_come_back_with_their_position():
    d = write_flake(workdir() / "flake", {"web": {}}, modules={"web": "{ lib, ... }: { seed.size = \"s\" }\n"})
    r = seed_eval(d)
    assert r.returncode == 1
    e = json.loads(r.stdout)["errors"]
    assert len(e) == 1 and e[0]["file"] == "web.nix", e
    assert "syntax error" in e[0]["message"] and f"{d}/web.nix:1:" in e[0]["message"], e

    (d / "web.nix").write_text("{ seed.size = builtins.abort \"not today\"; }\n")
    e = json.loads(seed_eval(d).stdout)["errors"]
    assert "not today" in e[0]["message"], e

    (d / "web.nix").write_text("{ config, ... }: { seed.size = config.seed.size; }\n")
    e = json.loads(seed_eval(d).stdout)["errors"]
    assert "infinite recursion" in e[0]["message"], e
    # Nix places it in the library's code (the seed input), which is not a file of the project.
    assert e[0]["file"] == "flake.nix" and str(d) not in e[0]["message"], e

    (d / "web.nix").write_text("{ pkgs, ... }: { seed.env.X = pkgs.hello; }\n")
    e = json.loads(seed_eval(d).stdout)["errors"]
    assert "mkSeed was given none" in e[0]["message"], e

    # A text output in the human form too.
    r = run([SEED, "eval", str(d)])
    assert r.returncode == 1 and "has 1 error" in r.stderr and "pkgs" in r.stderr


def test_unfetchable_inputs_memory_and_time_are_bounded():
    d = write_flake(workdir() / "flake", {"web": {}})
    text = (d / "flake.nix").read_text()
    (d / "flake.nix").write_text(text.replace("inputs.seed.url", "inputs.other.url = \"github:nobody/nothing\";\n  inputs.seed.url"))
    t = time.monotonic()
    r = seed_eval(d, env={"SEED_NIX_EVAL_TIMEOUT": "60"})
    assert r.returncode == 1
    e = json.loads(r.stdout)["errors"]
    assert len(e) == 1 and ("github" in e[0]["message"] or "nobody/nothing" in e[0]["message"]), e
    assert time.monotonic() - t < 90

    (d / "flake.nix").write_text(text)
    (d / "web.nix").write_text("{ seed.size = builtins.toString (builtins.genList (x: builtins.genList (y: x) 2000) 2000); }\n")
    r = seed_eval(d, env={"SEED_NIX_EVAL_MEMORY": "200"})
    e = json.loads(r.stdout)["errors"]
    assert r.returncode == 1 and "SEED_NIX_EVAL_MEMORY" in e[0]["message"], e

    (d / "web.nix").write_text("let f = n: if n == 0 then 0 else 1 + f (n - 1); in "
                               "{ seed.size = builtins.toString (builtins.foldl' (a: x: a + f 200) 0 (builtins.genList (x: x) 100000000)); }\n")
    t = time.monotonic()
    r = seed_eval(d, env={"SEED_NIX_EVAL_TIMEOUT": "2"})
    e = json.loads(r.stdout)["errors"]
    assert r.returncode == 1 and "did not finish within 2 s" in e[0]["message"], e
    assert time.monotonic() - t < 30


def test_template_gives_seeds_quick_start():
    """`nix flake init -t <seed>/nix#instance` writes Seed's quick start: a web instance with
    a size, an exposed port and a volume."""
    d = workdir() / "new"
    d.mkdir()
    r = run([*NIX, "flake", "init", "-t", f"path:{LIB}#instance"], cwd=d, timeout=120)
    assert r.returncode == 0, r.stderr
    flake = (d / "flake.nix").read_text()
    assert "path:/usr/share/seed/nix" in flake
    (d / "flake.nix").write_text(flake.replace("path:/usr/share/seed/nix", f"path:{LIB}"))
    r = seed_eval(d)
    assert r.returncode == 0, r.stdout
    web = json.loads(r.stdout)["web"]
    assert web["size"] == "s" and web["expose"]["http"]["port"] == 8080
    assert web["storage"]["data"]["size"] == "1Gi"


def test_a_node_runs_a_flake_and_applies_its_changes(nodes):
    """seed up of a flake directory: its instance (root ./rootfs, a path of the flake) runs
    and answers; a changed module rolls it out on `seed apply`; an unchanged one keeps it."""
    d = workdir() / "flake"
    d.mkdir()
    make_rootfs(d / "rootfs")
    module = """{ lib, ... }: {
  seed.size = "xs";
  seed.root = ./rootfs;
  seed.expose.http = 8080;
  seed.env.V = "@V@";
  seed.processes.httpd.command = [ "/bin/sh" "-c" "mkdir -p /tmp/www; echo v$V > /tmp/www/index.html; exec httpd -f -p 8080 -h /tmp/www" ];
}
"""
    write_flake(d, {"web": {}}, modules={"web": module.replace("@V@", "1")})
    for p in [d, d / "web.nix", d / "flake.nix"]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    node = nodes(d)
    node.wait_running("web")
    assert node.wait(lambda: node.http(8080), what="web answering") == "v1\n"
    pid = node.ps()["web"]["pid"]
    r = node.cli("apply")
    assert r.returncode == 0, r.stderr
    assert node.ps()["web"]["pid"] == pid
    (d / "web.nix").write_text(module.replace("@V@", "2"))
    r = node.cli("apply")
    assert r.returncode == 0, r.stderr
    assert node.wait(lambda: node.http(8080) == "v2\n" or None, what="v2")
    # A broken module: apply fails with Nix's words, nothing changes.
    (d / "web.nix").write_text("{ seed.size = ; }\n")
    r = node.cli("apply")
    assert r.returncode == 1 and "syntax error" in (r.stdout + r.stderr)
    assert node.http(8080) == "v2\n"


def test_a_derivation_root_is_built_and_run(nodes):
    """seed.root = a derivation (here one whose builder is busybox, added from the flake):
    seed builds it when the store lacks it, the instance runs from its closure, and Nix's
    meta of the instance is seed's, identity included."""
    d = workdir() / "flake"
    nix_busybox(d)
    module = """{ lib, ... }:
let
  bb = builtins.path { path = ./bb; name = "busybox"; };
  env = derivation {
    name = "web-env"; system = "x86_64-linux"; builder = "${bb}/bin/sh";
    args = [ "-c" "${bb}/bin/busybox mkdir -p $out/bin $out/www; for a in sh httpd; do ${bb}/bin/busybox ln -s ${bb}/bin/busybox $out/bin/$a; done; echo built by nix > $out/www/index.html" ];
  };
in {
  seed.size = "xs";
  seed.root = env;
  seed.expose.http = 8080;
  seed.processes.httpd.command = [ "/bin/sh" "-c" "exec httpd -f -p 8080 -h /www" ];
}
"""
    write_flake(d, {"web": {}}, modules={"web": module})
    r = seed_eval(d)
    assert r.returncode == 0, r.stdout + r.stderr
    meta = json.loads(r.stdout)["web"]
    root = meta["root"]
    assert root.startswith("/nix/store/") and root.endswith("-web-env") and os.path.isdir(root)
    n = nix_meta(d, "web")
    assert n.returncode == 0, n.stderr
    assert {k: v for k, v in json.loads(n.stdout).items() if k != "namespace"} == \
        {k: v for k, v in meta.items() if k != "namespace"}
    for p in [d, d / "web.nix", d / "flake.nix"]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    node = nodes(d)
    node.wait_running("web")
    assert node.wait(lambda: node.http(8080), what="web answering") == "built by nix\n"


DIFFERENTIAL = [
    {"users": {"app": {"uid": 1000}, "web": {"uid": 1001, "gid": 50, "shell": "/bin/bash", "home": "/srv/web"}},
     "processes": {"main": {"command": ["/bin/app"], "user": "app", "foreground": True},
                   "side": {"command": ["sleep", "1"], "user": "web:50", "restart": "on-failure"}}},
    {"users": {"root": {"uid": 1}, "Bad": {"uid": 2}, "x": {"uid": 0}, "y": {"uid": 5, "home": "rel"},
               "z": {"uid": 5, "shell": "/bin/a:b"}, "w": {"gid": 3}, "v": 7}},
    {"users": {"app": {"uid": 1000}}, "processes": {"p": {"command": ["x"], "user": "nobody"}}},
    {"processes": {"a": {"command": ["x"], "foreground": True}, "b": {"command": ["y"], "foreground": True},
                   "c": {"command": ["z"], "foreground": True, "restart": "always"}, "d": {"command": ["w"], "foreground": "yes"}}},
    {"health": {"http": "/healthz", "port": 8080, "interval": "2s", "timeout": 1.5, "retries": 5}, "expose": {"http": 8080}},
    {"health": {"http": "no slash", "port": 9999, "interval": "5", "retries": 0}, "expose": {"dns": {"port": 53, "protocol": "dns"}}},
    {"health": {"command": ["true"], "port": 1}, "rolloutTimeout": "90m"},
    {"storage": {"a": "1.5Gi", "b": {"size": "1e9", "mountPoint": "/srv//data/"}, "c": "0.5Mi", "d": "17Ti", "e": "1m",
                 "f": {"size": 1048576, "mountPoint": "/proc/x"}, "g": {"size": "1Gi", "mountPoint": "/srv/data"}}},
    {"storage": {"x": "100000000000000000000000000000000000000", "y": "12.5k", "z": "1E-3"}},
    {"root": "/nix/store/" + "a" * 32 + "-env", "env": {"A": "b", "SEED_X": "no", "a.b-c": "ok"}},
    {"root": "/nix/store/short", "toplevel": "/nix/store/" + "b" * 32 + "-sys"},
    {"connect": {"db": {"service": "seed-db", "port": 5432}, "a-b": "x", "a_b": "y", "Cache": "c.example.com"},
     "shoot": {"enable": True, "max": 300}, "rollout": "rolling", "system": "aarch64-linux", "size": "xl"},
    {"rolloutTimeout": "2.5m", "health": {"command": ["x"], "interval": ".5s", "timeout": "1500ms"}},
    {"rolloutTimeout": "0.0005s", "health": {"command": ["x"], "interval": "10.", "timeout": "1.0000000001s"}},
    {"rolloutTimeout": "0000000000001h", "health": {"command": [], "interval": "5 s"}},
    {"storage": {"b": "1Gi", "a": "64Mi"}, "nix": {"enable": True, "daemon": True, "minFree": "1Gi", "maxFree": 2147483648}},
    {"nix": {"enable": True, "volume": "x", "sandbox": False}, "storage": {"data": "1Gi"}},
    {"nix": {"enable": True}, "processes": {"nix-daemon": {"command": ["x"]}}},
    {"boot": {"required": ["ssh", "gpu"]}},
    {"boot": {"required": ["ssh", "gpx", "ssh", 3], "optional": True}},
    {"boot": {"required": "ssh"}},
    {"storage": {"d": "1Gi"}, "nix": {"enable": "yes", "daemon": True, "minFree": "2Gi", "maxFree": "1Gi"},
     "processes": {"nix-daemon": {"command": ["x"]}}},
]


@pytest.mark.parametrize("case", range(len(DIFFERENTIAL)))
def test_nix_meta_and_seed_eval_agree(case):
    """The same spec through seed's C checks (seeds.json) and through seed.lib in Nix:
    the same meta (identity included) when valid, the same option paths and messages when
    not."""
    spec = {"web": DIFFERENTIAL[case]}
    twin = workdir() / "twin"
    twin.mkdir()
    (twin / "seeds.json").write_text(json.dumps(spec))
    c = seed_eval(twin)
    d = write_flake(workdir() / "flake", spec)
    n = nix_meta(d, "web")
    if c.returncode == 0:
        assert n.returncode == 0, n.stderr
        want = json.loads(c.stdout)["web"]
        assert {k: v for k, v in json.loads(n.stdout).items() if k != "namespace"} == \
            {k: v for k, v in want.items() if k != "namespace"}
        return
    errors = json.loads(c.stdout)["errors"]
    assert n.returncode == 1
    lines = [line.strip() for line in n.stderr.splitlines() if line.strip().startswith("seed")]
    got = sorted(line.split(": ", 1)[0].replace("seed", "web", 1) for line in lines)
    assert got == sorted(e["path"] for e in errors), n.stderr
    for e in errors:
        assert e["message"] in n.stderr, (e, n.stderr)


def test_secrets_in_a_flake(tmp_path):
    """secrets.<name> = ./file in a module: seed eval reads the same files as from
    seeds.json (paths of the flake are the project's files) and Nix's meta agrees with it,
    digests of the encrypted files included; a file that is not encrypted is refused by
    both at the same option path."""
    if not shutil.which("age-keygen"):
        pytest.skip("age is not installed")
    key = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = next(l.split(": ")[1] for l in key.read_text().splitlines() if "public key" in l)
    files = {}
    files["s/db.age"] = subprocess.run(["age", "-r", recipient], input=b"hunter2", capture_output=True,
                                       check=True).stdout
    files["s/app.yaml"] = (ROOT / "tests" / "unit" / "data" / "sops" / "fixtures" / "app.yaml").read_bytes()
    files["s/plain.txt"] = b"not encrypted"
    spec = {"users": {"app": {"uid": 1000}},
            "secrets": {"db": "s/db.age", "pw": {"file": "s/app.yaml", "key": "db.password", "mode": "440",
                                                 "owner": "app", "env": "DB_PW"}}}
    module = """{ lib, ... }: {
  seed.users.app.uid = 1000;
  seed.secrets.db = ./s/db.age;
  seed.secrets.pw = { file = ./s/app.yaml; key = "db.password"; mode = "440"; owner = "app"; env = "DB_PW"; };
}
"""
    twin, d = workdir() / "twin", workdir() / "flake"
    for base in (twin, d):
        for name, data in files.items():
            (base / name).parent.mkdir(parents=True, exist_ok=True)
            (base / name).write_bytes(data)
    (twin / "seeds.json").write_text(json.dumps({"web": spec}))
    write_flake(d, {"web": {}}, modules={"web": module})
    c = seed_eval(twin)
    f = seed_eval(d)
    assert c.returncode == 0 and f.returncode == 0, (c.stdout, f.stdout)
    want = json.loads(c.stdout)["web"]
    assert {k: v for k, v in json.loads(f.stdout)["web"].items() if k != "namespace"} == \
        {k: v for k, v in want.items() if k != "namespace"}
    assert want["secrets"]["db"]["format"] == "age" and want["secrets"]["pw"]["format"] == "sops-yaml"
    n = nix_meta(d, "web")
    assert n.returncode == 0, n.stderr
    assert {k: v for k, v in json.loads(n.stdout).items() if k != "namespace"} == \
        {k: v for k, v in want.items() if k != "namespace"}

    (d / "web.nix").write_text("{ seed.secrets.x = ./s/plain.txt; }\n")
    (twin / "seeds.json").write_text(json.dumps({"web": {"secrets": {"x": "s/plain.txt"}}}))
    errs = json.loads(seed_eval(twin).stdout)["errors"]
    assert [e["path"] for e in errs] == ["web.secrets.x.file"]
    assert [e["path"] for e in json.loads(seed_eval(d).stdout)["errors"]] == ["web.secrets.x.file"]
    n = nix_meta(d, "web")
    assert n.returncode == 1 and "seed.secrets.x.file" in n.stderr and errs[0]["message"] in n.stderr, n.stderr


def test_a_root_that_cannot_be_built_is_an_error_at_its_option(tmp_path):
    """A derivation root whose builder fails: seed eval says which instance's root and
    Nix's words, nothing is started."""
    d = workdir() / "flake"
    nix_busybox(d)
    module = """{ lib, ... }:
let bb = builtins.path { path = ./bb; name = "busybox"; }; in {
  seed.root = derivation { name = "broken-env"; system = "x86_64-linux"; builder = "${bb}/bin/sh";
                           args = [ "-c" "echo this build fails >&2; exit 3" ]; };
}
"""
    write_flake(d, {"web": {}}, modules={"web": module})
    r = seed_eval(d)
    assert r.returncode == 1, r.stdout
    e = json.loads(r.stdout)["errors"]
    assert len(e) == 1 and e[0]["path"] == "web.root", e
    assert "building the root" in e[0]["message"] and "broken-env" in e[0]["message"], e
