"""Plugin manifests: loading, round-trip, validate/explain output and exit codes."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from netbind.api import ManifestError, Plugin, load_manifests
from netbind.cli import cli

PLUGIN = """\
apiVersion: plugin.kubevirt.io/v1alpha1
kind: Plugin
metadata: {name: hooks}
spec:
  condition: "vmi.Name != ''"
  domainHooks:
  - sidecar: {socketPath: /var/run/kubevirt-plugin/hooks/a.sock}
    timeout: 1m30s
    futureField: kept
  nodeHooks:
  - {socket: /run/n.sock, permittedHooks: [PreVMStart]}
  validatingAdmissionPolicies: [{name: vap}]
"""


def write(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    return tmp_path / name


def load_error(tmp_path, text) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load_manifests([write(tmp_path, "p.yaml", text)])
    return info.value


def test_plugin_loads_and_round_trips(tmp_path):
    m = load_manifests([write(tmp_path, "p.yaml", PLUGIN)])
    [plugin] = m.plugins
    assert isinstance(plugin, Plugin) and plugin.name == "hooks"
    assert plugin.spec.domain_hooks[0].sidecar.socket_path == "/var/run/kubevirt-plugin/hooks/a.sock"
    assert plugin.spec.node_hooks[0].permitted_hooks == ["PreVMStart"]
    data = plugin.to_json()
    assert data["spec"]["domainHooks"][0] == {"sidecar": {"socketPath": "/var/run/kubevirt-plugin/hooks/a.sock"},
                                              "timeout": "1m30s", "futureField": "kept"}
    assert Plugin.model_validate(data).to_json() == data
    assert m.sources[id(plugin)].endswith("p.yaml, document 1")


@pytest.mark.parametrize(("text", "field", "message"), [
    (PLUGIN.replace("plugin.kubevirt.io/v1alpha1", "plugin.kubevirt.io/v1"), "apiVersion",
     "apiVersion 'plugin.kubevirt.io/v1' does not serve Plugin; expected plugin.kubevirt.io/v1alpha1"),
    (PLUGIN.replace("/var/run/kubevirt-plugin/hooks/a.sock", "''"), "spec.domainHooks[0].sidecar.socketPath",
     "at least 1 character"),
    (PLUGIN.replace("[PreVMStart]", "[]"), "spec.nodeHooks[0].permittedHooks", "at least 1 item"),
    (PLUGIN.replace("{name: vap}", "{}"), "spec.validatingAdmissionPolicies[0].name", "required field is missing"),
    (PLUGIN.replace("timeout: 1m30s", "timeout: 30"), "spec.domainHooks[0].timeout", "valid string"),
    (PLUGIN.replace("metadata: {name: hooks}", "metadata: {}"), "metadata.name", "needs metadata.name"),
    ("apiVersion: plugin.kubevirt.io/v1alpha1\nkind: Plugin\nmetadata: {name: x}\n", "spec",
     "required field is missing"),
])
def test_bad_plugin_input_is_one_line_naming_the_field(tmp_path, text, field, message):
    error = load_error(tmp_path, text)
    assert error.field == field and message in error.message and "\n" not in str(error)


def test_duplicate_plugin_names(tmp_path):
    error = load_error(tmp_path, PLUGIN + "---\n" + PLUGIN)
    assert "a second Plugin named 'hooks'" in str(error)


def test_validate_example_and_exit_codes(tmp_path):
    result = CliRunner().invoke(cli, ["validate", "-f", "examples/plugin-api", "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["allowed"] and data["plugins"][0]["plugin"] == "passt-plugin-api"

    for name in ("kubevirt.yaml", "vm.yaml", "nad.yaml"):
        write(tmp_path, name, open(f"examples/plugin-api/{name}").read())
    bad = open("examples/plugin-api/plugin.yaml").read().replace("hook.sock", "hook")
    write(tmp_path, "plugin.yaml", bad)
    result = CliRunner().invoke(cli, ["validate", "-f", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "denied: KubeVirt rejects Plugin passt-plugin-api" in result.output
    assert "sidecar socketPath must end with .sock (kubevirt-plugin-socket-path-policy)" in result.output
    assert "allowed: KubeVirt admits vm-net-binding-passt" in result.output


def test_plugins_alone_gate_off_and_1_4(tmp_path):
    write(tmp_path, "p.yaml", PLUGIN)
    result = CliRunner().invoke(cli, ["validate", "-f", str(tmp_path)])
    assert result.exit_code == 1
    assert "Plugins feature gate is not enabled (plugin-validator.plugin.kubevirt.io)" in result.output
    result = CliRunner().invoke(cli, ["validate", "-f", str(tmp_path), "--kubevirt-version", "1.4"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "needs KubeVirt v1.9+ with the Plugins feature gate; --kubevirt-version 1.4 does not have it" in result.output
    result = CliRunner().invoke(cli, ["explain", "-f", str(tmp_path), "-o", "json"])
    assert result.exit_code == 1, result.output  # explain's exit follows admission, as validate's
    assert json.loads(result.output)["plugins"]["reviews"][0]["admitted"] is False


def test_explain_example_shows_plan_cel_note_and_passt_note(tmp_path):
    result = CliRunner().invoke(cli, ["explain", "-f", "examples/plugin-api"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Plugin passt-plugin-api: admitted" in out
    assert ("1. passt-plugin-api hook 0: sidecar /var/run/kubevirt-plugin/passt-plugin-api/hook.sock, "
            "failureStrategy Fail, timeout 30s") in out
    assert "after the legacy OnDefineDomain chain (0 hook sidecar(s) here)" in out   # no sidecarImage
    assert "no core interface: a Plugin domain hook (passt-plugin-api) must add one with alias ua-passtnet" in out
    assert "core passtBinding" in out and "passtBinding: {}" in out and "250Mi" in out and "restart" in out

    for name in ("kubevirt.yaml", "vm.yaml", "nad.yaml"):
        write(tmp_path, name, open(f"examples/plugin-api/{name}").read())
    write(tmp_path, "plugin.yaml", PLUGIN.replace("hooks", "passt-plugin-api").replace(
        "validatingAdmissionPolicies", "mutatingAdmissionPolicies"))
    data = json.loads(CliRunner().invoke(cli, ["explain", "-f", str(tmp_path), "-o", "json"]).output)
    review = data["plugins"]["reviews"][0]
    assert review["cel"].startswith("CEL is not evaluated by netbind: KubeVirt types it over Go's libvirtxml.Domain")
    assert data["plugins"]["domainHookOrder"][0]["conditions"] == ["vmi.Name != ''"]
    notes = " ".join(data["plugins"]["notes"])
    assert "node hooks are virt-handler's" in notes and "not rendered by netbind" in notes


def test_no_passt_note_on_1_4():
    result = CliRunner().invoke(cli, ["explain", "-f", "examples/passt", "--kubevirt-version", "1.4", "-o", "json"])
    assert "notes" not in json.loads(result.output)["interfaces"][0]
