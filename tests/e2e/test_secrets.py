"""Per-instance identities and secrets (issue 11), end to end: the identity at
/seed/tpm/age-identity, stable across node restarts and rollouts; the real `age`
command both ways; sops files written by tests/unit/data/sops/make-fixtures.py (Python's
cryptography, independent of seed's code); secrets that do not decrypt; plaintext that
appears in no listing, log or shoot; rotation and removal."""
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from seedtest import ID_BASE, ROOT, make_project, run

pytestmark = [pytest.mark.timeout(240),
              pytest.mark.skipif(not shutil.which("age"), reason="the age command is not installed "
                                 "(scripts/deps.sh installs it)")]

MAKE_FIXTURES = ROOT / "tests" / "unit" / "data" / "sops" / "make-fixtures.py"
SECRET = "s3cr3t-plaintext-7f1c"


def host_instance(script, **extra):
    """An instance on the host's /usr (it has /usr/bin/age), running one shell script."""
    inst = {"root": "host", "processes": {"main": {"command": ["/bin/sh", "-c", script]}}}
    inst.update(extra)
    return inst


SLEEP = "while :; do sleep 1; done"


def make_fixtures(out, recipient):
    """sops files for recipient (tests/unit/data/sops/make-fixtures.py)."""
    pytest.importorskip("cryptography", reason="python3-cryptography writes the sops fixtures")
    subprocess.run([str(MAKE_FIXTURES), str(out), recipient], check=True)


def write_spec(proj, spec):
    (proj / "seeds.json").write_text(json.dumps(spec, indent=1))


def age_encrypt(recipient, data, armor=False):
    r = subprocess.run(["age", *(["-a"] if armor else []), "-r", recipient], input=data,
                       capture_output=True, check=True)
    return r.stdout


def identity(node, name):
    r = node.cli("identity", name)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def exec_out(node, name, *cmd, stdin=None):
    r = subprocess.run([*node_cli(node), "exec", *(["-i"] if stdin is not None else []), name, "--", *cmd],
                       input=stdin, capture_output=True, timeout=60)
    return r


def node_cli(node):
    from seedtest import SEED
    return [SEED, "--state-dir", str(node.state)]


def apply(node):
    r = node.cli("apply")
    return r


def test_identity_file_and_the_age_command_both_ways(nodes):
    proj = make_project({"web": host_instance(SLEEP)}, rootfs=False)
    node = nodes(proj)
    node.wait_running("web")
    assert "identities: node key in" in node.output() and "0600 file" in node.output()

    rcpt = identity(node, "web")
    assert rcpt.startswith("age1") and len(rcpt) == 62
    j = json.loads(node.cli("identity", "web", "--json").stdout)
    assert j["recipient"] == rcpt and j["instance"] == "web" and j["created"] is False

    # The file at Seed's path: 0400, the instance's root, age-keygen's format.
    r = exec_out(node, "web", "stat", "-c", "%a %u %g", "/seed/tpm/age-identity")
    assert r.stdout.decode().split() == ["400", "0", "0"], r.stderr
    text = exec_out(node, "web", "cat", "/seed/tpm/age-identity").stdout.decode()
    lines = text.splitlines()
    assert lines[0].startswith("# created: ") and lines[1] == f"# public key: {rcpt}"
    assert lines[2].startswith("AGE-SECRET-KEY-1") and len(lines) == 3
    # Read-only, and on the host side owned by the instance's root uid.
    r = exec_out(node, "web", "sh", "-c", "echo x > /seed/tpm/age-identity; echo rc=$?")
    assert b"rc=0" not in r.stdout

    # age encrypts to the recipient seed prints; age inside the instance decrypts with
    # the identity seed wrote.
    for armor in (False, True):
        enc = age_encrypt(rcpt, b"hello from the host\n", armor)
        r = exec_out(node, "web", "age", "-d", "-i", "/seed/tpm/age-identity", stdin=enc)
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"hello from the host\n"
    # The other way: age in the instance encrypts to its own recipient, age-keygen -y
    # agrees on the recipient, and the host's age reads it with the identity file.
    r = exec_out(node, "web", "age-keygen", "-y", "/seed/tpm/age-identity")
    assert r.stdout.decode().strip() == rcpt
    enc = exec_out(node, "web", "age", "-r", rcpt, stdin=b"from inside\n").stdout
    keyfile = node.work / "key.txt"
    keyfile.write_text(text)
    keyfile.chmod(0o600)
    r = subprocess.run(["age", "-d", "-i", str(keyfile)], input=enc, capture_output=True)
    assert r.stdout == b"from inside\n", r.stderr
    keyfile.unlink()


