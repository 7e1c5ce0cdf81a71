#!/usr/bin/python3
"""Boot a QEMU guest with a stock cgroup v2 hierarchy and run pytest in it.

The guest is Debian's generic kernel (extracted by scripts/vm/deps.sh, never installed)
with a tiny initramfs built here: busybox, the modules virtio-9p needs, two init
scripts (scripts/vm/init, scripts/vm/stage2) and a few /etc files. The host shares
over virtio-9p: /usr (read-only), the worktree (read-only, /src), the seed build
(read-only, /seed-build), the kernel's module tree (read-only) and a scratch
directory (read-write, /out) where the guest leaves pytest's JUnit XML and exit status.

The guest's serial console is streamed to stdout. The run is bounded by --timeout;
QEMU (started here, killed by its PID) never outlives this script. Exit status 0 when
every test passed, 1 otherwise; the JUnit XML (or, when the guest produced none, one
failed test case saying why) goes to --junit.
"""
import argparse
import lzma
import os
import pathlib
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BUSYBOX = "/bin/busybox"
# What mounting a virtio-9p share needs (their dependencies come from modules.dep).
BOOT_MODULES = ["virtio_pci", "9pnet_virtio", "9p"]
ETC_FILES = ["passwd", "group", "nsswitch.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
             "mke2fs.conf", "alternatives", "protocols", "services", "netconfig"]
CMDLINE = ("console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init cgroup_no_v1=all "
           "mitigations=off tsc=reliable no_timer_check i8042.nopnp i8042.noaux i8042.nokbd "
           "random.trust_cpu=on")


class Cpio:
    """A newc cpio archive (what the kernel unpacks as an initramfs)."""

    def __init__(self, path):
        self.f = open(path, "wb")
        self.ino = 1

    def _entry(self, name, mode, data=b""):
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0))
        self.ino += 1
        self.f.write(hdr.encode() + name.encode() + b"\0")
        self.f.write(b"\0" * (-(110 + len(name) + 1) % 4))
        self.f.write(data)
        self.f.write(b"\0" * (-len(data) % 4))

    def dir(self, name, mode=0o755):
        self._entry(name, stat.S_IFDIR | mode)

    def file(self, name, data, mode=0o644):
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def tree(self, name, src):
        """Copy a host file, symlink or directory (recursively)."""
        st = os.lstat(src)
        if stat.S_ISLNK(st.st_mode):
            self.symlink(name, os.readlink(src))
        elif stat.S_ISDIR(st.st_mode):
            self.dir(name, stat.S_IMODE(st.st_mode))
            for child in sorted(os.listdir(src)):
                self.tree(f"{name}/{child}", os.path.join(src, child))
        elif stat.S_ISREG(st.st_mode):
            self.file(name, pathlib.Path(src).read_bytes(), stat.S_IMODE(st.st_mode))

    def close(self):
        self._entry("TRAILER!!!", 0)
        self.f.close()


def module_order(moddir, wanted):
    """Module files for `wanted` and their dependencies, dependencies first."""
    deps = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    by_name = {}
    for mod in deps:
        base = pathlib.Path(mod).name.split(".ko")[0]
        by_name[base.replace("-", "_")] = mod
    order = []

    def visit(mod):
        if mod in order:
            return
        for d in deps[mod]:
            visit(d)
        order.append(mod)
    for w in wanted:
        mod = by_name.get(w)
        if mod is None:
            builtin = (moddir / "modules.builtin").read_text()
            if f"/{w}.ko" in builtin:
                continue
            raise SystemExit(f"check-vm: module {w} is neither in {moddir}/modules.dep nor built in")
        visit(mod)
    return order


def module_bytes(path):
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    return data


def merged_usr_links():
    """The host's /bin, /lib, ... -> usr/... links, to recreate in the guest root."""
    links = []
    for e in sorted(os.listdir("/")):
        p = os.path.join("/", e)
        if os.path.islink(p) and os.readlink(p).lstrip("/").startswith("usr/"):
            links.append(f"{e} {os.readlink(p).lstrip('/')}")
    return "\n".join(links) + "\n"


def build_initramfs(path, kernel_dir, version, pytest_args):
    moddir = kernel_dir / "lib" / "modules" / version
    c = Cpio(path)
    for d in ["bin", "proc", "sys", "dev", "newroot", "modules", "vm", "etc"]:
        c.dir(d)
    c.file("bin/busybox", pathlib.Path(BUSYBOX).read_bytes(), 0o755)
    c.file("init", (HERE / "init").read_bytes(), 0o755)
    c.file("vm/stage2", (HERE / "stage2").read_bytes(), 0o644)
    c.file("vm/pytest-args", (" ".join(pytest_args) + "\n").encode())
    c.file("merged-usr", merged_usr_links().encode())
    names = []
    for mod in module_order(moddir, BOOT_MODULES):
        name = pathlib.Path(mod).name.split(".ko")[0] + ".ko"
        c.file(f"modules/{name}", module_bytes(moddir / mod))
        names.append(name)
    c.file("modules/order", ("\n".join(names) + "\n").encode())
    for e in ETC_FILES:
        if os.path.lexists(f"/etc/{e}"):
            c.tree(f"etc/{e}", f"/etc/{e}")
    c.file("etc/hosts", b"127.0.0.1 localhost seed-vm\n::1 localhost\n")
    c.file("etc/hostname", b"seed-vm\n")
    c.file("etc/resolv.conf", b"")
    c.close()


