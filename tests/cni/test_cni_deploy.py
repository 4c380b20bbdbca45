"""deploy/cni: the installer image puts self-contained plugins on a node; they run with no Python there.

The installer runs as the DaemonSet runs it (privileged, the node's /opt/cni mounted at
/host/opt/cni) against a node directory; the plugins then run in a container whose root is a static
busybox and glibc's runtime libraries, nothing else (no Python, no iproute2), on real namespaces.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from netbind import _iproute, _podman, images
from netbind.plugins import cni_bundle
from netbind.testing import require_root
from netbind.testing.netns import create_netns, delete_netns, unique_name

REPO = Path(__file__).resolve().parents[2]
PLUGINS = sorted(cni_bundle.PLUGINS)
INSTALLER = images.IMAGES["cni"].tag
# what every glibc system has: the loader and the libraries the bundle's bootloader and libpython link
GLIBC_RUNTIME = ("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libm.so.6",
                 "/lib/x86_64-linux-gnu/libdl.so.2", "/lib/x86_64-linux-gnu/libpthread.so.0")


# ---- pure parts ----------------------------------------------------------------------------------

def test_bundle_runs_the_plugin_it_is_named_after(capsys):
    with pytest.raises(SystemExit) as exited:
        cni_bundle.main(["/opt/cni/bin/netbind-cni"])
    assert exited.value.code == 2
    assert "run it as one of netbind-cni-passt-binding" in capsys.readouterr().err
    assert set(cni_bundle.PLUGINS) <= set(_pyproject_scripts())   # the same names as the wheel's scripts


def _pyproject_scripts() -> dict[str, str]:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def test_bundle_modules_are_the_wheels_entry_points():
    scripts = _pyproject_scripts()
    for name, module in cni_bundle.PLUGINS.items():
        assert scripts[name] == f"{module}:main"


def test_daemonset_runs_the_installer_on_the_node_cni_directory():
    ds = yaml.safe_load((REPO / "deploy/cni/daemonset.yaml").read_text())
    pod = ds["spec"]["template"]["spec"]
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= labels.items()
    container = pod["containers"][0]
    assert container["image"] == INSTALLER and container["securityContext"]["privileged"] is True
    assert "env" not in container   # nothing of the node (no NODE_PYTHON) is needed any more
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    host = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
    assert {mounts[n]: host[n] for n in mounts} == {"/host/opt/cni": "/opt/cni"}
    assert "CNI_BIN_DIR=${CNI_BIN_DIR:-/host/opt/cni/bin}" in (REPO / "deploy/cni/install.sh").read_text()


# ---- the installer image on a node directory (root, podman) ----------------------------------------

def _install(node: Path, *extra: str) -> str:
    (node / "opt/cni").mkdir(parents=True, exist_ok=True)
    return _podman.run("run", "--rm", "--privileged", "--network=none", "-v", f"{node}/opt/cni:/host/opt/cni",
                       *extra, "--entrypoint", "/usr/local/bin/netbind-cni-install", INSTALLER, timeout=120).stdout


def _versions(bin_dir: Path) -> list[str]:
    return sorted(p.name for p in (bin_dir / ".netbind").iterdir())


@pytest.fixture(scope="module")
def node(built_images, tmp_path_factory) -> Path:
    """A node directory the installer image has installed into."""
    node = tmp_path_factory.mktemp("nb-node")
    _install(node)
    return node


@pytest.fixture(scope="module")
def pythonless_root(built_images, node, tmp_path_factory) -> Path:
    """A root with a static busybox, glibc's runtime libraries and the installed /opt/cni: no Python."""
    root = tmp_path_factory.mktemp("nb-root")
    for directory in ("bin", "lib64", "lib/x86_64-linux-gnu", "run/netns", "proc", "sys", "dev", "tmp", "var"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    _podman.run("run", "--rm", "--network=none", "-v", f"{root}/bin:/out", "--entrypoint", "/bin/cp", INSTALLER,
                "/bin/busybox", "/out/busybox", timeout=60)
    (root / "bin/sh").symlink_to("busybox")
    for lib in GLIBC_RUNTIME:
        shutil.copy(Path(lib).resolve(), root / lib.lstrip("/"))
    shutil.copytree(node / "opt", root / "opt", symlinks=True)
    outside_bundle = [p for p in root.rglob("*") if ".netbind" not in p.parts]
    assert not [p for p in outside_bundle if "python" in p.name or p.name in ("ip", "bridge")]
    return root


def test_installer_links_each_plugin_to_one_versioned_bundle(node):
    bin_dir = node / "opt/cni/bin"
    (version,) = _versions(bin_dir)
    assert sorted(p.name for p in bin_dir.iterdir() if not p.name.startswith(".")) == PLUGINS
    for name in PLUGINS:
        link = bin_dir / name
        assert link.is_symlink() and not Path(link.readlink()).is_absolute()  # works wherever it is mounted
        assert link.readlink() == Path(".netbind", version, "netbind-cni")
    assert (bin_dir / ".netbind" / version / "VERSION").read_text().strip() == version


def _plugin(root: Path, plugin_netns, name: str, command: str, conf: dict, pod, ifname: str,
            prev: dict | None = None) -> tuple[int, dict, str]:
    """One CNI call of an installed plugin, in the Python-less root, from ``plugin_netns``."""
    if prev is not None:
        conf = {**conf, "prevResult": prev}
    argv = _podman.argv("run", "--rm", "-i", "--privileged", "--network", f"ns:{plugin_netns.path}",
                        "-v", "/run/netns:/run/netns", "-e", f"CNI_COMMAND={command}", "-e", "CNI_CONTAINERID=nb-c1",
                        "-e", f"CNI_NETNS={pod.path}", "-e", f"CNI_IFNAME={ifname}", "-e", "CNI_PATH=/opt/cni/bin",
                        "--rootfs", str(root), f"/opt/cni/bin/{name}")
    proc = subprocess.run(argv, input=json.dumps(conf), capture_output=True, text=True, timeout=60,
                          env=_podman.environment())
    return proc.returncode, json.loads(proc.stdout or "{}"), proc.stderr


@pytest.fixture
def pod_and_node():
    """A pod namespace and a "node" namespace the plugins run in (so nothing touches the host's)."""
    require_root()
    pod, node_ns = create_netns(), create_netns()
    try:
        yield pod, node_ns
    finally:
        delete_netns(pod)
        delete_netns(node_ns)


def test_plugins_run_in_a_root_without_python(pythonless_root, pod_and_node):
    pod, node_ns = pod_and_node
    call = lambda *a, **k: _plugin(pythonless_root, node_ns, *a, pod=pod, **k)  # noqa: E731
    for name in PLUGINS:
        rc, out, _ = call(name, "VERSION", {"cniVersion": "1.0.0"}, ifname="eth0")
        assert rc == 0 and "1.0.0" in out["supportedVersions"]

    # passt binding: unprivileged ports in the pod (passt binds them as the VM's user)
    passt = {"cniVersion": "1.0.0", "name": "nb-passt", "type": "netbind-cni-passt-binding"}
    rc, out, err = call("netbind-cni-passt-binding", "ADD", passt, ifname="eth0")
    assert rc == 0, err
    assert pod.sysctl("net.ipv4.ip_unprivileged_port_start") == "0"
    assert call("netbind-cni-passt-binding", "CHECK", passt, ifname="eth0", prev=out)[0] == 0
    assert call("netbind-cni-passt-binding", "DEL", passt, ifname="eth0")[0] == 0
    assert pod.sysctl("net.ipv4.ip_unprivileged_port_start") == "1024"

    # macvtap on a lower device of the plugin's namespace, created in the pod by the bundled iproute2
    lower = unique_name("nb-l")
    node_ns.ip("link", "add", lower, "type", "bridge")
    node_ns.ip("link", "set", lower, "up")
    macvtap = {"cniVersion": "1.0.0", "name": "nb-mvt", "type": "netbind-cni-macvtap", "master": lower, "mtu": 1400}
    rc, out, err = call("netbind-cni-macvtap", "ADD", macvtap, ifname="net1")
    assert rc == 0, err
    link = _iproute.link("net1", netns=pod.name)
    assert _iproute.link_kind(link) == "macvtap" and link["mtu"] == 1400 and "UP" in link["flags"]
    assert out["interfaces"][0]["mac"] == link["address"]
    assert call("netbind-cni-macvtap", "CHECK", macvtap, ifname="net1", prev=out)[0] == 0
    assert call("netbind-cni-macvtap", "DEL", macvtap, ifname="net1")[0] == 0
    assert _iproute.link("net1", netns=pod.name) is None

    # bridge binding: the in-pod bridge, tap and dummy of KubeVirt's layout, and back
    peer = unique_name("nb-p")
    pod.ip("link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", node_ns.name)
    pod.ip("addr", "add", "10.99.0.2/24", "dev", "eth0")
    pod.ip("link", "set", "eth0", "up")
    before = set(_iproute.links(pod.name))
    bridge = {"cniVersion": "1.0.0", "name": "nb-bridge", "type": "netbind-cni-bridge-binding"}
    rc, out, err = call("netbind-cni-bridge-binding", "ADD", bridge, ifname="eth0")
    assert rc == 0, err
    after = _iproute.links(pod.name)
    assert {"k6t-eth0", "eth0-nic", "tap0", "eth0"} <= set(after)
    assert after["tap0"].get("master") == "k6t-eth0"
    assert call("netbind-cni-bridge-binding", "CHECK", bridge, ifname="eth0", prev=out)[0] == 0
    assert call("netbind-cni-bridge-binding", "DEL", bridge, ifname="eth0")[0] == 0
    assert set(_iproute.links(pod.name)) == before


def test_upgrade_in_place_never_shows_a_half_written_plugin(built_images, tmp_path):
    """A second version installs while a runtime keeps calling the plugin: every call answers; the
    version the links used before stays, older ones go."""
    node = tmp_path / "node"
    _install(node)
    bin_dir = node / "opt/cni/bin"
    (first,) = _versions(bin_dir)
    plugin = bin_dir / "netbind-cni-passt-binding"

    def bundle_as(version: str) -> Path:   # the same bundle, as a new release would ship it
        copy = tmp_path / f"bundle-{version}"
        shutil.copytree(bin_dir / ".netbind" / first, copy, symlinks=True)
        (copy / "VERSION").write_text(version + "\n")
        return copy

    failures, calls, stop = [], [0], threading.Event()

    def runtime() -> None:
        while not stop.is_set():
            proc = subprocess.run([str(plugin)], env={"CNI_COMMAND": "VERSION"}, input='{"cniVersion":"1.0.0"}',
                                  capture_output=True, text=True)
            calls[0] += 1
            if proc.returncode != 0 or "supportedVersions" not in proc.stdout:
                failures.append((proc.returncode, proc.stderr[-300:]))

    caller = threading.Thread(target=runtime)
    caller.start()
    try:
        for version in ("nb-upgrade-2", "nb-upgrade-3"):
            _install(node, "-v", f"{bundle_as(version)}:/opt/nb-new:ro", "-e", "SRC=/opt/nb-new")
    finally:
        stop.set()
        caller.join()
    assert calls[0] > 0 and failures == []
    assert plugin.readlink() == Path(".netbind/nb-upgrade-3/netbind-cni")
    assert _versions(bin_dir) == ["nb-upgrade-2", "nb-upgrade-3"]   # the previous stays, the first went


def _glibc_needed(directory: Path) -> dict[str, str]:
    """The newest GLIBC_x.y each ELF file needs (its version references), by path."""
    needed = {}
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.read_bytes()[:4] != b"\x7fELF":
            continue
        out = subprocess.run(["objdump", "-T", str(path)], capture_output=True, text=True).stdout
        versions = {tuple(map(int, v.split("."))) for v in re.findall(r"\(GLIBC_([0-9.]+)\)", out)}
        if versions:
            needed[str(path.relative_to(directory))] = ".".join(map(str, max(versions)))
    return needed


def test_oldest_node_glibc_is_what_the_readme_states(node):
    (version,) = _versions(node / "opt/cni/bin")
    bundle = node / "opt/cni/bin/.netbind" / version
    # iproute2/ runs through its own loader and libc: only the rest meets the node's glibc
    needed = {path: v for path, v in _glibc_needed(bundle).items() if not path.startswith("iproute2/")}
    floor = max(needed.values(), key=lambda v: tuple(map(int, v.split("."))))
    stated = re.search(r"oldest node glibc: \*\*(\d+\.\d+)\*\*", (REPO / "README.md").read_text())
    assert stated, "README states the CNI bundle's glibc floor as 'oldest node glibc: **X.Y**'"
    assert floor == stated.group(1), {p: v for p, v in needed.items() if v == floor}