def test_provisioning_flow_stability_and_sops_fixtures(nodes):
    """Seed's flow in one session: deploy without secrets, read the recipient, encrypt
    with age and sops, apply, the process reads /run/secrets; then a node restart and a
    rollout keep the identity."""
    proj = make_project({"web": host_instance(SLEEP), "other": host_instance(SLEEP)}, rootfs=False)
    node = nodes(proj)
    node.wait_running("web", "other")
    rcpt = identity(node, "web")

    sec = proj / "secrets"
    sec.mkdir()
    (sec / "token.age").write_bytes(age_encrypt(rcpt, SECRET.encode()))
    (sec / "armored.age").write_bytes(age_encrypt(rcpt, b"armored " + SECRET.encode(), armor=True))
    make_fixtures(sec / "sops", rcpt)
    check = ("[ \"$DB_PASSWORD\" = hunter2 ] && echo env-ok; "
             "[ \"$TOKEN\" = " + SECRET + " ] && echo token-env-ok; " + SLEEP)
    spec = {"web": host_instance(check, secrets={
        "token": {"file": "secrets/token.age", "env": "TOKEN"},
        "armored": "secrets/armored.age",
        "db-password": {"file": "secrets/sops/app.yaml", "key": "db.password", "mode": "0440",
                        "owner": "nobody"},
        "db-port": {"file": "secrets/sops/app.json", "key": "db.port"},
        "dotenv": {"file": "secrets/sops/app.env", "key": "DB_PASSWORD", "env": "DB_PASSWORD"},
        "whole-env": "secrets/sops/app.env",
        "blob": "secrets/sops/blob.bin",
    }), "other": host_instance(SLEEP)}
    write_spec(proj, spec)
    r = apply(node)
    assert r.returncode == 0, r.stdout + r.stderr
    node.wait_running("web")

    def cat(path):
        r = exec_out(node, "web", "cat", path)
        assert r.returncode == 0, r.stderr
        return r.stdout.decode()

    assert cat("/run/secrets/token") == SECRET
    assert cat("/run/secrets/armored") == "armored " + SECRET
    assert cat("/run/secrets/db-password") == "hunter2"
    assert cat("/run/secrets/db-port") == "5432"
    assert cat("/run/secrets/dotenv") == "hunter2"
    assert cat("/run/secrets/whole-env") == "DB_PASSWORD=hunter2\nMULTI=line one\\nline two\n"
    assert cat("/run/secrets/blob") == "raw bytes\nof a binary file\n"
    modes = exec_out(node, "web", "stat", "-c", "%n %a %U", "/run/secrets/token",
                     "/run/secrets/db-password").stdout.decode().splitlines()
    assert modes == ["/run/secrets/token 400 root", "/run/secrets/db-password 440 nobody"]
    # A tmpfs, read-only for the instance.
    assert "tmpfs" in exec_out(node, "web", "stat", "-f", "-c", "%T", "/run/secrets").stdout.decode()
    r = exec_out(node, "web", "sh", "-c", "echo x > /run/secrets/token; echo rc=$?")
    assert b"rc=0" not in r.stdout
    node.wait_log("web", "env-ok")
    node.wait_log("web", "token-env-ok")
    # The other instance has an identity of its own and no secrets.
    assert identity(node, "other") != rcpt
    assert exec_out(node, "other", "ls", "/run/secrets").stdout == b""

    # A node restart keeps the identity and the secrets.
    assert node.stop() == 0
    node.start()
    node.wait_running("web")
    assert identity(node, "web") == rcpt
    assert cat("/run/secrets/token") == SECRET

    # A rollout (a changed spec) keeps it too; a re-encrypted secret rolls the instance.
    before = node.ps()["web"]
    (sec / "token.age").write_bytes(age_encrypt(rcpt, b"rotated value"))
    r = apply(node)
    assert r.returncode == 0, r.stdout + r.stderr
    node.wait(lambda: node.ps()["web"].get("identity") != before.get("identity")
              and node.ps()["web"]["state"] == "running", what="web rolled out")
    assert identity(node, "web") == rcpt
    assert cat("/run/secrets/token") == "rotated value"


