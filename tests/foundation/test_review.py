"""The review layer behind validate/explain: admission causes plus later refusals."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from netbind import review
from netbind.api import load_manifests
from netbind.api.versions import LATEST, V1_4
from netbind.cli import cli

KV = """\
apiVersion: kubevirt.io/v1
kind: KubeVirt
metadata: {name: kubevirt, namespace: kubevirt}
spec:
  configuration:
    developerConfiguration: {featureGates: [NetworkBindingPlugins]}
    network:
      binding:
        passt: {sidecarImage: img, migration: {}}
"""
VMI = """\
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: v, namespace: ns1}
spec:
  domain:
    resources: {requests: {memory: 128Mi}}
    devices:
      interfaces:
      - {name: default, binding: {name: passt}}
      - {name: sec, binding: {name: nope}}
  networks:
  - {name: default, pod: {}}
  - {name: sec, multus: {networkName: n}}
"""


@pytest.mark.parametrize(("profile", "text"), [
    (LATEST, "couldn't find configuration for network binding: nope"),
    (V1_4, "couldn't find configuration for network bindining: nope"),  # v1.4's typo
])
def test_unknown_binding_is_admitted_but_found_for_virt_controller(tmp_path, profile, text):
    (tmp_path / "m.yaml").write_text(KV + "---\n" + VMI)
    result = review.validate(load_manifests([tmp_path]), profile)
    assert result.allowed and result.causes == []
    assert [f.to_json() for f in result.findings] == [
        {"component": "virt-controller", "reason": "FailedCreate",
         "message": f"failed to render launch manifest: {text}"}]


def test_validate_cli_json_contract_and_exit_codes(tmp_path):
    (tmp_path / "m.yaml").write_text(KV + "---\n" + VMI)
    result = CliRunner().invoke(cli, ["validate", "-f", str(tmp_path), "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"allowed", "causes", "findings", "notes"} and data["allowed"] is True
    assert data["findings"][0]["message"].endswith("network binding: nope")
    assert data["notes"] == ["binding 'nope' is not registered in the KubeVirt CR (registered: passt)"]

    bad = VMI.replace("name: sec, binding", "name: sec, macAddress: 'zz', binding")
    (tmp_path / "m.yaml").write_text(KV + "---\n" + bad)
    result = CliRunner().invoke(cli, ["validate", "-f", str(tmp_path), "-o", "json"])
    assert result.exit_code == 1
    causes = json.loads(result.output)["causes"]
    assert causes == [{"type": "FieldValueInvalid", "field": "spec.domain.devices.interfaces[1].macAddress",
                       "message": "interface spec.domain.devices.interfaces[1].name has malformed MAC address (zz)."}]

    result = CliRunner().invoke(cli, ["validate", "-f", str(tmp_path), "-o", "admission-review"])
    assert result.exit_code == 1
    response = json.loads(result.output)["response"]
    assert response["allowed"] is False and response["status"]["code"] == 422
    # KubeVirt's VMI create webhook reports every general network cause twice
    assert [c["field"] for c in response["status"]["details"]["causes"]] == [causes[0]["field"]] * 2


@pytest.mark.parametrize("example", ["passt", "macvtap", "managedtap"])
def test_examples_are_admitted_and_explained(example):
    for version in ("latest", "1.4"):
        result = CliRunner().invoke(cli, ["validate", "-f", f"examples/{example}", "--kubevirt-version", version])
        assert result.exit_code == 0, (version, result.output)
    result = CliRunner().invoke(cli, ["explain", "-f", f"examples/{example}", "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["allowed"] and data["problems"] == []
    assert len(data["interfaces"]) == 1


@pytest.mark.parametrize("version", ["latest", "1.4"])
def test_explain_passt_tells_the_story(version):
    result = CliRunner().invoke(cli, ["explain", "-f", "examples/passt", "--kubevirt-version", version])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "?:" not in out  # v1.4's sidecars carry no plugin name: the container is still named
    assert "binding NAD default/netbindingpasst with cni-args.logicNetworkName=passtnet" in out
    assert "hook-sidecar-0: quay.io/kubevirt/network-passt-binding" in out
    assert "sidecar must add one with alias ua-passtnet" in out
    assert "LiveMigratable: True" in out
    assert "link-refresh" in out


def test_explain_reports_non_migratable_binding():
    result = CliRunner().invoke(cli, ["explain", "-f", "examples/managedtap", "-o", "json"])
    data = json.loads(result.output)
    assert data["liveMigratable"]["status"] == "False"
    assert data["liveMigratable"]["reason"] == "InterfaceNotLiveMigratable"
    assert "k6t-eth0" in data["interfaces"][0]["domain"]


@pytest.mark.parametrize("command", ["explain", "validate"])
def test_brackets_in_messages_are_printed_as_they_are(tmp_path, command):
    """Regression: the text output went through rich markup, which ate "[custom]" as a tag."""
    for source in Path("examples/passt").glob("*.yaml"):
        text = source.read_text()
        if source.name == "vm.yaml":
            text = text.replace("name: passt\n", 'name: "[custom]"\n')
            assert "[custom]" in text
        (tmp_path / source.name).write_text(text)
    result = CliRunner().invoke(cli, [command, "-f", str(tmp_path)])
    assert result.exit_code == (1 if command == "explain" else 0), result.output
    assert "couldn't find configuration for network binding: [custom]\n" in result.output
    assert "binding '[custom]' is not registered" in result.output
