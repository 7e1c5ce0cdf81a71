"""What the benchmark scripts share: running commands, a network namespace of their
own, the OCI bundle the crun/runc peers run, and the private mount namespace those
peers need on this host."""
import json
import pathlib
import subprocess
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]

# crun and runc refuse this host's hybrid cgroup layout (v1 controllers plus an empty
# cgroup2 at /sys/fs/cgroup/unified): run them in a private mount namespace where
# that mount is hidden. Use as ["unshare", "-m", "sh", "-c", MASK_CGROUP2, NAME, cmd...].
MASK_CGROUP2 = 'mount -t tmpfs none /sys/fs/cgroup/unified && exec "$@"'


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, check=check, **kw)


def masked_cgroup2(*cmd):
    """cmd in a private mount namespace that hides /sys/fs/cgroup/unified."""
    return ["unshare", "-m", "sh", "-c", MASK_CGROUP2, "cgroup-mask", *cmd]


class Netns:
    """A network namespace of the benchmark's own (lo up); never the host's."""

    def __init__(self):
        self.name = "seedb-" + uuid.uuid4().hex[:8]
        sh("ip", "netns", "add", self.name)
        sh("ip", "-n", self.name, "link", "set", "lo", "up")

    def cmd(self, *args):
        return ["nsenter", f"--net=/run/netns/{self.name}", *args]

    def close(self):
        sh("ip", "netns", "del", self.name, check=False)


def oci_bundle(path, rootfs, args, *, own_network=True, memory=1 << 30, cgroups_path=None):
    """An OCI bundle (crun's default spec) running args read-only on rootfs, in a user
    namespace mapped like seed's sandboxes, with cgroup limits like a size tier."""
    path.mkdir()
    sh("crun", "spec", cwd=path)
    c = json.loads((path / "config.json").read_text())
    c["root"] = {"path": str(rootfs), "readonly": True}
    c["process"]["terminal"] = False
    c["process"]["args"] = args
    ns = [n for n in c["linux"]["namespaces"] if own_network or n["type"] != "network"]
    ns.append({"type": "user"})
    if own_network:
        ns.append({"type": "cgroup"})
    c["linux"]["namespaces"] = ns
    c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0x71000000, "size": 65536}]
    c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0x71000000, "size": 65536}]
    if cgroups_path:
        c["linux"]["cgroupsPath"] = cgroups_path
    c["linux"]["resources"] = {"memory": {"limit": memory}, "pids": {"limit": 1024},
                               "cpu": {"quota": 100000, "period": 100000}}
    c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    (path / "config.json").write_text(json.dumps(c))
    return path
