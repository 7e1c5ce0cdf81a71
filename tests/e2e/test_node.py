"""`seed up` end to end: instances run, answer, keep their storage, obey their limits,
find each other, and leave nothing behind. Each node runs in a network namespace this
test creates; a probe program inside the sandbox reports what it sees."""
import json
import os
import pathlib
import re
import signal
import subprocess
import time

import pytest

from seedtest import (EXAMPLES_HELLO, ID_BASE, SEED, host_pids_with_uid_at_least, make_project,
                      run)

pytestmark = pytest.mark.timeout(180)


def probe_instance(command, **extra):
    inst = {"root": "rootfs", "processes": {"probe": {"command": command, "restart": "no"}}}
    inst.update(extra)
    return inst


# ---- the example ----

def test_hello_example_runs_and_answers(nodes):
    node = nodes(EXAMPLES_HELLO)
    node.wait_running("web", "api")
    page = node.wait(lambda: node.http(8080), what="web answering")
    assert page == "hello from seed\n"
    api = node.wait(lambda: node.http(8081, "/cgi-bin/index"), what="api answering")
    assert api.strip() == "api sees web saying: hello from seed"


# ---- storage ----

def write_then_serve(volume_size="16Mi"):
    return {"web": {"root": "rootfs", "storage": {"data": volume_size}, "expose": {"http": 8080},
                    "processes": {"httpd": {"command": ["sh", "-c",
                        "[ -f /seed/storage/data/index.html ] || "
                        "{ echo \"first run $(date +%s%N)\" > /seed/storage/data/index.html; sync; }; "
                        "exec httpd -f -p 8080 -h /seed/storage/data"]}}}}


def test_storage_survives_node_restart_and_sigkill(nodes):
    proj = make_project(write_then_serve())
    node = nodes(proj)
    node.wait_running("web")
    first = node.wait(lambda: node.http(8080), what="page")
    assert first.startswith("first run ")
    assert node.stop() == 0

    node.start()
    node.wait_running("web")
    assert node.wait(lambda: node.http(8080), what="page after restart") == first

    # SIGKILL the node: the kernel takes the instances, mounts and links with it.
    node.stop(sig=signal.SIGKILL)
    state = str(node.state)
    # Parent-death signals end the sandboxes; their PID namespaces wind down and the
    # host's init reaps them.
    deadline = time.time() + 10
    while host_pids_with_uid_at_least(ID_BASE) and time.time() < deadline:
        time.sleep(0.05)
    assert host_pids_with_uid_at_least(ID_BASE) == []
    assert state not in run(["losetup", "-a"]).stdout
    assert state not in run(["findmnt", "-rn"]).stdout
    links = run(["ip", "-n", node.netns, "-o", "link"]).stdout
    assert [l.split(":")[1].strip() for l in links.splitlines()] == ["lo"]

    node.start()
    ps = node.wait_running("web")
    assert list(ps) == ["web"]
    assert node.wait(lambda: node.http(8080), what="page after SIGKILL") == first
    # exactly one init for the instance: no duplicate from the killed node
    inits = [p for p in host_pids_with_uid_at_least(ID_BASE)
             if pathlib.Path(f"/proc/{p}/comm").read_text().strip() == "seed-init"]
    assert len(inits) == 1
    assert "removed" in node.output() and "left by a previous node" in node.output()


def test_volume_grows_keeping_its_data(nodes):
    """A bigger size in the spec grows the volume on the next start; a grow that was
    cut short (file extended, filesystem not yet) is finished on the next start."""
    proj = make_project(write_then_serve("8Mi"))
    node = nodes(proj)
    node.wait_running("web")
    first = node.wait(lambda: node.http(8080), what="page")
    assert node.stop() == 0

    def capacity():
        vols = json.loads(node.cli("volume", "ls", "--json").stdout)
        return vols[0]["capacityBytes"]

    for size, more_than in [(16, 12), (24, 20)]:
        (proj / "seeds.json").write_text(json.dumps(write_then_serve(f"{size}Mi")))
        if size == 24:
            # what a node killed between extending the file and resize2fs leaves
            image = next(node.state.glob("volumes/*/web/data.img"))
            os.truncate(image, 24 << 20)
            pathlib.Path(f"{image}.growing").touch()
        node.start()
        node.wait_running("web")
        assert node.wait(lambda: node.http(8080), what="page after growing") == first
        assert capacity() > more_than << 20
        assert node.stop() == 0
    assert list(node.state.glob("volumes/*/web/*.growing")) == []


