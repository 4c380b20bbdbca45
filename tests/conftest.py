from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


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
