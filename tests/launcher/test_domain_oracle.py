"""Domain attachment against the vectors recorded from real KubeVirt (main and v1.4.1, plus v1.4.0 deltas).

Byte equality everywhere: the converter's interfaces, the link names phase 2 asks for (in order), the
interfaces after phase 2, and the whole domain as KubeVirt hands it to the first sidecar.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from netbind.api.models import KubeVirtConfiguration, VirtualMachineInstance
from netbind.api.versions import LATEST, V1_4, V1_4_0
from netbind.launcher.domain import (
    DomainAttachmentError, PodLink, build_domain, converter_interfaces, interface_xml,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
MAIN = sorted((SHARED / "oracle" / "domain").glob("*.json"))
V14 = sorted((SHARED / "oracle-v1.4" / "domain").glob("*.json"))
CASES = [(p, LATEST) for p in MAIN] + [(p, V1_4) for p in V14]


def _inputs(case: dict):
    vmi = VirtualMachineInstance.model_validate(case["vmi"])
    config = KubeVirtConfiguration.model_validate(case["kubevirt_config"])
    links = [PodLink(**link) for link in case["pod_links"]]
    return vmi, config, links, case["converter_context"]["UseLaunchSecuritySEV"]


def _run(case: dict, profile):
    """(result, error): the result is the partial domain when phase 2 fails."""
    vmi, config, links, sev = _inputs(case)
    try:
        return build_domain(vmi, config, links, profile=profile, sev=sev), None
    except DomainAttachmentError as err:
        return err.partial, err


def test_all_vectors_present():
    assert len(MAIN) == 13 and len(V14) == 18, "the oracle folders changed: update this test"


@pytest.mark.parametrize("path,profile", CASES, ids=[f"{pr.name}/{p.stem}" for p, pr in CASES])
def test_domain_vector(path, profile):
    case = json.loads(path.read_text())
    vmi, config, _, sev = _inputs(case)

    phase1 = [interface_xml(el) for el in converter_interfaces(vmi, config, profile=profile, sev=sev)]
    assert phase1 == case["converter_interfaces_xml"]

    result, error = _run(case, profile)
    assert result.link_lookups == (case["phase2_link_lookups"] or [])
    if "phase2_panic" in case or "phase2_error" in case:
        assert error is not None, "KubeVirt failed here; we must raise DomainAttachmentError"
        assert error.panics == ("phase2_panic" in case)
        assert error.link_lookups == result.link_lookups
        assert error.kubevirt and str(error)
    else:
        assert error is None, str(error)
    assert result.interfaces_xml == case["interfaces_xml"]
    assert result.domain_xml == case["domain_xml"]
    assert result.uncovered == []


def test_v140_deltas_reproduced():
    deltas = json.loads((SHARED / "oracle-v1.4" / "v1.4.0-deltas.json").read_text())["domain"]
    assert deltas, "no v1.4.0 domain deltas recorded"
    checked = 0
    for path in V14:
        case = json.loads(path.read_text())
        v141, _ = _run(case, V1_4)
        v140, _ = _run(case, V1_4_0)
        delta = deltas.get(path.stem, {})
        for name in ("phase2_link_lookups", "interfaces_xml", "domain_xml"):
            got = {"phase2_link_lookups": v140.link_lookups, "interfaces_xml": v140.interfaces_xml,
                   "domain_xml": v140.domain_xml}[name]
            if name in delta:
                assert got == delta[name]["v1.4.0"], (path.stem, name)
                checked += 1
            else:  # everything not listed is identical between v1.4.0 and v1.4.1
                assert got == {"phase2_link_lookups": v141.link_lookups, "interfaces_xml": v141.interfaces_xml,
                               "domain_xml": v141.domain_xml}[name], (path.stem, name)
    assert checked == sum(len(v) for v in deltas.values())