def test_storage_size_is_enforced(nodes):
    proj = make_project({"w": probe_instance(["seed-probe", "fill", "/seed/storage/data/big"],
                                             storage={"data": "8Mi"})})
    node = nodes(proj)
    fill = node.probe_json("w", "fill")
    assert fill["enospc"] is True
    assert 8 << 20 <= fill["bytes"] <= 10 << 20   # the declared size, and not much more


def test_volume_ls_and_rm(nodes):
    proj = make_project(write_then_serve("12Mi"))
    node = nodes(proj)
    node.wait_running("web")
    vols = json.loads(node.cli("volume", "ls", "--json").stdout)
    assert len(vols) == 1
    v = vols[0]
    assert v["instance"] == "web" and v["name"] == "data" and v["sizeBytes"] == 12 << 20
    assert v["inUse"] is True and v["mountPoint"] == "/seed/storage/data"
    assert 0 < v["usedBytes"] < v["capacityBytes"] and v["capacityBytes"] >= 12 << 20
    r = node.cli("volume", "rm", v["id"])
    assert r.returncode == 1 and "in use" in r.stderr
    assert node.cli("stop", "web").returncode == 0
    assert node.cli("volume", "rm", v["id"]).returncode == 0
    assert json.loads(node.cli("volume", "ls", "--json").stdout) == []
    assert node.cli("volume", "rm", v["id"]).returncode == 1
    assert node.cli("start", "web").returncode == 0   # a stopped instance stays stopped until then
    node.stop()
    # without a node: straight from the state database
    node.start()
    node.wait_running("web")
    node.stop()
    r = node.cli("volume", "ls", "--json")
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 1
    assert "web/data" in node.cli("volume", "ls").stdout


# ---- control ----

def test_ps_logs_stop_start_restart(nodes):
    proj = make_project({
        "a": {"root": "rootfs", "processes": {"tick": {"command": [
            "sh", "-c", "i=0; while true; do echo tick $i; echo warn $i >&2; i=$((i+1)); sleep 0.2; done"]}}},
        "b": {"root": "rootfs", "processes": {"idle": {"command": ["sleep", "1000"]}}},
    })
    node = nodes(proj)
    ps = node.wait_running("a", "b")
    for name in ("a", "b"):
        i = ps[name]
        assert {"name", "namespace", "state", "address", "identity", "restarts", "startedAt"} <= set(i)
        assert i["namespace"].startswith("s-") and re.match(r"10\.77\.0\.\d+$", i["address"])
        assert len(i["identity"]) == 64 and i["restarts"] == 0
    assert ps["a"]["address"] != ps["b"]["address"]
    human = node.cli("ps").stdout
    assert "NAME" in human and "running" in human

    logs = node.wait_log("a", "tick 3")
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z tick: tick 0$", logs, re.M)
    assert re.search(r"Z tick \(stderr\): warn 0$", logs, re.M)
    tail = node.logs("a", "--tail", "2").splitlines()
    assert len(tail) == 2

    follower = subprocess.Popen([SEED, "--state-dir", str(node.state), "logs", "-f", "a"],
                                stdout=subprocess.PIPE, text=True)
    try:
        seen = [follower.stdout.readline() for _ in range(6)]
        assert any("tick" in s for s in seen)
        # new lines keep arriving
        assert any("tick" in follower.stdout.readline() for _ in range(4))
    finally:
        follower.kill()
        follower.wait()

    r = node.cli("stop", "b")
    assert r.returncode == 0 and "stopped" in r.stdout
    assert node.ps()["b"]["state"] == "stopped"
    assert node.ps()["a"]["state"] == "running"
    r = node.cli("start", "b")
    assert r.returncode == 0 and "running" in r.stdout
    before = node.ps()["a"]["startedAt"]
    time.sleep(0.01)
    r = node.cli("restart", "a")
    assert r.returncode == 0 and "running" in r.stdout
    assert node.ps()["a"]["startedAt"] != before
    r = node.cli("stop", "nope")
    assert r.returncode == 1 and "no instance named" in r.stderr
    r = node.cli("logs")
    assert r.returncode == 2