def test_secrets_that_do_not_decrypt_stop_only_their_instance(nodes):
    proj = make_project({"good": host_instance(SLEEP), "bad": host_instance(SLEEP),
                         "tampered": host_instance(SLEEP)}, rootfs=False)
    node = nodes(proj)
    node.wait_running("good", "bad", "tampered")
    sec = proj / "secrets"
    make_fixtures(sec, identity(node, "tampered"))
    (proj / "good.age").write_bytes(age_encrypt(identity(node, "good"), b"fine"))
    # For "bad": encrypted to another instance's recipient.
    (proj / "bad.age").write_bytes(age_encrypt(identity(node, "good"), b"not for bad"))
    write_spec(proj, {
        "good": host_instance(SLEEP, secrets={"s": "good.age"}),
        "bad": host_instance(SLEEP, secrets={"s": "bad.age"}),
        "tampered": host_instance(SLEEP, secrets={"cfg": "secrets/tampered-mac.yaml"}),
    })
    apply(node)
    ps = node.wait(lambda: (lambda p: p if p["bad"]["state"] == "failed" and p["tampered"]["state"] == "failed"
                            and p["good"]["state"] == "running" else None)(node.ps()),
                   what="bad and tampered failed, good running")
    bad_rcpt = identity(node, "bad")
    out = node.output()
    assert "secret s (bad.age, age) cannot be decrypted: the file is not encrypted to " + bad_rcpt in out
    assert "secret cfg (secrets/tampered-mac.yaml, sops-yaml) cannot be decrypted: the sops MAC does not " \
           "match" in out
    assert "cannot be decrypted" in json.dumps(ps["bad"])
    assert exec_out(node, "good", "cat", "/run/secrets/s").stdout == b"fine"

    # A missing file is an error of the project: nothing changes, the message names it.
    write_spec(proj, {"good": host_instance(SLEEP, secrets={"s": "missing.age"})})
    r = apply(node)
    assert r.returncode == 1
    assert "secrets.s.file" in r.stdout + r.stderr and "missing.age" in r.stdout + r.stderr
    assert node.ps()["good"]["state"] == "running"


def test_plaintext_is_in_no_listing_log_event_state_or_shoot(nodes):
    proj = make_project({"web": host_instance(SLEEP, shoot={"enable": True})}, rootfs=False)
    node = nodes(proj)
    node.wait_running("web")
    rcpt = identity(node, "web")
    (proj / "s.age").write_bytes(age_encrypt(rcpt, SECRET.encode()))
    write_spec(proj, {"web": host_instance(SLEEP, shoot={"enable": True},
                                           secrets={"s": {"file": "s.age", "env": "S"}})})
    assert apply(node).returncode == 0
    node.wait(lambda: exec_out(node, "web", "cat", "/run/secrets/s").stdout == SECRET.encode(),
              what="secret in place")
    seen = []
    for args in (["ps", "--json"], ["ps"], ["logs", "web"], ["events", "--json"], ["eval", str(proj), "--json"],
                 ["history", "--json"], ["volume", "ls", "--json"], ["identity", "web", "--json"]):
        r = node.cli(*args)
        seen.append(r.stdout + r.stderr)
    assert all(SECRET not in s for s in seen)
    assert SECRET not in node.output()
    # Nothing under the state directory holds it (its tmpfs is in the node's own mount
    # namespace, invisible here), nor the identity in the clear.
    ident = exec_out(node, "web", "cat", "/seed/tpm/age-identity").stdout.decode().splitlines()[2]
    for p in pathlib.Path(node.state).rglob("*"):
        if p.is_file() and not p.is_symlink():
            try:
                data = p.read_bytes()
            except OSError:
                continue
            assert SECRET.encode() not in data, p
            assert ident.encode() not in data, p
    key = pathlib.Path(node.state) / "node.key"
    assert key.stat().st_mode & 0o777 == 0o600
    ids = list((pathlib.Path(node.state) / "identities").rglob("*"))
    assert all(p.stat().st_mode & 0o777 in (0o600, 0o700) for p in ids)
    # Shoots get no identity, no secrets, no secret variables.
    node.wait(lambda: node.cli("shoot", "web", "--", "true").returncode == 0, what="shoots ready")
    r = node.cli("shoot", "web", "--", "/bin/sh", "-c",
                 "ls /seed/tpm /run/secrets 2>&1; echo S=${S:-unset}")
    assert "S=unset" in r.stdout and "age-identity" not in r.stdout and SECRET not in r.stdout
    assert "No such file" in r.stdout


