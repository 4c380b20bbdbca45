"""What a new user trips over first (issue 12): no KubeVirt CR, a binding name typo, a NAD in another
namespace, explain's exit status. KubeVirt admits all but the denial (its admission never reads the
binding registry), so the hints are netbind's own notes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from netbind.cli import cli

PASST = Path(__file__).resolve().parents[2] / "examples" / "passt"


def _copy(tmp_path: Path, *names: str) -> Path:
    for name in names:
        shutil.copy(PASST / name, tmp_path / name)
    return tmp_path


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_no_kubevirt_cr_says_no_binding_is_registered(tmp_path):
    folder = _copy(tmp_path, "vm.yaml", "nad.yaml")
    result = _run("validate", "-f", str(folder))
    assert result.exit_code == 0, result.output  # admission admits it: the registry is not its business
    assert "netbind note: no KubeVirt CR in the given files, so no network binding is registered" in result.output


def test_binding_typo_names_the_registered_and_the_nearest(tmp_path):
    folder = _copy(tmp_path, "kubevirt.yaml", "nad.yaml")
    (folder / "vm.yaml").write_text((PASST / "vm.yaml").read_text().replace("name: passt\n", "name: pastt\n"))
    data = json.loads(_run("validate", "-f", str(folder), "-o", "json").output)
    assert data["allowed"] is True
    assert data["notes"] == ["binding 'pastt' is not registered in the KubeVirt CR (registered: passt); "
                             "did you mean 'passt'?"]
    # no launcher pod means no domain: render domain fails as render pod does, with the hint
    result = _run("render", "domain", "-f", str(folder))
    assert result.exit_code == 1 and result.stdout == ""
    assert "virt-controller would fail (FailedCreate): failed to render launch manifest: couldn't find " \
           "configuration for network binding: pastt" in result.stderr
    assert "did you mean 'passt'?" in result.stderr
    result = _run("explain", "-f", str(folder))
    assert result.exit_code == 1  # virt-controller refuses it: the VM would not run
    assert "did you mean 'passt'?" in result.output


def test_nad_outside_the_vm_namespace_is_warned(tmp_path):
    folder = _copy(tmp_path, "kubevirt.yaml", "nad.yaml")
    (folder / "vm.yaml").write_text((PASST / "vm.yaml").read_text().replace("namespace: default", "namespace: ns1"))
    data = json.loads(_run("validate", "-f", str(folder), "-o", "json").output)
    assert data["notes"] == [
        "binding passt uses NetworkAttachmentDefinition default/netbindingpasst, outside the VM's namespace ns1: "
        "every namespace can use a NAD in default; the user guide recommends the VM's namespace"]


def test_nad_file_in_another_namespace_than_the_reference_resolves_to(tmp_path):
    folder = _copy(tmp_path, "kubevirt.yaml", "vm.yaml")
    (folder / "nad.yaml").write_text((PASST / "nad.yaml").read_text().replace("namespace: default", "namespace: other"))
    data = json.loads(_run("validate", "-f", str(folder), "-o", "json").output)
    assert len(data["notes"]) == 1
    assert data["notes"][0].startswith("binding passt refers to NetworkAttachmentDefinition default/netbindingpasst,"
                                       " but the given files have netbindingpasst in namespace other")


def test_clean_example_has_no_notes_and_explain_exits_0():
    data = json.loads(_run("validate", "-f", str(PASST), "-o", "json").output)
    assert "notes" not in data
    assert _run("explain", "-f", str(PASST)).exit_code == 0


def test_explain_exits_1_when_admission_denies(tmp_path):
    folder = _copy(tmp_path, "kubevirt.yaml", "nad.yaml")
    (folder / "vm.yaml").write_text((PASST / "vm.yaml").read_text().replace(
        "binding:", "macAddress: zz\n            binding:", 1))
    result = _run("explain", "-f", str(folder))
    assert result.exit_code == 1 and "rejected by admission" in result.output, result.output
    result = _run("explain", "-f", str(folder), "-o", "json")
    assert result.exit_code == 1 and json.loads(result.output)["allowed"] is False