def test_second_node_on_same_state_dir_is_refused(nodes):
    proj = make_project({"a": {"root": "rootfs"}})
    node = nodes(proj)
    node.wait_running("a")
    r = run(["nsenter", f"--net=/run/netns/{node.netns}", SEED, "up", str(proj), "--state-dir",
             str(node.state)], timeout=20)
    assert r.returncode == 1
    assert "another node is running" in r.stderr


def test_spec_errors_start_nothing(tmp_path):
    proj = make_project({"web": {"expose": {"http": 70000}}})
    state = proj.parent / "state"
    r = run([SEED, "up", str(proj), "--state-dir", str(state)], timeout=20)
    assert r.returncode == 1
    assert "web.expose.http.port" in r.stderr and "nothing was started" in r.stderr
    assert not state.exists()


# ---- processes ----

def test_process_that_cannot_start_is_logged_and_retried(nodes):
    proj = make_project({"a": {"root": "rootfs", "processes": {
        "missing": {"command": ["/bin/no-such-program"]},
        "baduser": {"command": ["true"], "user": "ghost"},
        "ok": {"command": ["sleep", "1000"]},
    }}})
    node = nodes(proj)
    logs = node.wait_log("a", "restarting in 200 ms")
    assert 'missing (seed): cannot execute "/bin/no-such-program": No such file or directory' in logs
    assert 'baduser (seed): cannot start: user "ghost" does not exist' in logs
    assert "restarting in 100 ms" in logs
    ps = node.wait(lambda: (p := node.ps()) and p["a"]["restarts"] >= 4 and p, what="restarts counted")
    assert ps["a"]["state"] in ("running", "restarting")
    ok = [p for p in ps["a"]["processes"] if p["name"] == "ok"][0]
    assert ok["running"] and ok["restarts"] == 0


def test_restart_policies(nodes):
    proj = make_project({
        "a": {"root": "rootfs", "processes": {
            "always": {"command": ["sh", "-c", "echo run; exit 0"]},
            "onfail-ok": {"command": ["sh", "-c", "echo run; exit 0"], "restart": "on-failure"},
            "onfail-bad": {"command": ["sh", "-c", "echo run; exit 3"], "restart": "on-failure"},
            "never": {"command": ["sh", "-c", "echo run; exit 3"], "restart": "no"},
        }}})
    node = nodes(proj)
    node.wait_log("a", "restarting in 400 ms")
    time.sleep(0.3)
    logs = node.logs("a")
    count = lambda name: len(re.findall(rf"Z {name}: run$", logs, re.M))
    assert count("always") >= 3 and count("onfail-bad") >= 3
    assert count("onfail-ok") == 1 and count("never") == 1
    assert "onfail-ok (seed): exited with status 0; not restarting (policy on-failure)" in logs
    assert "never (seed): exited with status 3; not restarting (policy no)" in logs


def test_instance_finishes_when_every_process_is_done(nodes):
    proj = make_project({"job": {"root": "rootfs", "processes": {
        "once": {"command": ["sh", "-c", "echo done"], "restart": "no"}}}})
    node = nodes(proj)
    node.wait(lambda: (p := node.ps()) and p["job"]["state"] == "exited", what="job exited")
    assert "once: done" in node.logs("job")


def test_user_cwd_and_env(nodes):
    proj = make_project({"a": {"root": "rootfs", "env": {"GREETING": "hi there", "QUOTE": "it's"},
                               "processes": {"p": {"command": ["sh", "-c", "id -u; id -g; id -G; pwd; echo $HOME $GREETING $X; sleep 1000"],
                                                   "user": "app", "cwd": "/tmp", "env": {"X": "proc"}}}}})
    node = nodes(proj)
    logs = node.wait_log("a", "hi there")
    lines = [l.split(": ", 1)[1] for l in logs.splitlines() if " p: " in l]
    assert lines[:5] == ["1000", "1000", "1000 50", "/tmp", "/home/app hi there proc"]