def test_rotation_and_removal(nodes):
    proj = make_project({"web": host_instance(SLEEP, storage={"data": "4Mi"})}, rootfs=False)
    node = nodes(proj)
    node.wait_running("web")
    old = identity(node, "web")
    (proj / "s.age").write_bytes(age_encrypt(old, b"v1"))
    write_spec(proj, {"web": host_instance(SLEEP, storage={"data": "4Mi"}, secrets={"s": "s.age"})})
    assert apply(node).returncode == 0
    node.wait(lambda: exec_out(node, "web", "cat", "/run/secrets/s").stdout == b"v1", what="v1")

    r = node.cli("identity", "rotate", "web")
    new = r.stdout.strip()
    assert r.returncode == 0 and new.startswith("age1") and new != old
    assert f"the old recipient {old} no longer decrypts" in r.stderr
    assert identity(node, "web") == new
    # The running instance keeps what it has; at its next start the old file no longer
    # decrypts, and says so.
    r = node.cli("restart", "web")
    assert r.returncode == 1 and f"not encrypted to {new}" in r.stdout + r.stderr, r.stdout + r.stderr
    assert node.ps()["web"]["state"] == "failed"
    assert f"the file is not encrypted to {new}" in node.output()
    (proj / "s.age").write_bytes(age_encrypt(new, b"v2"))
    assert apply(node).returncode == 0
    node.wait_running("web")
    assert exec_out(node, "web", "cat", "/run/secrets/s").stdout == b"v2"
    assert new in exec_out(node, "web", "cat", "/seed/tpm/age-identity").stdout.decode()

    # Removed with the instance's last volume (seed volume rm), or by seed identity rm.
    write_spec(proj, {})
    assert apply(node).returncode == 0
    node.wait(lambda: "web" not in node.ps(), what="web removed")
    ns = json.loads(node.cli("volume", "ls", "--json").stdout)[0]["namespace"]
    ident = pathlib.Path(node.state) / "identities" / ns / "web"
    assert ident.exists()
    r = node.cli("volume", "rm", f"{ns}/web/data")
    assert r.returncode == 0, r.stderr
    assert not ident.exists()
    assert "identity removed with its last volume" in node.output()

    write_spec(proj, {"web": host_instance(SLEEP)})
    assert apply(node).returncode == 0
    node.wait_running("web")
    fresh = identity(node, "web")
    assert fresh not in (old, new)
    r = node.cli("identity", "rm", "web")
    assert r.returncode == 0 and "removed the identity" in r.stdout
    r = node.cli("identity", "rm", "web")
    assert r.returncode == 0 and "has no identity" in r.stdout
    assert identity(node, "web") != fresh   # a new one, made when asked
    r = node.cli("identity", "nope")
    assert r.returncode == 1 and "nope" in r.stderr

    # With no node running, seed volume rm removes it with the last volume too.
    write_spec(proj, {"web": host_instance(SLEEP, storage={"data": "4Mi"})})
    assert apply(node).returncode == 0
    node.wait(lambda: exec_out(node, "web", "ls", "/seed/storage/data").returncode == 0, what="volume")
    assert ident.exists()
    assert node.stop() == 0
    r = node.cli("volume", "rm", f"{ns}/web/data")
    assert r.returncode == 0, r.stderr
    assert f"removed the identity of {ns}/web with its last volume" in r.stdout
    assert not ident.exists()


