"""`netbind bundle` end to end through the CLI: inputs admins have, outputs checked against schemas."""
import json

import pytest
from click.testing import CliRunner

from netbind.bundle import BundleError, check
from netbind.cli import cli

# the user guide's registration body, as printed there (a missing comma after sidecarImage, a
# trailing comma after "500Mi")
GUIDE_PATCH = """[{"op": "add", "path": "/spec/configuration/network",   "value": {
            "binding": {
                "passt": {
                    "networkAttachmentDefinition": "default/netbindingpasst",
                    "sidecarImage": "quay.io/kubevirt/network-passt-binding:20231205_29a16d5c9"
                    "migration": {
                        "method": "link-refresh"
                    },
                    "computeResourceOverhead": {
                      "requests": {
                        "memory": "500Mi",
                      }
                    }
                }
            }
        }}]
"""
NAD = """apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: netbindingpasst, namespace: default}
spec:
  config: '{"cniVersion": "1.0.0", "name": "netbindingpasst", "plugins": [{"type": "%s"}]}'
"""


def run(*args):
    result = CliRunner().invoke(cli, ["bundle", *args])
    return result.exit_code, result.output, result.stderr if hasattr(result, "stderr") else ""


def bundle_json(*args):
    code, out, _ = run(*args, "-o", "json")
    assert code == 0, out
    return json.loads(out[out.index("{"):])


def test_passt_example_bundle(tmp_path):
    data = bundle_json("-f", "examples/passt/", "--kubevirt-version", "1.4")
    kinds = [o["kind"] for o in data["objects"]]
    assert kinds == ["NetworkAttachmentDefinition", "DaemonSet"]
    nad = data["objects"][0]
    assert nad["metadata"]["namespace"] == "default"
    # KubeVirt's plugin name is replaced by netbind's, which the installer puts on the node
    assert json.loads(nad["spec"]["config"])["plugins"][0]["type"] == "netbind-cni-passt-binding"
    reg = data["registration"]
    assert reg["featureGate"] == "NetworkBindingPlugins"
    assert [s["type"] for s in reg["steps"]] == ["merge", "json"]
    # the NAD is named without a namespace: KubeVirt resolves it in each VM's namespace
    assert reg["steps"][0]["patch"]["spec"]["configuration"]["network"]["binding"]["passt"][
        "networkAttachmentDefinition"] == "netbindingpasst"
    assert bundle_json("-f", "examples/passt/")["registration"]["featureGate"] is None


def test_nads_go_to_each_vm_namespace_or_one_shared(tmp_path):
    data = bundle_json("-f", "examples/passt/", "--vm-namespace", "team-a", "--vm-namespace", "team-b")
    assert [o["metadata"]["namespace"] for o in data["objects"][:2]] == ["team-a", "team-b"]
    data = bundle_json("-f", "examples/passt/", "--nad-namespace", "shared")
    assert data["objects"][0]["metadata"]["namespace"] == "shared"
    assert data["registration"]["steps"][0]["patch"]["spec"]["configuration"]["network"]["binding"]["passt"][
        "networkAttachmentDefinition"] == "shared/netbindingpasst"


def test_the_guides_patch_file_is_refused_with_line_and_column(tmp_path):
    patch = tmp_path / "patch.json"
    patch.write_text(GUIDE_PATCH)
    code, out, _ = run("-f", str(patch))
    assert code == 2
    assert out.strip().count("\n") == 0
    assert f"{patch}:6: not valid JSON: a comma is missing before this value (line 6, column 21)" in out
    patch.write_text(GUIDE_PATCH.replace('9"\n', '9",\n'))
    code, out, _ = run("-f", str(patch))
    assert code == 2 and "a trailing comma before '}'; remove the comma (line 12, column 23)" in out


def test_the_corrected_patch_file_is_applied_to_the_default_cr(tmp_path):
    (tmp_path / "patch.json").write_text(GUIDE_PATCH.replace('9"\n', '9",\n').replace('"500Mi",', '"500Mi"'))
    (tmp_path / "nad.yaml").write_text(NAD % "netbind-cni-passt-binding")
    data = bundle_json("-f", str(tmp_path), "--kubevirt-version", "1.4")
    assert data["registration"]["target"]["name"] == "kubevirt"
    assert data["registration"]["steps"][0]["patch"]["spec"]["configuration"]["network"]["binding"]["passt"][
        "computeResourceOverhead"] == {"requests": {"memory": "500Mi"}}


def test_a_hyperconverged_cr_and_the_hco_target(tmp_path):
    (tmp_path / "hco.yaml").write_text("""apiVersion: hco.kubevirt.io/v1beta1
kind: HyperConverged
metadata: {name: kubevirt-hyperconverged, namespace: openshift-cnv}
spec:
  networkBinding:
    mybinding:
      networkAttachmentDefinition: netbindingpasst
      sidecarImage: registry.example/my-sidecar:v1
""")
    (tmp_path / "nad.yaml").write_text(NAD % "netbind-cni-passt-binding")
    data = bundle_json("-f", str(tmp_path), "--target", "hco", "--kubevirt-version", "1.4")
    reg = data["registration"]
    assert reg["target"] == {"apiVersion": "hco.kubevirt.io/v1beta1", "kind": "HyperConverged",
                             "namespace": "openshift-cnv", "name": "kubevirt-hyperconverged"}
    assert list(reg["steps"][0]["patch"]["spec"]["networkBinding"]) == ["mybinding"]
    assert reg["featureGate"] is None   # HCO enables NetworkBindingPlugins itself


