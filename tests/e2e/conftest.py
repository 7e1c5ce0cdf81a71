"""Shared fixtures for the end-to-end tests: where the built binaries are.

SEED_BUILD (default ./build) is the plain build; SEED_ASAN_BUILD, when set and built,
adds the AddressSanitizer + UndefinedBehaviorSanitizer build, and tests that take the
`seed` fixture run against both.
"""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _builds():
    builds = [("plain", pathlib.Path(os.environ.get("SEED_BUILD", ROOT / "build")))]
    asan = os.environ.get("SEED_ASAN_BUILD")
    if asan and (pathlib.Path(asan) / "src" / "seed").exists():
        builds.append(("asan", pathlib.Path(asan)))
    return builds


@pytest.fixture(params=_builds(), ids=lambda b: b[0])
def seed(request):
    """Path of a `seed` binary (each build in turn)."""
    path = request.param[1] / "src" / "seed"
    if not path.exists():
        pytest.fail(f"{path} is not built; run `make build` first")
    return str(path)


@pytest.fixture
def seed_plain():
    path = _builds()[0][1] / "src" / "seed"
    if not path.exists():
        pytest.fail(f"{path} is not built; run `make build` first")
    return str(path)


def run(cmd, **kw):
    """Run a command and return the CompletedProcess (text mode, no check)."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    kw.setdefault("timeout", 60)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, **kw)


@pytest.fixture(autouse=True, scope="session")
def _private_cache():
    """seed's caches (image layers, registry mounts) go to a directory of the test run's
    own, not to the home directory of whoever runs the tests."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="seed-e2e-cache-")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = d
    # skopeo and podman, run as root, keep a blob cache in /var/lib/containers/cache
    # whatever they are told: if the run made that directory, the run removes it.
    containers = "/var/lib/containers"
    had_containers = os.path.exists(containers)
    yield d
    if not had_containers:
        shutil.rmtree(containers, ignore_errors=True)
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(autouse=True)
def _remove_workdirs():
    """Projects and state directories made by a test go when it ends."""
    yield
    import seedtest
    seedtest.remove_workdirs()


@pytest.fixture
def nodes():
    """Start nodes (seedtest.Node, each in a network namespace of its own); all are
    stopped and their namespaces removed when the test ends."""
    from seedtest import Node
    made = []

    def start(project, *args, **kw):
        n = Node(project, *args, **kw)
        made.append(n)
        return n
    yield start
    for n in made:
        n.close()
