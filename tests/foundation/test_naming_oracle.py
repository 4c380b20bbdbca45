"""Differential test: naming against KubeVirt's recorded namescheme vectors."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from netbind import naming
from netbind.api.models import InterfaceStatus, Network


@pytest.fixture(scope="module")
def vectors(oracle_dir):
    return json.loads((oracle_dir / "namescheme.json").read_text())


def test_per_network_name(vectors):
    assert len(vectors["per_network_name"]) == 43
    for case in vectors["per_network_name"]:
        assert naming.hashed_interface_name(case["network_name"]) == case["hashed_pod_iface_name"]
        for role in ("as_secondary_multus_network", "as_pod_network", "as_multus_default_network"):
            d = case[role]
            net = Network.model_validate(d["network"])
            pod_iface = naming.hashed_pod_interface_name(net)
            assert pod_iface == d["hashed_pod_interface_name"], (case["network_name"], role)
            assert naming.tap_name(pod_iface, net) == d["tap_device_name"]
            assert naming.bridge_name(pod_iface) == d["bridge_name"]
            assert naming.renamed_pod_nic_name(pod_iface) == d["new_bridged_vmi_iface_name"]


def test_ordinal_name_detection(vectors):
    for case in vectors["ordinal_secondary_interface_name"]:
        assert naming.is_ordinal_interface_name(case["name"]) == case["ordinal_secondary_interface_name"], case


def test_scenarios(vectors):
    assert len(vectors["scenarios"]) == 15
    for s in vectors["scenarios"]:
        nets = [Network.model_validate(n) for n in s["networks"]]
        statuses = [InterfaceStatus.model_validate(x) for x in s.get("interface_statuses", [])]
        hashed = naming.hashed_scheme(nets)
        ordinal = naming.ordinal_scheme(nets)
        assert hashed == s["create_hashed_network_name_scheme"], s["name"]
        assert ordinal == s["create_ordinal_network_name_scheme"], s["name"]
        assert ordinal == s["ordinal_pod_interface_name"], s["name"]
        assert {n.name: naming.hashed_pod_interface_name(n, statuses) for n in nets} == s["hashed_pod_interface_name"]
        by_name = {n.name: n for n in nets}
        assert {k: naming.tap_name(v, by_name[k]) for k, v in hashed.items()} == s["tap_device_name_from_hashed"]
        assert {k: naming.tap_name(v, by_name[k]) for k, v in ordinal.items()} == s["tap_device_name_from_ordinal"]
        pod_statuses = s.get("pod_network_statuses", [])
        assert naming.scheme_from_network_statuses(nets, pod_statuses) == s["create_from_network_statuses"]
        assert naming.pod_has_ordinal_interface_name(pod_statuses) == s["pod_has_ordinal_interface_name"]
        assert naming.with_primary_from_status(hashed, nets, statuses) == s["update_primary_pod_iface_name_from_vmi_status"]
        assert naming.has_ordinal_secondary_interfaces(nets, statuses) == s["has_ordinal_secondary_ifaces"], s["name"]


@given(st.text(min_size=0, max_size=300))
def test_hashed_names_fit_the_kernel_limit(name):
    pod_iface = naming.hashed_interface_name(name)
    assert len(pod_iface) == 14 and pod_iface.startswith("pod")
    int(pod_iface[3:], 16)
    # derived names stay within IFNAMSIZ-1 (15)
    net = Network(name=name or "x", multus={"networkName": "n"})
    assert len(naming.tap_name(pod_iface, net)) <= 15
    assert len(naming.bridge_name(pod_iface)) <= 15
    assert len(naming.renamed_pod_nic_name(pod_iface)) <= 15


@given(st.lists(st.sampled_from(["pod", "multus", "default"]), max_size=12))
def test_ordinal_names_count_secondaries_only(kinds):
    nets = []
    for i, kind in enumerate(kinds):
        src = {"pod": {"pod": {}}, "multus": {"multus": {"networkName": "n"}},
               "default": {"multus": {"networkName": "n", "default": True}}}[kind]
        nets.append(Network.model_validate({"name": f"n{i}", **src}))
    scheme = naming.ordinal_scheme(nets)
    secondaries = [n.name for n in nets if n.is_secondary_multus]
    assert [scheme[n] for n in secondaries] == [f"net{k}" for k in range(1, len(secondaries) + 1)]
    assert all(scheme[n.name] == "eth0" for n in nets if n.is_primary)
