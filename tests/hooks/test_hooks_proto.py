"""The wire contract: generated code is current, names/numbers are KubeVirt's, and a client built
only from the .proto files (not our hook client) talks to our sidecar."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path


from netbind.domain import canonical
from netbind.hooks.proto import _generate

PROTO_DIR = Path(_generate.__file__).parent
# lines that only carry the generator's version stamp
_VERSION_LINE = re.compile(r"(Protobuf Python Version|GRPC_GENERATED_VERSION|^\s+\d+,$)")


def _normalized(text: str) -> list[str]:
    return [line for line in text.splitlines() if not _VERSION_LINE.search(line)]


def test_committed_generated_code_is_current(tmp_path):
    generated = _generate.generate(tmp_path)
    assert {p.name for p in generated} == {p.name for p in PROTO_DIR.glob("*_pb2*.py")}
    for path in generated:
        committed = (PROTO_DIR / path.name).read_text()
        assert _normalized(committed) == _normalized(path.read_text()), (
            f"{path.name} is stale: run python -m netbind.hooks.proto._generate")


def test_generated_imports_are_package_absolute():
    for path in PROTO_DIR.glob("*_pb2_grpc.py"):
        imports = [l for l in path.read_text().splitlines() if l.startswith(("import ", "from "))]
        own = [l for l in imports if "_pb2" in l]
        assert own and all(l.startswith("from netbind.hooks.proto import ") for l in own), own


def test_packages_services_and_field_numbers_match_the_spec():
    from netbind.hooks.proto import api_info_pb2, api_v1alpha1_pb2, api_v1alpha2_pb2, api_v1alpha3_pb2

    info = api_info_pb2.DESCRIPTOR
    assert info.package == "kubevirt.hooks.info"
    assert info.services_by_name["Info"].methods_by_name["Info"].full_name == "kubevirt.hooks.info.Info.Info"
    fields = {f.name: f.number for f in api_info_pb2.InfoResult.DESCRIPTOR.fields}
    assert fields == {"name": 1, "hookPoints": 3, "versions": 4}
    assert {f.name: f.number for f in api_info_pb2.HookPoint.DESCRIPTOR.fields} == {"name": 1, "priority": 2}
    assert not api_info_pb2.InfoParams.DESCRIPTOR.fields

    methods = {"v1alpha1": ["OnDefineDomain"], "v1alpha2": ["OnDefineDomain", "PreCloudInitIso"],
               "v1alpha3": ["OnDefineDomain", "PreCloudInitIso", "Shutdown"]}
    for module, version in ((api_v1alpha1_pb2, "v1alpha1"), (api_v1alpha2_pb2, "v1alpha2"),
                            (api_v1alpha3_pb2, "v1alpha3")):
        assert module.DESCRIPTOR.package == f"kubevirt.hooks.{version}"
        service = module.DESCRIPTOR.services_by_name["Callbacks"]
        assert [m.name for m in service.methods] == methods[version]
        numbers = lambda msg: {f.name: f.number for f in msg.DESCRIPTOR.fields}  # noqa: E731
        assert numbers(module.OnDefineDomainParams) == {"domainXML": 1, "vmi": 2}
        assert numbers(module.OnDefineDomainResult) == {"domainXML": 1}
        if version != "v1alpha1":
            assert numbers(module.PreCloudInitIsoParams) == {"cloudInitNoCloudSource": 1, "vmi": 2, "cloudInitData": 3}
            assert numbers(module.PreCloudInitIsoResult) == {"cloudInitNoCloudSource": 1, "cloudInitData": 3}


_INTEROP_CLIENT = r"""
import json, sys
import grpc
import api_info_pb2, api_info_pb2_grpc, api_v1alpha1_pb2, api_v1alpha1_pb2_grpc, api_v1alpha3_pb2, api_v1alpha3_pb2_grpc

socket_path, domain_file, vmi_file = sys.argv[1:4]
domain, vmi = open(domain_file, "rb").read(), open(vmi_file, "rb").read()
out = {}
with grpc.insecure_channel("unix:" + socket_path) as channel:
    info = api_info_pb2_grpc.InfoStub(channel).Info(api_info_pb2.InfoParams(), timeout=1)
    out["info"] = [info.name, list(info.versions), [[h.name, h.priority] for h in info.hookPoints]]
    stub = api_v1alpha3_pb2_grpc.CallbacksStub(channel)
    r = stub.OnDefineDomain(api_v1alpha3_pb2.OnDefineDomainParams(domainXML=domain, vmi=vmi), timeout=10)
    out["v1alpha3"] = r.domainXML.decode()
    r = api_v1alpha1_pb2_grpc.CallbacksStub(channel).OnDefineDomain(
        api_v1alpha1_pb2.OnDefineDomainParams(domainXML=domain, vmi=vmi), timeout=10)
    out["v1alpha1"] = r.domainXML.decode()
    try:
        stub.OnDefineDomain(api_v1alpha3_pb2.OnDefineDomainParams(domainXML=b"<domain>", vmi=b"{}"), timeout=10)
    except grpc.RpcError as exc:
        out["malformed"] = exc.code().name
    stub.Shutdown(api_v1alpha3_pb2.ShutdownParams(), timeout=10)
print(json.dumps(out))
"""


def test_client_built_from_proto_only_talks_to_our_sidecar_process(hook_sidecar, oracle_dir, tmp_path):
    """Stubs generated into a flat temp dir from the .proto files (a different process: their
    symbols would clash with ours in one descriptor pool) call the passt sidecar process."""
    import subprocess

    from grpc_tools import protoc

    gen = tmp_path / "gen"
    gen.mkdir()
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    names = ["api_info.proto", "api_v1alpha1.proto", "api_v1alpha3.proto"]
    assert protoc.main(["protoc", f"-I{PROTO_DIR}", f"-I{well_known}", f"--python_out={gen}",
                        f"--grpc_python_out={gen}", *names]) == 0
    (gen / "client.py").write_text(_INTEROP_CLIENT)
    vector = json.loads((oracle_dir / "passt-sidecar" / "08-istio-inject-with-ports.json").read_text())
    (tmp_path / "domain.xml").write_text(vector["input_domain_xml"])
    (tmp_path / "vmi.json").write_text(vector["input_vmi_json"])

    sidecar = hook_sidecar.module("netbind.plugins.passt.sidecar", socket_name="passt.sock")
    run = subprocess.run([sys.executable, str(gen / "client.py"), str(sidecar.socket_path),
                          str(tmp_path / "domain.xml"), str(tmp_path / "vmi.json")],
                         capture_output=True, text=True, timeout=60, cwd=gen,
                         env={"PYTHONPATH": str(gen), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["info"] == ["network-passt-binding", ["v1alpha3"], [["OnDefineDomain", 0], ["Shutdown", 0]]]
    assert canonical(out["v1alpha3"]) == canonical(vector["output_domain_xml"])
    assert out["v1alpha1"] == out["v1alpha3"]  # all versions served by the same handler
    assert out["malformed"] == "INVALID_ARGUMENT"
    assert sidecar.handle.wait(10) == 0  # Shutdown made it exit
    assert not sidecar.socket_path.exists()