def test_hco_owned_binding_names_are_refused():
    code, out, _ = run("-f", "examples/passt/", "--target", "hco", "--kubevirt-version", "1.4")
    assert code == 2 and "writes its own 'passt'" in out


def test_a_vendor_plugin_needs_an_installer_entry(tmp_path):
    (tmp_path / "kv.yaml").write_text("""apiVersion: kubevirt.io/v1
kind: KubeVirt
metadata: {name: kubevirt, namespace: kubevirt}
spec:
  configuration:
    network:
      binding:
        vendor: {networkAttachmentDefinition: vendornet}
""")
    (tmp_path / "nad.yaml").write_text((NAD % "acme-binding").replace("netbindingpasst", "vendornet"))
    code, out, _ = run("-f", str(tmp_path))
    assert code == 2 and "--cni-image acme-binding=IMAGE:/PATH/IN/IMAGE" in out
    data = bundle_json("-f", str(tmp_path), "--cni-image", "acme-binding=registry.example/acme-cni:v2:/bin/acme")
    ds = data["objects"][-1]
    init = ds["spec"]["template"]["spec"]["initContainers"]
    assert [c["image"] for c in init] == ["registry.example/acme-cni:v2"]
    assert "cp /bin/acme /host/opt/cni/bin/acme-binding.tmp" in init[0]["command"][-1]
    code, out, _ = run("-f", str(tmp_path), "--cni-image", "acme-binding=nocolon")
    assert code == 2 and "expected TYPE=IMAGE:/PATH/IN/IMAGE" in out


def test_no_binding_registered_is_said(tmp_path):
    (tmp_path / "nad.yaml").write_text(NAD % "x")
    code, out, _ = run("-f", str(tmp_path))
    assert code == 2 and "no binding is registered" in out


def test_schemas_refuse_what_the_api_server_would():
    ds = bundle_json("-f", "examples/passt/")["objects"][-1]
    ds["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(BundleError, match="imagePullPolicyy"):
        check(ds, "daemonset-apps-v1.json")
    bad_kv = {"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "metadata": {"name": "kubevirt"},
              "spec": {"configuration": {"network": {"binding": {"p": {"sidecarImag": "x"}}}}}}
    with pytest.raises(BundleError, match="sidecarImag"):
        check(bad_kv, "kubevirt-latest.json")
    with pytest.raises(BundleError, match="config"):
        check({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition", "metadata": {},
               "spec": {"config": {"not": "a string"}}}, "network-attachment-definition-v1.json")


@pytest.mark.parametrize("patch, message", [
    ('[{"op":"add","path":5,"value":1}]', "does not apply to KubeVirt's default CR: Invalid 'path'"),
    ('[{"op":"add","path":"/spec/x"}]', "does not contain a 'value' member"),
    ('[{"op":"replace","path":"/kind","value":"VirtualMachine"}]', "changes the KubeVirt CR's kind"),
    ('[{"op":"add","path":"/spec/configuration/network","value":{"binding":{"x":{"sidecarImage":5}}}}]',
     "p.json:1: document 1 (KubeVirt): field spec.configuration.network.binding.x.sidecarImage: Input should be"),
])
def test_bad_patch_files_get_one_line(tmp_path, patch, message):
    (tmp_path / "p.json").write_text(patch)
    code, out, _ = run("-f", str(tmp_path / "p.json"))
    assert code == 2 and message in out and out.strip().count("\n") == 0, out


def test_a_hyperconverged_cr_with_the_kubevirt_target_is_refused(tmp_path):
    (tmp_path / "hco.yaml").write_text("apiVersion: hco.kubevirt.io/v1beta1\nkind: HyperConverged\n"
                                       "metadata: {name: kubevirt-hyperconverged}\nspec:\n  networkBinding:\n"
                                       "    b: {domainAttachmentType: tap}\n")
    code, out, _ = run("-f", str(tmp_path))
    assert code == 2 and "give --target hco" in out


def test_reference_cni_plugins_need_no_installer(tmp_path):
    (tmp_path / "kv.yaml").write_text("apiVersion: kubevirt.io/v1\nkind: KubeVirt\nmetadata: {name: kubevirt, "
                                      "namespace: kubevirt}\nspec:\n  configuration:\n    network:\n      binding:\n"
                                      "        b: {networkAttachmentDefinition: netbindingpasst, domainAttachmentType: tap}\n")
    (tmp_path / "nad.yaml").write_text(NAD % "bridge")
    data = bundle_json("-f", str(tmp_path))
    assert [o["kind"] for o in data["objects"]] == ["NetworkAttachmentDefinition"]