def test_bash_completion_of_identity(nodes):
    from test_cli import complete
    assert "identity" in complete("")
    assert complete("identity", "--") == ["--json", "--help", "--state-dir"]
    proj = make_project({"alpha": host_instance(SLEEP), "beta": host_instance(SLEEP)}, rootfs=False)
    node = nodes(proj)
    node.wait_running("alpha", "beta")
    st = str(node.state)
    assert complete("--state-dir", st, "identity", "") == ["rotate", "rm", "alpha", "beta"]
    assert complete("--state-dir", st, "identity", "rotate", "") == ["alpha", "beta"]
    assert complete("--state-dir", st, "identity", "alpha", "") == []


# ---- the node key sealed to a TPM (swtpm) ----

def bech32_data(s):
    """The bytes of a Bech32 string (checksum not checked: test use only)."""
    charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
    data = [charset.index(c) for c in s.lower().rsplit("1", 1)[1][:-6]]
    acc, bits, out = 0, 0, bytearray()
    for v in data:
        acc, bits = (acc << 5) | v, bits + 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xff)
    return bytes(out)


class Swtpm:
    """A software TPM 2.0 on a Unix socket (no network), ended by PID."""

    def __init__(self):
        from seedtest import workdir
        self.dir = workdir()
        (self.dir / "state").mkdir()
        self.sock = self.dir / "tpm.sock"
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self.dir / 'state'}",
             "--server", f"type=unixio,path={self.sock}", "--ctrl", f"type=unixio,path={self.sock}.ctrl",
             "--flags", "not-need-init,startup-clear"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import time
        deadline = time.time() + 10
        while not self.sock.exists() and time.time() < deadline:
            time.sleep(0.02)
        assert self.sock.exists(), "swtpm did not start"
        self.tcti = f"swtpm:path={self.sock}"

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def swtpms():
    made = []

    def start():
        t = Swtpm()
        made.append(t)
        return t
    yield start
    for t in made:
        t.close()


@pytest.mark.skipif(not shutil.which("swtpm"), reason="swtpm is not installed (scripts/deps.sh installs it)")
def test_tpm_sealed_node_key_and_a_copied_state_directory(nodes, swtpms, monkeypatch):
    from seedtest import Node
    tpm = swtpms()
    proj = make_project({"web": host_instance(SLEEP)}, rootfs=False)
    # First without a TPM: the key in a 0600 file ...
    monkeypatch.setenv("SEED_TPM_TCTI", "none")
    node = nodes(proj)
    node.wait_running("web")
    rcpt = identity(node, "web")
    state = pathlib.Path(node.state)
    assert (state / "node.key").exists() and "no TPM" in node.output()
    assert node.stop() == 0
    # ... then with one: sealed to it, the file removed, the identity the same.
    monkeypatch.setenv("SEED_TPM_TCTI", tpm.tcti)
    node.start()
    node.wait_running("web")
    assert identity(node, "web") == rcpt
    assert "identities: node key sealed to the TPM (swtpm:path=" in node.output()
    assert not (state / "node.key").exists() and (state / "node.key.tpm").exists()
    assert (state / "node.key.tpm").stat().st_mode & 0o777 == 0o600
    secret = exec_out(node, "web", "cat", "/seed/tpm/age-identity").stdout.decode().splitlines()[2]
    raw = bech32_data(secret)
    assert len(raw) == 32
    assert node.stop() == 0

    # A copy of the state directory holds neither the identity nor the node key in the
    # clear ...
    copy = node.work / "copy"
    subprocess.run(["cp", "-a", str(state), str(copy)], check=True)
    for p in copy.rglob("*"):
        if p.is_file() and not p.is_socket():
            data = p.read_bytes()
            assert raw not in data and secret.encode() not in data, p
    # ... and does not open without that TPM: neither with none nor with another one.
    for tcti, why in (("none", "this machine has none"), (swtpms().tcti, "does not load on this TPM")):
        monkeypatch.setenv("SEED_TPM_TCTI", tcti)
        other = Node(proj, state=copy)
        try:
            other.proc.wait(30)
            assert other.proc.returncode != 0
            assert why in other.output(), other.output()
            assert rcpt not in other.output()
        finally:
            other.close()
    # The node with its TPM still opens it.
    monkeypatch.setenv("SEED_TPM_TCTI", tpm.tcti)
    node.start()
    node.wait_running("web")
    assert identity(node, "web") == rcpt


