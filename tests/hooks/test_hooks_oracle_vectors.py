"""Differential tests: every passt-sidecar and hook-manager vector recorded from real KubeVirt,
reproduced by our passt sidecar running as a process and called through our hook manager."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from netbind.domain import canonical
from netbind.hooks._app import PLUGIN_SOCKET_ENV
from netbind.launcher.hooks import HookClientError, HookManager, query_info
from netbind.launcher.plugins import PluginHookError, mutate_domain
from netbind.testing.hooks import SidecarProcess, short_tempdir

ORACLE = Path(__file__).resolve().parents[3] / "shared" / "oracle"
SIDECAR = [sys.executable, "-m", "netbind.plugins.passt.sidecar"]


def _cases(kind: str) -> list[Path]:
    return sorted((ORACLE / kind).glob("*.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def passt_sidecars():
    """One sidecar process per binding-name environment seen in the vectors, each in its own
    pod-like subdirectory: {env-binding-or-None: sockets subdir}."""
    root = short_tempdir()
    processes = {}
    try:
        for binding in {_load(p)["sidecar_env"].get("NETWORK_BINDING_PLUGIN_NAME") for p in _cases("passt-sidecar")}:
            subdir = root / (binding or "default")
            # the same process serves the Plugin API too, on a socket outside the hooks directory
            env = {"NETWORK_BINDING_PLUGIN_NAME": binding} if binding else {}
            env[PLUGIN_SOCKET_ENV] = str(root / f"plugin-{binding or 'default'}" / "hook.sock")
            proc = SidecarProcess(SIDECAR, subdir / "passt.sock", env=env)
            if not binding:  # no env: the process picks its default socket name; use --socket anyway
                proc.env.pop("NETWORK_BINDING_PLUGIN_NAME", None)
            processes[binding] = proc.start()
        yield {b: p.socket_path.parent for b, p in processes.items()}
    finally:
        for proc in processes.values():
            proc.close()
        import shutil

        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("case", _cases("passt-sidecar"), ids=lambda p: p.stem)
def test_passt_sidecar_vector(case, passt_sidecars):
    vector = _load(case)
    sockets_dir = passt_sidecars[vector["sidecar_env"].get("NETWORK_BINDING_PLUGIN_NAME")]
    with HookManager(sockets_dir) as manager:
        sidecars = manager.collect(1, timeout=5)
        assert [(s.name, s.versions, [f"{n}(priority={p})" for n, p in s.hook_points]) for s in sidecars] == [
            (i["name"], i["versions"], i["hookPoints"]) for i in vector["sidecar_info"]]
        if vector["error"] is None:
            out = manager.on_define_domain(vector["input_domain_xml"].encode(), vector["input_vmi_json"].encode())
            assert canonical(out) == canonical(vector["output_domain_xml"])
        else:
            with pytest.raises(HookClientError) as err:
                manager.on_define_domain(vector["input_domain_xml"].encode(), vector["input_vmi_json"].encode())
            assert str(err.value) == vector["error"]
    # the sidecar stays up after errors: the same process answers the next call
    assert query_info(sockets_dir / "passt.sock")["name"] == "network-passt-binding"


@pytest.mark.parametrize("context", ["Boot", "MigrationTarget"])
@pytest.mark.parametrize("case", _cases("passt-sidecar"), ids=lambda p: p.stem)
def test_passt_sidecar_vector_through_the_plugin_api(case, context, passt_sidecars):
    """MutateDomain (KubeVirt's Plugin API) answers with the very bytes OnDefineDomain does, from
    the same handler in the same process; errors carry the same status and message."""
    vector = _load(case)
    sockets_dir = passt_sidecars[vector["sidecar_env"].get("NETWORK_BINDING_PLUGIN_NAME")]
    plugin_socket = sockets_dir.parent / f"plugin-{sockets_dir.name}" / "hook.sock"
    domain, vmi = vector["input_domain_xml"].encode(), vector["input_vmi_json"].encode()
    if vector["error"] is None:
        with HookManager(sockets_dir) as manager:
            manager.collect(1, timeout=5)
            legacy = manager.on_define_domain(domain, vmi)
        assert mutate_domain(plugin_socket, "passt-plugin", domain, vmi, context) == legacy
        assert canonical(legacy) == canonical(vector["output_domain_xml"])
    else:
        code_and_desc = vector["error"].removeprefix("rpc error: code = ")
        code, desc = code_and_desc.split(" desc = ", 1)
        with pytest.raises(PluginHookError) as err:
            mutate_domain(plugin_socket, "passt-plugin", domain, vmi, context)
        assert str(err.value) == f"MutateDomain RPC to passt-plugin failed with {code}: {desc}"


def _sidecar_env(description: str) -> dict[str, str]:
    if "NETWORK_BINDING_PLUGIN_NAME=" in description:
        return {"NETWORK_BINDING_PLUGIN_NAME": description.split("NETWORK_BINDING_PLUGIN_NAME=")[1].rstrip(")")}
    return {}


@pytest.mark.parametrize("case", _cases("hook-manager"), ids=lambda p: p.stem)
def test_hook_manager_vector(case):
    vector = _load(case)
    root = short_tempdir()
    processes = []
    try:
        for entry in vector["layout"]:
            env = _sidecar_env(entry["sidecar"])
            proc = SidecarProcess(SIDECAR, root / entry["subdir"] / entry["socket_file"], env=env)
            if not env:
                proc.env.pop("NETWORK_BINDING_PLUGIN_NAME", None)
            processes.append(proc.start())
        timeout = float(vector["collect_timeout"].rstrip("s"))
        with HookManager(root) as manager:
            try:
                manager.collect(vector["requested_sidecars"], timeout=timeout)
                out = manager.on_define_domain(vector["input_domain_xml"].encode(), vector["input_vmi_json"].encode())
            except HookClientError as exc:
                assert vector["error"] is not None, f"unexpected error: {exc}"
                assert str(exc) == vector["error"]
            else:
                assert vector["error"] is None
                assert canonical(out) == canonical(vector["output_domain_xml"])
    finally:
        for proc in processes:
            proc.close()
        import shutil

        shutil.rmtree(root, ignore_errors=True)