def test_signals_are_forwarded(nodes):
    proj = make_project({"a": {"root": "rootfs", "processes": {"p": {"command": [
        "sh", "-c", "trap 'echo got HUP' HUP; trap 'echo got USR1' USR1; echo ready; "
                    "while true; do sleep 0.1; done"]}}}})
    node = nodes(proj)
    node.wait_log("a", "p: ready")
    init = node.ps()["a"]["pid"]
    os.kill(init, signal.SIGHUP)
    node.wait_log("a", "p: got HUP")
    os.kill(init, signal.SIGUSR1)
    node.wait_log("a", "p: got USR1")
    assert node.ps()["a"]["state"] == "running"


def test_kill_everything_inside_an_instance_stays_inside(nodes):
    """kill -KILL -1 and kill -KILL 0 as root in one instance end that instance's own
    processes only: other instances, the node and its process group are untouched."""
    proj = make_project({
        "killer": {"root": "rootfs", "processes": {"k": {"restart": "no", "command": ["sh", "-c",
                   "sleep 0.5; kill -KILL -1; kill -KILL 0"]}}},
        "victim": {"root": "rootfs", "processes": {"s": {"command": ["sleep", "100000"]}}},
    })
    node = nodes(proj)
    node.wait(lambda: (p := node.ps()) and p["killer"]["state"] == "exited" and p, what="killer done")
    time.sleep(0.5)
    ps = node.ps()
    assert ps["victim"]["state"] == "running" and ps["victim"]["restarts"] == 0
    assert ps["victim"]["processes"][0]["running"]
    assert node.proc.poll() is None


