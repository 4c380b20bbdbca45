"""Differential tests: every admission vector recorded from real KubeVirt (main and v1.4.1)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from netbind.admission import (
    admit_vmi_create,
    validate_network,
    validate_network_creation,
    validate_network_spec,
)
from netbind.api.models import KubeVirtConfiguration, VirtualMachineInstance
from netbind.api.versions import LATEST, V1_4

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CASES = [
    pytest.param(path, profile, id=f"{profile.name}/{path.stem}")
    for folder, profile in (("oracle", LATEST), ("oracle-v1.4", V1_4))
    for path in sorted((SHARED / folder / "admission").glob("*.json"))
]


def _load(path: Path):
    case = json.loads(path.read_text())
    vmi = VirtualMachineInstance.model_validate(case["vmi"])
    config = KubeVirtConfiguration.model_validate(case["kubevirt_config"])
    return case, vmi, config


def _json(causes):
    return [c.to_json() for c in causes]


def test_every_vector_is_collected(oracle_dir, oracle14_dir):
    assert len(list((oracle_dir / "admission").glob("*.json"))) >= 42
    assert len(list((oracle14_dir / "admission").glob("*.json"))) >= 60
    assert len(CASES) >= 102


@pytest.mark.parametrize(("path", "profile"), CASES)
def test_network_admitter_causes(path, profile):
    case, vmi, config = _load(path)
    assert _json(validate_network(vmi.spec, config, profile=profile)) == case["causes"]
    assert _json(validate_network_creation(vmi.spec, config, profile=profile)) == case["creation_only_causes"]
    assert _json(validate_network_spec(vmi.spec, config, profile=profile)) == case["spec_only_causes"]


@pytest.mark.parametrize(("path", "profile"), CASES)
def test_vmi_create_webhook_answer(path, profile):
    case, _, config = _load(path)
    assert admit_vmi_create(case["vmi"], config, profile=profile) == case["vmi_create_admitter"]