def write_failure_junit(path, name, message, output):
    suite = ET.Element("testsuite", name="check-vm", tests="1", failures="1", errors="0", skipped="0")
    case = ET.SubElement(suite, "testcase", classname="check-vm", name=name)
    ET.SubElement(case, "failure", message=message).text = output
    ET.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)


def beside(path, suffix):
    """path with `suffix` added before its extension: vm.xml -> vm-run.xml."""
    p = pathlib.Path(path)
    return str(p.with_name(p.stem + suffix + p.suffix))


def junit_counts(path):
    root = ET.parse(path).getroot()
    passed = failed = skipped = 0
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True, help="seed build directory (shared read-only)")
    ap.add_argument("--kernel", required=True, help="extracted kernel package (scripts/vm/deps.sh)")
    ap.add_argument("--junit", required=True, help="where the JUnit XML of the run goes")
    ap.add_argument("--timeout", type=float, default=420, help="seconds for the whole run")
    ap.add_argument("--memory", default="2560M")
    ap.add_argument("--smp", default="2")
    ap.add_argument("--accel", default="tcg,thread=multi", help="QEMU's -accel (kvm where it works)")
    ap.add_argument("pytest_args", nargs="*", default=["-q", "tests/vm"])
    a = ap.parse_args()

    kernel_dir = pathlib.Path(a.kernel).resolve()
    build = pathlib.Path(a.build).resolve()
    vmlinuz = sorted((kernel_dir / "boot").glob("vmlinuz-*"))
    if not vmlinuz:
        raise SystemExit(f"check-vm: no vmlinuz-* in {kernel_dir}/boot")
    version = vmlinuz[-1].name[len("vmlinuz-"):]
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        raise SystemExit("check-vm: qemu-system-x86_64 is not installed")

    # SIGTERM/SIGHUP end this script through `finally`, which stops QEMU.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    # Initramfs and the guest's writable share: under the build, never in the host's /tmp.
    (build / "vm").mkdir(exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="run-", dir=build / "vm"))
    proc = None
    try:
        initrd = tmp / "initrd.cpio"
        build_initramfs(initrd, kernel_dir, version, a.pytest_args)
        out = tmp / "out"
        out.mkdir()
        shares = [("usr", "/usr", True), ("src", str(ROOT), True), ("build", str(build), True),
                  ("kernel", str(kernel_dir), True), ("out", str(out), False)]
        # qboot: no BIOS to run through, the kernel starts at once (SeaBIOS otherwise).
        bios = ["-bios", "qboot.rom"] if pathlib.Path("/usr/share/qemu/qboot.rom").exists() else []
        cmd = [qemu, "-M", "pc", *bios, "-accel", a.accel, "-cpu", "max", "-smp", a.smp,
               "-m", a.memory, "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
               "-monitor", "none", "-no-reboot", "-kernel", str(vmlinuz[-1]), "-initrd", str(initrd),
               "-append", CMDLINE]
        for tag, path, ro in shares:
            cmd += ["-fsdev", f"local,id={tag},path={path},security_model=none" + (",readonly=on" if ro else ""),
                    "-device", f"virtio-9p-pci,fsdev={tag},mount_tag={tag}"]
        start = time.monotonic()
        deadline = start + a.timeout
        console = []
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        buf = b""
        timed_out = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if not sel.select(min(left, 1.0)):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace").rstrip("\r")
                console.append(line)
                print(line, flush=True)
        if not timed_out:
            try:   # the console closed: QEMU is exiting
                proc.wait(timeout=max(5.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        if timed_out:
            proc.kill()
        proc.wait()
        elapsed = time.monotonic() - start
        if buf:
            console.append(buf.decode("utf-8", "replace"))

        status = (out / "status").read_text().strip() if (out / "status").exists() else None
        junit = out / "junit.xml"
        tail = "\n".join(console[-60:])
        if timed_out:
            why = f"the guest did not finish within {a.timeout:.0f} s (QEMU killed)"
        elif (out / "fatal").exists():
            why = "the guest could not start the suite: " + (out / "fatal").read_text().strip()
        elif status is None:
            why = f"the guest stopped without a result (QEMU exit status {proc.returncode})"
        elif not junit.exists():
            why = f"pytest exited {status} without a JUnit report"
        else:
            why = None
        if why:
            # Keep whatever tests did report, and count the broken run as one failure.
            if junit.exists():
                shutil.copy(junit, a.junit)
                write_failure_junit(beside(a.junit, "-run"), "run", why, tail)
            else:
                write_failure_junit(a.junit, "run", why, tail)
            print(f"check-vm: FAILED: {why} ({elapsed:.0f} s)", flush=True)
            return 1
        shutil.copy(junit, a.junit)
        passed, failed, skipped = junit_counts(junit)
        if (status != "0" or passed == 0) and failed == 0:
            # Nothing failed, yet the run is no success: pytest broke, or every test
            # skipped itself (the guest was not the cgroup v2-only host it should be).
            write_failure_junit(beside(a.junit, "-run"), "run",
                                f"pytest exited {status} with {passed} passed", tail)
            failed = 1
        print(f"check-vm: {passed} passed, {failed} failed, {skipped} skipped in the guest "
              f"(kernel {version}, cgroup v2; {elapsed:.0f} s)", flush=True)
        return 0 if failed == 0 else 1
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