def test_graceful_stop_then_kill(nodes):
    proj = make_project({"a": {"root": "rootfs", "processes": {
        "polite": {"command": ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.1; done"]},
        "stubborn": {"command": ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"]},
    }}})
    node = nodes(proj, "--grace", "1")
    node.wait_log("a", "stubborn: ready")
    t0 = time.time()
    assert node.stop() == 0
    took = time.time() - t0
    logs = node.logs("a")
    assert "polite: got TERM" in logs
    assert "stubborn (seed): was killed by signal 9" in logs
    assert 0.9 < took < 6


# ---- resources ----

def test_memory_limit_oom_kills_inside_only(nodes):
    proj = make_project({
        "hog": probe_instance(["seed-probe", "alloc", "2048"], size="xs"),
        "bystander": {"root": "rootfs", "processes": {"s": {"command": ["sleep", "1000"]}}},
    })
    node = nodes(proj)
    logs = node.wait_log("hog", "out-of-memory killer")
    assert "memory limit is 512 MiB" in logs
    assert "probe (seed): was killed by signal 9" in logs
    progress = [json.loads(l.split(": ", 1)[1]) for l in logs.splitlines() if '"alloc"' in l]
    assert max(p.get("mib", 0) for p in progress) < 512
    ps = node.ps()
    assert ps["bystander"]["state"] == "running"
    assert node.proc.poll() is None


def cpu_quota(node, name):
    """An instance's CPU quota per period, in microseconds of CPU per 100 ms (v1 or v2)."""
    ns = node.ps()[name]["namespace"]
    leaf = pathlib.Path("seed", node.cgroup_id(), f"{ns}-{name}")
    v2 = pathlib.Path("/sys/fs/cgroup") / leaf / "cpu.max"
    if v2.exists():
        q, period = v2.read_text().split()
        return int(q) * 100000 // int(period)
    v1 = pathlib.Path("/sys/fs/cgroup/cpu") / leaf
    return int((v1 / "cpu.cfs_quota_us").read_text()) * 100000 // int((v1 / "cpu.cfs_period_us").read_text())


def test_cpu_limit(nodes):
    proj = make_project({"c": probe_instance(["seed-probe", "cpu", "3"], size="xs"),
                         "m": probe_instance(["seed-probe", "cpu", "3"], size="m")})
    node = nodes(proj)
    node.wait_running("c", "m")
    # The quota each got (read while they run: 3 s): m's tier has twice c's vCPUs.
    quota = {n: cpu_quota(node, n) for n in ("c", "m")}
    assert quota["m"] == 2 * quota["c"] and quota["c"] > 0, quota
    xs = node.probe_json("c", "cpu")
    m = node.probe_json("m", "cpu")
    # Two spinning threads: 1 vCPU allows ~1 CPU-second per second. Only the bound is
    # measured: a busy machine can only lower what an instance gets, so comparing two
    # instances' measured shares (as this test once did) failed whenever something else ran.
    assert xs["cpu"] / xs["wall"] < 1.25
    assert m["cpu"] > 0


def test_pids_limit_holds_a_fork_bomb(nodes):
    proj = make_project({"bomb": probe_instance(["seed-probe", "forkbomb"], size="xs"),
                         "bystander": {"root": "rootfs", "processes": {"s": {"command": ["sleep", "1000"]}}}})
    node = nodes(proj)
    r = node.probe_json("bomb", "forkbomb", timeout=60)
    assert r["errno"] == 11  # EAGAIN from the pids controller
    assert 100 < r["forked"] < 1024
    assert node.ps()["bystander"]["state"] == "running"


# ---- network ----

def test_connect_env_files_and_run_seed_env(nodes):
    proj = make_project({
        "api": probe_instance(["sh", "-c", "seed-probe report; sleep 1000"],
                              connect={"db": "seed-db", "my-cache": {"service": "seed-cache", "port": 6379}},
                              env={"MODE": "test"}),
        "db": {"root": "rootfs"}, "cache": {"root": "rootfs"}})
    node = nodes(proj)
    rep = node.probe_json("api", "report")
    assert rep["env"]["SEED_DB_HOST"] == "seed-db"
    assert rep["env"]["SEED_MY_CACHE_HOST"] == "seed-cache"
    assert rep["env"]["MODE"] == "test"
    assert rep["env"]["SEED_INSTANCE"] == "api"
    assert rep["connect_files"] == {"db": "seed-db", "my-cache": "seed-cache:6379"}
    env = rep["run_seed_env"]
    assert "SEED_DB_HOST='seed-db'\n" in env and "MODE='test'\n" in env


def test_many_connect_entries_all_arrive(nodes):
    """Every connect entry gets its file, however many there are."""
    connect = {f"svc{i}": f"seed-svc{i}" for i in range(100)}
    proj = make_project({"api": probe_instance(["sh", "-c", "seed-probe report; sleep 1000"], connect=connect)})
    node = nodes(proj)
    rep = node.probe_json("api", "report")
    assert rep["connect_files"] == connect
    assert rep["env"]["SEED_SVC99_HOST"] == "seed-svc99"


def test_name_resolution_between_instances(nodes):
    proj = make_project({
        "web": {"root": "rootfs", "expose": {"http": 8080},
                "processes": {"s": {"command": ["seed-probe", "serve", "8080"]}}},
        "api": {"root": "rootfs", "processes": {"c": {"command": ["sh", "-c",
            "sleep 0.5; for h in seed-web web; do echo \"$h: $(wget -q -O - http://$h:8080/)\"; done; "
            "seed-probe report; sleep 1000"]}}}})
    node = nodes(proj)
    ps = node.wait_running("web", "api")
    logs = node.wait_log("api", "web: probe 8080")
    assert "c: seed-web: probe 8080" in logs and "c: web: probe 8080" in logs
    hosts = node.probe_json("api", "report")["hosts"]
    for name in ("web", "api"):
        assert f"{ps[name]['address']}\tseed-{name} {name}\n" in hosts


def test_unexposed_ports_are_unreachable(nodes):
    proj = make_project({
        "web": {"root": "rootfs", "expose": {"http": 8080},
                "processes": {"s": {"command": ["seed-probe", "serve", "8080", "9090"]}}},
        "peer": {"root": "rootfs", "processes": {"c": {"command": ["sh", "-c",
            "sleep 0.5; seed-probe connect $(grep seed-web /etc/hosts | cut -f1) 8080; "
            "seed-probe connect $(grep seed-web /etc/hosts | cut -f1) 9090; sleep 1000"]}}}})
    node = nodes(proj)
    node.wait_running("web", "peer")
    assert node.wait(lambda: node.http(8080), what="exposed port") == "probe 8080\n"
    r = node.netns_run("curl", "-s", "-m", "2", "http://127.0.0.1:9090/")
    assert r.returncode != 0   # nothing listens on the node's address
    web_ip = node.ps()["web"]["address"]
    logs = node.wait_log("peer", '"port":9090')
    results = {json.loads(l.split(": ", 1)[1])["port"]: json.loads(l.split(": ", 1)[1])["result"]
               for l in logs.splitlines() if '"connect"' in l}
    assert results[8080] == "ok"
    assert results[9090] != "ok"     # dropped by the instance's inbound filter
    assert web_ip


def test_dns_expose_publishes_tcp_and_udp(nodes):
    proj = make_project({"d": {"root": "rootfs", "expose": {"dns": {"port": 5353, "protocol": "dns"}},
                               "processes": {"udp": {"command": ["seed-probe", "udpecho", "5353"]},
                                             "tcp": {"command": ["seed-probe", "serve", "5353"]}}}})
    node = nodes(proj)
    node.wait_log("d", '"listening":5353')
    assert node.wait(lambda: node.http(5353), what="tcp side") == "probe 5353\n"
    code = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(2)\n"
            "for i in range(3):\n    s.sendto(b'ping %d' % i, ('127.0.0.1', 5353))\n"
            "    print(s.recvfrom(100)[0].decode())\n")
    r = node.netns_run("/usr/bin/python3", "-c", code)
    assert r.stdout.splitlines() == ["echo ping 0", "echo ping 1", "echo ping 2"], r.stderr


# ---- isolation ----

def test_isolation_from_inside(nodes):
    proj = make_project({"iso": probe_instance(["sh", "-c", "seed-probe report; sleep 1000"])})
    node = nodes(proj)
    rep = node.probe_json("iso", "report")
    a = rep["attempts"]
    # identity: root inside, an unprivileged range outside
    assert rep["uid"] == 0 and rep["gid"] == 0
    start, outside, count = map(int, rep["uid_map"].split())
    assert start == 0 and outside >= ID_BASE and count == 65536
    assert rep["hostname"] == "iso"
    # processes: only the instance's own
    comms = sorted(p.split(":", 1)[1] for p in rep["processes"])
    assert rep["pid1"].strip() == "seed-init"
    assert set(comms) <= {"seed-init", "sh", "seed-probe", "sleep"}
    # capabilities and filters
    assert int(rep["CapEff"], 16) == int(rep["CapBnd"], 16) == 0x4fb
    assert int(rep["CapInh"], 16) == 0 and int(rep["CapAmb"], 16) == 0
    assert rep["NoNewPrivs"] == "1" and rep["Seccomp"] == "2"
    for op in ("mount_tmpfs", "umount_proc", "unshare_user", "unshare_mount", "unshare_net", "setns",
               "init_module", "finit_module", "delete_module", "kexec_load", "raw_socket", "packet_socket",
               "bpf", "perf_event_open", "keyctl", "add_key", "userfaultfd", "io_uring_setup",
               "open_by_handle_at", "pivot_root", "chroot", "sethostname", "clock_settime", "reboot",
               "swapon", "syslog", "clone_newuser", "mknod_char"):
        assert a[op] in ("EPERM", "ENOSYS"), (op, a[op])
    assert a["tcp_socket"] == "ok"
    # files: the payload and root are read-only, /tmp is not; host files are absent
    for op in ("write_root", "write_etc", "write_bin"):
        assert a[op] == "EROFS", (op, a[op])
    assert a["write_tmp"] == "ok"
    assert a["write_sys"] in ("EROFS", "EACCES", "ENOENT")
    assert a["write_proc_sys"] != "ok"
    assert a["write_sysrq"] != "ok"
    assert a["read_shadow"] == "ENOENT"
    assert a["stat_root_home"] == "ENOENT" and a["stat_home"] == "ENOENT" and a["stat_var"] == "ENOENT"
    assert a["kcore_hidden"] == "ok"
    # network: loopback and the instance's own link only
    assert sorted(rep["interfaces"]) == ["eth0", "lo"]
    mounts = " ".join(rep["mounts"])
    assert "/work" not in mounts and str(node.state) not in mounts
    # outside: the probe's process runs as the mapped uid, not root
    pids = host_pids_with_uid_at_least(ID_BASE)
    assert pids and all(int(pathlib.Path(f"/proc/{p}/status").read_text().split("Uid:")[1].split()[0])
                        == outside for p in pids)


def test_host_root_view(nodes):
    proj = make_project({"h": {"root": "host", "processes": {"look": {"restart": "no", "command": [
        "sh", "-c",
        "echo ROOT $(ls /); echo ETC $(ls /etc); "
        "cat /etc/shadow 2>/dev/null && echo SHADOW-READABLE; "
        "ls /root /home /var 2>/dev/null && echo PRIVATE-VISIBLE; "
        "touch /usr/probe 2>&1; touch /etc/probe 2>&1; touch /tmp/ok && echo TMP-WRITABLE; "
        "busybox --help >/dev/null && echo USR-RUNS; echo PASSWD $(cut -d: -f1 /etc/passwd | tr '\\n' ' ')"]}}}},
        rootfs=False)
    node = nodes(proj)
    logs = node.wait_log("h", "PASSWD")
    root = re.search(r"look: ROOT (.*)$", logs, re.M).group(1).split()
    assert {"usr", "bin", "etc", "proc", "dev", "tmp", "sys", "run"} <= set(root)
    assert not {"root", "home", "var", "work", "srv", "opt", "boot", "mnt"} & set(root)
    etc = re.search(r"look: ETC (.*)$", logs, re.M).group(1).split()
    assert "shadow" not in etc and "passwd" in etc and "ld.so.cache" in etc
    assert "SHADOW-READABLE" not in logs and "PRIVATE-VISIBLE" not in logs
    assert "Read-only file system" in logs  # /usr and /etc
    assert "TMP-WRITABLE" in logs and "USR-RUNS" in logs
    users = re.search(r"look: PASSWD (.*)$", logs, re.M).group(1).split()
    assert "root" in users and all(u != "" for u in users)


def test_nothing_left_after_stop(nodes):
    proj = make_project(write_then_serve())
    node = nodes(proj)
    node.wait_running("web")
    node.wait(lambda: node.http(8080), what="page")
    assert node.stop() == 0
    assert "node stopped" in node.output()
    assert host_pids_with_uid_at_least(ID_BASE) == []
    assert str(node.state) not in run(["losetup", "-a"]).stdout
    assert str(node.state) not in run(["findmnt", "-rn"]).stdout
    assert node.cgroup_dirs() == []
    links = run(["ip", "-n", node.netns, "-o", "link"]).stdout
    assert [l.split(":")[1].strip() for l in links.splitlines()] == ["lo"]
    assert not (node.state / "seed.sock").exists()


# ---- egress ----

def outside_listener(node):
    """A TCP listener at 192.0.2.1:7777 in the test's namespace (on a veth of its own):
    an address outside the node that only egress can reach."""
    ns = node.netns
    run(["ip", "-n", ns, "link", "add", "ext0", "type", "veth", "peer", "name", "ext1"]).check_returncode()
    run(["ip", "-n", ns, "addr", "add", "192.0.2.1/24", "dev", "ext0"]).check_returncode()
    run(["ip", "-n", ns, "link", "set", "ext0", "up"]).check_returncode()
    return subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", "/usr/bin/python3", "-c",
                             "import socket\ns = socket.create_server(('192.0.2.1', 7777))\n"
                             "while True:\n    s.accept()[0].close()\n"])


@pytest.mark.parametrize("egress", [False, True], ids=["no-egress", "egress"])
def test_outbound_only_with_egress(nodes, egress):
    proj = make_project({"out": probe_instance(
        ["sh", "-c", "sleep 0.5; seed-probe connect 192.0.2.1 7777; sleep 1000"])})
    node = nodes(proj, *(["--egress"] if egress else []))
    listener = outside_listener(node)
    try:
        r = node.probe_json("out", "connect")
        assert (r["result"] == "ok") == egress, r
        fwd_before = "1" if egress else None
        assert node.stop() == 0
        links = run(["ip", "-n", node.netns, "-o", "link"]).stdout
        assert "seedh-" not in links
        rules = run(["nsenter", f"--net=/run/netns/{node.netns}", "nft", "list", "ruleset"]).stdout
        assert "seed-" not in rules
        if fwd_before:
            fwd = run(["nsenter", f"--net=/run/netns/{node.netns}", "cat", "/proc/sys/net/ipv4/ip_forward"])
            assert fwd.stdout.strip() == "0"   # restored to what the namespace had
    finally:
        listener.kill()
        listener.wait()
