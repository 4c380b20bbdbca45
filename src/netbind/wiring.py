"""A picture of the launcher pod's wiring: the pure graph (DOT text) and the effectful `dot` run.

``from_explanation`` turns what ``netbind.review.explain`` composes into a ``Wiring`` (the pod's
network namespace, per network its CNI chain, pod interface, tap/bridge/dummy, sidecar and the
domain interface); ``to_dot`` draws it as Graphviz DOT text; ``render`` runs Debian's ``dot``.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netbind.controller.pod import HOOK_SOCKETS_DIR


@dataclass
class Network:
    name: str  # the logical network (interface) name
    kind: str  # "pod network", "Multus secondary network ns/nad", ...
    binding: str
    pod_interface: str | None
    cni: list[str] = field(default_factory=list)
    tap: str | None = None
    bridge: str | None = None
    dummy: str | None = None
    sidecar: str | None = None  # container name
    sidecar_image: str | None = None
    domain: str = ""  # how the guest gets its NIC


@dataclass
class Wiring:
    title: str
    networks: list[Network]
    extra_links: dict[str, str] = field(default_factory=dict)  # pod links no network accounts for: name -> kind


def from_explanation(data: dict[str, Any], manifests: Any, profile: Any) -> Wiring:
    """The wiring of ``review.explain``'s answer (tap/bridge names from KubeVirt's naming)."""
    from netbind import bindings, naming
    from netbind.review import configuration

    vmi = profile.decoded(manifests.vmi)
    attachments = bindings.domain_attachment_by_interface_name(vmi, configuration(manifests))
    registry = configuration(manifests).bindings
    networks = []
    for item in data["interfaces"]:
        iface = next(i for i in vmi.spec.interfaces if i.name == item["name"])
        net = vmi.spec.network(iface.name)
        pod_iface = item.get("podInterface")
        network = Network(name=item["name"], kind=item["network"], binding=item["binding"],
                          pod_interface=pod_iface, cni=list(item["cni"]), domain=item.get("domain", ""))
        if attachments.get(iface.name) == bindings.TAP and net is not None and pod_iface:
            network.tap = naming.tap_name(pod_iface, net)
            entry = registry.get(iface.binding.name) if iface.binding else None
            if entry is not None and entry.domain_attachment_type == bindings.MANAGED_TAP:
                network.bridge = naming.bridge_name(pod_iface)
                network.dummy = pod_iface  # the dummy keeps the pod address under the pod's name
                network.pod_interface = naming.renamed_pod_nic_name(pod_iface)
        if "sidecar" in item:
            network.sidecar = item["sidecar"]["container"]
            network.sidecar_image = item["sidecar"]["image"]
        networks.append(network)
    return Wiring(title=f"{data['vmi']} (KubeVirt {data['kubevirtVersion']})", networks=networks)


def from_pod_links(vmi: dict[str, Any], links: dict[str, dict], sidecars: list[str]) -> Wiring:
    """The wiring of a running VM from the real links of its pod (``ip -j -d link show`` by name),
    its VMI object (``netbind status -o json``) and its sidecar lines: what is there, not what
    KubeVirt intends. Pod links no interface accounts for are drawn on their own."""
    from netbind._iproute import link_kind

    def kind(name: str) -> str:
        return link_kind(links.get(name, {})) or "device"

    used = {"lo"}
    networks = []
    for status in vmi.get("status", {}).get("interfaces", []):
        if not status.get("name"):
            continue    # an interface only the guest agent knows (no domain NIC): nothing of the pod's
        pod_iface = status.get("podInterfaceName")
        network = Network(name=status["name"], kind=f"interface status ({status.get('infoSource', '?')})",
                          binding="", pod_interface=None)
        if pod_iface:
            base = pod_iface[3:] if pod_iface.startswith("pod") else pod_iface
            nic = f"{base}-nic" if f"{base}-nic" in links else pod_iface
            if nic in links:
                network.pod_interface = f"{nic} ({kind(nic)})"
                used.add(nic)
                master = links[nic].get("master")
                if master and kind(master) == "bridge":
                    network.bridge, _ = master, used.add(master)
            if nic != pod_iface and pod_iface in links:
                network.dummy, _ = pod_iface, used.add(pod_iface)
            tap = next((n for n, d in links.items() if n not in used and link_kind(d) == "tun"
                        and (d.get("master") == network.bridge if network.bridge else n == "tap" + pod_iface[3:])),
                       None)
            if tap:
                network.tap, _ = tap, used.add(tap)
        guest = status.get("interfaceName") or "?"
        where = ", ".join(x for x in (status.get("mac"), status.get("ipAddress")) if x)
        network.domain = f"guest {guest}" + (f" {where}" if where else "")
        networks.append(network)
    if sidecars:
        # a running pod's sidecars are not tied to networks in its state: drawn next to the first one
        for network in networks[:1]:
            network.sidecar, network.sidecar_image = "hook-sidecars", "\n".join(sidecars)
    meta = vmi.get("metadata", {})
    return Wiring(title=f"{meta.get('namespace', '?')}/{meta.get('name', '?')} (running here, from its pod's links)",
                  networks=networks,
                  extra_links={n: kind(n) for n in sorted(links) if n not in used})


def _id(*parts: str) -> str:
    """A DOT node id: ASCII letters, digits and underscores only (stable, so tests can find it)."""
    return "_".join(re.sub(r"[^A-Za-z0-9]", "_", p) for p in parts)


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(wiring: Wiring) -> str:
    """Graphviz DOT text of the wiring: pure, so it is tested without ``dot``.

    Node ids: ``podif_<net>``, ``cni_<net>_<i>``, ``tap_<net>``, ``bridge_<net>``, ``dummy_<net>``,
    ``sidecar_<container>``, ``socket_<container>``, ``domif_<net>``, ``link_<name>``."""
    lines = ["digraph wiring {", "  rankdir=LR;", "  compound=true;",
             '  node [shape=box, style="rounded,filled", fillcolor=white, fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=9];',
             f"  label={_q(wiring.title)}; labelloc=t;",
             "  subgraph cluster_pod {",
             f"    label={_q('virt-launcher pod: network namespace')}; style=rounded; color=steelblue;"]
    edges: list[str] = []
    sidecars: dict[str, str] = {}
    domain_nodes: list[str] = []
    for net in wiring.networks:
        n = net.name
        lines.append(f"    subgraph {_id('cluster_net', n)} {{")
        lines.append(f"      label={_q(f'network {n}: {net.kind}, {net.binding}')}; style=dashed; color=gray40;")
        previous = None
        for i, step in enumerate(net.cni):
            node = _id("cni", n, str(i))
            lines.append(f"      {node} [label={_q('CNI: ' + step)}, shape=note, fillcolor=lightyellow];")
            if previous:
                edges.append(f"  {previous} -> {node} [label=\"then\"];")
            previous = node
        if net.pod_interface:
            podif = _id("podif", n)
            lines.append(f"      {podif} [label={_q('pod interface ' + net.pod_interface)}, fillcolor=lightblue];")
            if previous:
                edges.append(f"  {previous} -> {podif} [label=\"creates\", style=dashed];")
        if net.bridge:
            lines.append(f"      {_id('bridge', n)} [label={_q('bridge ' + net.bridge)}, fillcolor=palegreen];")
            if net.pod_interface:
                edges.append(f"  {_id('podif', n)} -> {_id('bridge', n)} [label=\"port\", dir=none];")
        if net.dummy:
            lines.append(f"      {_id('dummy', n)} [label={_q('dummy ' + net.dummy + ' (pod address)')}, "
                         "fillcolor=gray90];")
        if net.tap:
            tap = _id("tap", n)
            lines.append(f"      {tap} [label={_q('tap ' + net.tap)}, fillcolor=orange];")
            upstream = _id("bridge", n) if net.bridge else _id("podif", n) if net.pod_interface else None
            if upstream:
                edges.append(f"  {upstream} -> {tap} [label=\"{'port' if net.bridge else 'carries'}\", dir=none];")
        lines.append("    }")
        domif = _id("domif", n)
        guest_label = f"domain interface ua-{n}\n{net.domain}" if net.domain else f"domain interface ua-{n}"
        domain_nodes.append(f"      {domif} [label={_q(_wrap(guest_label))}, shape=component, fillcolor=lavender];")
        if net.tap:
            edges.append(f"  {_id('tap', n)} -> {domif} [label=\"QEMU\"];")
        if net.sidecar:
            sidecars.setdefault(net.sidecar, net.sidecar_image or "")
            edges.append(f"  {_id('sidecar', net.sidecar)} -> {domif} [label=\"OnDefineDomain adds\", "
                         "style=dashed];")
    for name, link_type in wiring.extra_links.items():
        lines.append(f"    {_id('link', name)} [label={_q(f'link {name} ({link_type})')}, fillcolor=gray95];")
    for container, image in sidecars.items():
        lines.append(f"    {_id('sidecar', container)} [label={_q(f'sidecar {container}' + chr(10) + image)}, "
                     "shape=cds, fillcolor=mistyrose];")
        lines.append(f"    {_id('socket', container)} [label={_q(f'socket in {HOOK_SOCKETS_DIR}/')}, "
                     "shape=ellipse, fillcolor=white];")
        edges.append(f"  {_id('sidecar', container)} -> {_id('socket', container)} [label=\"listens\", dir=none];")
    lines.append("    subgraph cluster_domain {")
    lines.append(f"      label={_q('libvirt domain (QEMU in the compute container)')}; style=rounded; color=purple;")
    lines.extend(domain_nodes)
    lines.append("    }")
    lines.append("  }")
    lines.extend(edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _wrap(text: str, width: int = 48) -> str:
    import textwrap

    return "\n".join(textwrap.fill(part, width) for part in text.split("\n"))


class DiagramError(Exception):
    """``dot`` is missing or failed; the message says what to do."""


def render(dot_text: str, path: Path) -> None:
    """Write the picture to ``path``; the format is its suffix (svg, png, pdf, dot)."""
    fmt = path.suffix.lstrip(".").lower()
    if fmt == "dot":
        path.write_text(dot_text)
        return
    if fmt not in ("svg", "png", "pdf"):
        raise DiagramError(f"--diagram {path}: unknown picture format {fmt!r}; use a .svg, .png, .pdf or .dot name")
    dot = shutil.which("dot")
    if dot is None:
        raise DiagramError("--diagram needs Graphviz's dot: install the Debian package graphviz (make deps)")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        subprocess.run([dot, f"-T{fmt}", "-o", str(tmp)], input=dot_text.encode(), check=True,
                       capture_output=True, timeout=60)
        tmp.replace(path)
    except subprocess.TimeoutExpired:
        raise DiagramError("dot did not finish in 60 s") from None
    except subprocess.CalledProcessError as exc:
        raise DiagramError(f"dot failed: {exc.stderr.decode(errors='replace').strip()}") from None
    except OSError as exc:
        raise DiagramError(f"--diagram {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
