from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
# The suite boots the tiny guest (seconds) for every containerDisk; the tests of the cloud guest
# (tests/guests) ask for it by name.
os.environ.setdefault("NETBIND_GUEST", "tiny")


def pytest_sessionstart(session: pytest.Session) -> None:
    # the recorded KubeVirt vectors are the backbone of the suite: without them, say so once
    if not (SHARED / "oracle").is_dir():
        raise pytest.UsageError(
            f"{SHARED}/oracle is missing: the suite needs the shared folder (oracle vectors) "
            "beside the checkout, as CI lays it out (../shared)")


def _shared_dir(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.fail(f"{path} is missing: the oracle vectors sit beside the checkout in ../shared/")
    return path


@pytest.fixture(scope="session")
def oracle_dir() -> Path:
    return _shared_dir("oracle")


@pytest.fixture(scope="session")
def oracle14_dir() -> Path:
    return _shared_dir("oracle-v1.4")


@pytest.fixture(scope="session")
def built_images():
    """netbind's images (sidecars, CNI installer), built once per run (kept between runs while their inputs hold).
    Not the cloud guest's containerDisk: it needs the cloud guest built (minutes), and the tests that use
    it (tests/guests) build it themselves."""
    from netbind import images
    from netbind.testing import require_podman

    require_podman()
    try:
        return {b.name: b for b in images.ensure(["passt", "bridge", "cni"])}
    except (images.ImageBuildError, images.BaseImageError) as exc:
        pytest.fail(f"building the images failed: {exc}", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _sidecars_as_processes():
    """The runtime suites run hook sidecars as host processes, whatever images an earlier test built
    (the default, auto, would switch on their presence); tests/node/test_up_containers.py and the
    container drill of tests/node/test_crash.py run them as containers explicitly. NETBIND_SIDECARS
    set by the caller wins."""
    import os

    before = os.environ.get("NETBIND_SIDECARS")
    os.environ.setdefault("NETBIND_SIDECARS", "process")
    yield
    if before is None:
        os.environ.pop("NETBIND_SIDECARS", None)
