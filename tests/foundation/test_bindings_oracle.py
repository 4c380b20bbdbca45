"""Registry lookups (attachment, migration method, migratability) against pod and domain vectors."""
from __future__ import annotations

import json

import pytest

from netbind import bindings
from netbind.api.models import KubeVirtConfiguration, VirtualMachineInstance
from netbind.api.versions import LATEST, V1_4


def _cases(root, sets):
    for name in sets:
        for path in sorted((root / name).glob("*.json")):
            yield path


@pytest.mark.parametrize("version", ["latest", "1.4"])
def test_registry_lookups(version, oracle_dir, oracle14_dir):
    root, profile = (oracle_dir, LATEST) if version == "latest" else (oracle14_dir, V1_4)
    checked = 0
    for path in _cases(root, ("pod", "domain")):
        case = json.loads(path.read_text())
        functions = case.get("functions", case)
        vmi = VirtualMachineInstance.model_validate(case["vmi"])
        config = KubeVirtConfiguration.model_validate(case["kubevirt_config"])
        assert bindings.domain_attachment_by_interface_name(vmi, config) == \
            functions["domain_attachment_by_interface_name"], path.name
        assert bindings.binding_migration_method_by_interface_name(vmi, config) == \
            functions["binding_migration_method_by_interface_name"], path.name
        result = bindings.verify_vmi_migratable(vmi, config, profile)
        expected = functions["verify_vmi_migratable"]
        assert result.migratable == expected["migratable"], path.name
        assert result.message == expected.get("error"), path.name
        checked += 1
    assert checked >= 26
