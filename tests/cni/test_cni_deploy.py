"""deploy/cni: the installer script writes working launchers; the manifest mounts what it uses."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from netbind.testing.cni import cmd_add, cmd_del, cmd_version

REPO = Path(__file__).resolve().parents[2]


def test_installer_writes_fast_launchers_that_work(tmp_path, netns):
    lib, bin_dir = tmp_path / "opt-cni" / "netbind", tmp_path / "opt-cni" / "bin"
    env = {"SRC_LIB": str(REPO / "src"), "LIB_DIR": str(lib), "CNI_BIN_DIR": str(bin_dir),
           "NODE_LIB_PATH": str(lib), "NODE_PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}
    for _ in range(2):  # re-running (a DaemonSet restart) replaces everything in place
        subprocess.run(["sh", str(REPO / "deploy/cni/install.sh")], env=env, check=True,
                       capture_output=True)
    launcher = bin_dir / "netbind-cni-passt-binding"
    assert launcher.read_text().startswith(f"#!{sys.executable} -IS\n")
    assert sorted(p.name for p in bin_dir.iterdir()) == ["netbind-cni-bridge-binding", "netbind-cni-macvtap",
                                                          "netbind-cni-passt-binding"]
    assert cmd_version(str(launcher))["supportedVersions"][-1] == "1.1.0"
    conf = {"cniVersion": "1.0.0", "name": "nb-deploy", "type": "netbind-cni-passt-binding",
            "dataDir": str(tmp_path / "state")}
    assert cmd_add(str(launcher), conf, netns=netns.path, ifname="eth0").interfaces == []
    assert netns.sysctl("net.ipv4.ip_unprivileged_port_start") == "0"
    cmd_del(str(launcher), conf, netns=netns.path, ifname="eth0")
    assert netns.sysctl("net.ipv4.ip_unprivileged_port_start") == "1024"


def test_daemonset_mounts_the_directories_the_installer_writes():
    ds = yaml.safe_load((REPO / "deploy/cni/daemonset.yaml").read_text())
    pod = ds["spec"]["template"]["spec"]
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= labels.items()
    container = pod["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    host = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
    assert {mounts[n]: host[n] for n in mounts} == {"/host/opt/cni": "/opt/cni"}
    script = (REPO / "deploy/cni/install.sh").read_text()
    assert "CNI_BIN_DIR=${CNI_BIN_DIR:-/host/opt/cni/bin}" in script
    assert "LIB_DIR=${LIB_DIR:-/host/opt/cni/netbind}" in script
    assert "NODE_LIB_PATH=${NODE_LIB_PATH:-/opt/cni/netbind}" in script
    assert "deploy/cni/install.sh" in (REPO / "deploy/cni/Containerfile").read_text()
