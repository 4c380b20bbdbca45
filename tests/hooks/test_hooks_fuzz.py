"""Hostile domain XML and VMI JSON for the reference sidecars (passt, bridge), through the SDK in
process and through a real sidecar process over gRPC: every call returns a domain or the SDK's
clear error; no entity or DTD is resolved (no file read, no URL fetched); the sidecar survives."""
from __future__ import annotations

import json
import sys

import pytest
from hypothesis import HealthCheck, given, settings

from netbind.hooks._app import HookError, InvalidInput
from netbind.launcher.hooks import HookClientError
from netbind.plugins.bridge.sidecar import app as bridge_app
from netbind.plugins.passt.sidecar import app as passt_app
from netbind.testing.fuzz import CANARY, URLTrap, hostile_domains, hostile_vmis, mutated_bytes
from conftest import SHARED  # noqa: E402

VECTOR = json.loads((SHARED / "oracle" / "passt-sidecar" / "01-basic-no-ports.json").read_text())
DOMAIN, VMI = VECTOR["input_domain_xml"].encode(), VECTOR["input_vmi_json"].encode()
APPS = {"passt": passt_app, "bridge": bridge_app}
FAST = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def trap():
    t = URLTrap()
    yield t
    t.close()


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    path = tmp_path_factory.mktemp("canary") / "secret"
    path.write_text(CANARY)
    return path


def define(app, domain: bytes, vmi: bytes):
    """The domain, or the error text of a refusal the SDK owns; anything else fails the test."""
    try:
        return app.define_domain(domain, vmi)
    except (HookError, InvalidInput) as exc:
        assert str(exc), "an error without a message"
        return exc


@pytest.mark.parametrize("name", sorted(APPS))
def test_hostile_domains_in_process(name, trap, canary):
    outcomes = {case: define(APPS[name], xml, VMI) for case, xml in hostile_domains(DOMAIN, canary, trap.url).items()}
    for case, out in outcomes.items():
        assert not (isinstance(out, bytes) and CANARY.encode() in out), case
    assert trap.connections == 0
    errors = {case: str(out) for case, out in outcomes.items() if not isinstance(out, bytes)}
    assert "Maximum entity amplification" in errors["billion laughs"]
    assert "over the limit of 4194304 bytes" in errors["16 MiB"]
    assert "must have a <domain> root element, found <{urn:netbind:evil}domain>" in errors["default namespace on the root"]
    assert "found <network>" in errors["other root"] and "is empty" in errors["empty"]
    assert "Invalid bytes in character encoding" in errors["invalid UTF-8"]
    assert "Excessive depth" in errors["nested 10,000 deep"]


@pytest.mark.parametrize("name", sorted(APPS))
def test_hostile_vmis_in_process(name):
    for case, vmi in hostile_vmis(VMI).items():
        for call in (lambda: define(APPS[name], DOMAIN, vmi), lambda: APPS[name].cloud_init(b"{}", vmi)):
            try:
                out = call()
            except HookError as exc:
                out = exc
            assert isinstance(out, (bytes, HookError, InvalidInput)), (case, out)
    assert "exceeded max depth" in str(define(passt_app, DOMAIN, b"[" * 100000 + b"]" * 100000))
    assert "invalid character 'N'" in str(define(passt_app, DOMAIN, VMI[:-1] + b', "x": NaN}'))


@pytest.mark.parametrize("name", sorted(APPS))
def test_mutated_domains_and_vmis(name):
    app = APPS[name]

    @FAST
    @given(mutated_bytes(DOMAIN), mutated_bytes(VMI))
    def one(domain, vmi):
        define(app, domain, VMI)
        define(app, DOMAIN, vmi)

    one()


def test_hostile_input_to_a_sidecar_process(hook_sidecar, trap, canary):
    sidecar = hook_sidecar([sys.executable, "-m", "netbind.plugins.passt.sidecar"])
    cases = {**hostile_domains(DOMAIN, canary, trap.url), **{f"vmi {k}": v for k, v in hostile_vmis(VMI).items()}}
    answers = {}
    for case, data in cases.items():
        domain, vmi = (DOMAIN, data) if case.startswith("vmi ") else (data, VMI)
        try:
            answers[case] = sidecar.define_domain(domain, vmi)
        except HookClientError as exc:   # the sidecar refused, or the launcher refused its answer
            answers[case] = exc
    assert sidecar.info()["name"] == "network-passt-binding"          # still serving
    assert trap.connections == 0
    assert not any(isinstance(a, bytes) and CANARY.encode() in a for a in answers.values())
    assert "larger than max" in str(answers["16 MiB"])
    assert "exceeded max depth" in str(answers["vmi nested 100,000 deep"])
    sidecar.handle.stop()
    assert "Traceback" not in sidecar.handle.stderr()