def test_rolling_rollout_keeps_the_identity_and_gets_new_secrets(nodes):
    proj = make_project({"web": host_instance(SLEEP, rollout="rolling")}, rootfs=False)
    node = nodes(proj)
    node.wait_running("web")
    rcpt = identity(node, "web")
    (proj / "s.age").write_bytes(age_encrypt(rcpt, b"one"))
    write_spec(proj, {"web": host_instance(SLEEP, rollout="rolling", secrets={"s": "s.age"})})
    r = apply(node)
    assert r.returncode == 0, r.stdout + r.stderr
    node.wait(lambda: exec_out(node, "web", "cat", "/run/secrets/s").stdout == b"one", what="one")
    (proj / "s.age").write_bytes(age_encrypt(rcpt, b"two"))
    r = apply(node)
    assert r.returncode == 0, r.stdout + r.stderr
    node.wait(lambda: exec_out(node, "web", "cat", "/run/secrets/s").stdout == b"two", what="two")
    assert identity(node, "web") == rcpt
    assert rcpt in exec_out(node, "web", "cat", "/seed/tpm/age-identity").stdout.decode()
    # The replaced instance's tmpfs went with it: one left for web, in the node's namespace.
    pid = node.proc.pid
    mounts = pathlib.Path(f"/proc/{pid}/mountinfo").read_text()
    assert mounts.count("/secrets/") == 1, [l for l in mounts.splitlines() if "/secrets/" in l]


def test_seedd_restart_adopts_the_instance_with_its_secrets(tmp_path):
    """seedd: the instance outlives a daemon restart with its identity and secrets, the
    new daemon stops it cleanly, and seed down leaves no mount on the host."""
    import signal
    from seedtest import Daemon
    d = Daemon(webhook=False)
    try:
        proj = make_project({"web": host_instance(SLEEP)}, rootfs=False)
        r = d.cli("source", "add", "app", str(proj))
        assert r.returncode == 0, r.stdout + r.stderr
        d.wait_running("web")
        assert "identities: node key in" in d.output()
        rcpt = identity(d, "web")
        (proj / "s.age").write_bytes(age_encrypt(rcpt, SECRET.encode()))
        write_spec(proj, {"web": host_instance(SLEEP, secrets={"s": "s.age"})})
        assert d.cli("apply", "app").returncode == 0
        d.wait(lambda: exec_out(d, "web", "cat", "/run/secrets/s").stdout == SECRET.encode(), what="secret")
        pid = d.ps()["web"]["pid"]

        d.stop(signal.SIGTERM)      # seedd exits; the instance runs on
        d.start()
        d.wait_running("web")
        assert d.ps()["web"]["pid"] == pid
        assert exec_out(d, "web", "cat", "/run/secrets/s").stdout == SECRET.encode()
        assert identity(d, "web") == rcpt
        assert d.cli("restart", "web").returncode == 0
        assert exec_out(d, "web", "cat", "/run/secrets/s").stdout == SECRET.encode()
        assert SECRET not in d.output()

        assert d.cli("down").returncode == 0
        d.proc.wait(30)
        assert d.host_mounts() == []
        assert not any("/secrets/" in l for l in pathlib.Path("/proc/self/mountinfo").read_text().splitlines()
                       if str(d.work) in l)
    finally:
        d.close()
