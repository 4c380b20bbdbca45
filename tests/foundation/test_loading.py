"""Manifest loading: every kind of bad input yields one clear line naming file, document, field."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from netbind.api import ManifestError, load_manifests
from netbind.cli import cli

VMI = """\
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: v, namespace: ns1}
spec:
  domain:
    devices:
      interfaces:
      - name: default
        binding: {name: passt}
  networks:
  - name: default
    pod: {}
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(tmp_path, text, name="m.yaml") -> ManifestError:
    path = write(tmp_path, name, text)
    with pytest.raises(ManifestError) as info:
        load_manifests([path]).workload
    return info.value


def test_multi_document_and_list(tmp_path):
    kv = "apiVersion: kubevirt.io/v1\nkind: KubeVirt\nmetadata: {name: kubevirt}\n" \
         "spec: {configuration: {network: {binding: {passt: {sidecarImage: img}}}}}\n"
    nad_list = json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
         "metadata": {"name": "n1", "namespace": "ns1"}, "spec": {"config": "{}"}}]})
    write(tmp_path, "a.yaml", kv + "---\n" + VMI)
    write(tmp_path, "b.json", nad_list)
    m = load_manifests([tmp_path])
    assert m.kubevirt.spec.configuration.bindings["passt"].sidecar_image == "img"
    assert m.vmi.spec.interfaces[0].binding.name == "passt"
    assert m.nad("ns1", "n1") is not None and m.nad("default", "n1") is None
    assert m.field_prefix == "spec"


def test_unknown_fields_survive_round_trip(tmp_path):
    text = VMI.replace("  networks:", "  someFutureField: {a: 1}\n  networks:")
    m = load_manifests([write(tmp_path, "v.yaml", text)])
    assert m.vmi.to_json()["spec"]["someFutureField"] == {"a": 1}


def test_vm_becomes_vmi_with_vm_name(tmp_path):
    vm = ("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: myvm, namespace: ns2}\n"
          "spec:\n  template:\n    metadata: {annotations: {a: b}}\n    spec:\n"
          "      networks: [{name: default, pod: {}}]\n")
    m = load_manifests([write(tmp_path, "vm.yaml", vm)])
    assert m.vmi.metadata.name == "myvm" and m.vmi.namespace == "ns2"
    assert m.vmi.annotations == {"a": "b"}
    assert m.field_prefix == "spec.template.spec"


def test_unparseable_yaml_names_line(tmp_path):
    err = load_error(tmp_path, "kind: KubeVirt\n  bad: [\n")
    assert err.file.endswith("m.yaml") and err.line is not None
    assert "not valid YAML" in str(err)


def test_bad_json_names_line(tmp_path):
    err = load_error(tmp_path, '{"kind": "KubeVirt",\n "x": }', name="m.json")
    assert err.line == 2 and "not valid JSON" in str(err)


def test_unknown_kind(tmp_path):
    err = load_error(tmp_path, "apiVersion: v1\nkind: Pod\n")
    assert "unknown kind 'Pod'" in str(err) and "VirtualMachineInstance" in str(err)
    assert err.document == 1 and err.field == "kind" and err.line == 2


def test_wrong_type_names_field_and_line(tmp_path):
    text = VMI.replace("binding: {name: passt}", "binding: {name: passt}\n        ports: [{port: eighty}]")
    err = load_error(tmp_path, "---\n" + text)
    assert err.field == "spec.domain.devices.interfaces[0].ports[0].port"
    assert err.line == 11 and err.document == 1
    assert "valid integer" in err.message and "'eighty'" in err.message


def test_missing_required_field(tmp_path):
    err = load_error(tmp_path, VMI.replace("      - name: default\n        binding", "      - binding"))
    assert err.field == "spec.domain.devices.interfaces[0].name"
    assert "required" in err.message


def test_not_exactly_one_workload(tmp_path):
    err = load_error(tmp_path, "apiVersion: kubevirt.io/v1\nkind: KubeVirt\nmetadata: {name: kubevirt}\n")
    assert "exactly one VirtualMachine or VirtualMachineInstance, got 0" in str(err)
    write(tmp_path, "a.yaml", VMI)
    write(tmp_path, "b.yaml", VMI)
    with pytest.raises(ManifestError, match="got 2"):
        load_manifests([tmp_path / "a.yaml", tmp_path / "b.yaml"]).workload


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(ManifestError, match="no such file"):
        load_manifests([tmp_path / "nope.yaml"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="holds no"):
        load_manifests([tmp_path / "empty"])


def test_wrong_api_group(tmp_path):
    err = load_error(tmp_path, VMI.replace("kubevirt.io/v1", "k8s.cni.cncf.io/v1"))
    assert err.field == "apiVersion" and "kubevirt.io/v1" in err.message


@pytest.mark.parametrize("text", [
    "kind: [\n",
    "apiVersion: v1\nkind: Pod\n",
    "- just\n- a list\n",
    VMI.replace("pod: {}", "pod: 3"),
])
def test_cli_bad_input_exit_2_without_traceback(tmp_path, text):
    path = write(tmp_path, "bad.yaml", text)
    for args in (["validate"], ["render", "pod"], ["render", "domain"], ["explain"]):
        result = CliRunner().invoke(cli, [*args, "-f", str(path)])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
        assert result.output.startswith("error: ") and "bad.yaml" in result.output
