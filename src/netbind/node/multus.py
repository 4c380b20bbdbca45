"""The node's primary network and the Multus role: CNI attachments of a pod, recorded in its journal.

The pod network comes from a node CNI configuration (default: Debian's ``bridge`` + ``host-local``;
the plugins run inside the node namespace, so bridges and IPAM state never touch the root
namespace). Then each element of the pod's ``k8s.v1.cni.cncf.io/networks`` annotation is delegated
in order, as Multus does: the NAD's config, the element's interface (default ``net<N>``), its
``cni-args`` as ``args.cni`` and its ``mac``. A NAD with a ``k8s.v1.cni.cncf.io/resourceName`` gets
the device plugin's ``deviceID`` (the part after ``/``: the lower device of macvtap-cni), and the
node provides that device as an L2 segment with a DHCP server (dnsmasq) on it.

Each attachment is a journal entry of kind ``cni-attachment`` written *before* the ADD (config,
runtime conf, CNI path): its undo is the DEL, so a failure later in the chain, ``down`` and crash
cleanup all DEL what was added, newest first. ``network_status`` renders Multus' annotation.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from netbind import _iproute as iproute
from netbind.cni import CNIError
from netbind.cni.exec import CNIExecutor, RuntimeConf, nad_conflist, normalize_conflist
from netbind.node import procs
from netbind.node.journal import Journal

POD_NETWORK_NAME = "netbind-pod-network"
POD_SUBNET = "10.244.0"
WORLD_ADDRESS = "198.18.0.1"     # RFC 2544 benchmarking range: "the outside world", in the node netns
RESOURCE_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"


class AttachmentError(RuntimeError):
    """A CNI attachment failed; what was attached before it has been DELeted (newest first)."""


class PodNetworkError(ValueError):
    """The ``--pod-network`` file is not a CNI network configuration; the message names file and fix."""


def load_pod_network(path: str | Path) -> dict:
    """``netbind up --pod-network FILE``: the node's CNI network list for the pod network (JSON: a
    conflist or a single plugin configuration), read within netbind's input bounds and checked as
    the CNI executor will use it, before anything is set up."""
    from netbind.api.loading import ManifestError, read_data_file

    try:
        data = read_data_file(path, as_json=True)
    except ManifestError as exc:
        raise PodNetworkError(f"--pod-network {exc}") from None
    where = f"--pod-network {path}"
    if not isinstance(data, Mapping):
        raise PodNetworkError(f"{where}: expected a JSON object (a CNI network list with name and plugins,"
                              " or one plugin configuration with type)")
    plugins = data.get("plugins", [data])
    for member in ("name", "cniVersion"):
        if member in data and not isinstance(data[member], str):
            raise PodNetworkError(f"{where}: {member!r} must be a string")
    if isinstance(plugins, list):
        for index, plugin in enumerate(plugins):
            if not isinstance(plugin, Mapping) or not isinstance(plugin.get("type"), str):
                raise PodNetworkError(f"{where}: plugins[{index}] needs 'type', the CNI plugin's name "
                                      "(e.g. bridge)")
    try:
        return normalize_conflist(data)
    except CNIError as exc:
        raise PodNetworkError(f"{where}: {exc}") from None


def default_pod_network(ipam_dir: Path, node: int = 0) -> dict:
    """The pod network of node ``node``: its own bridge and pod CIDR (10.244.<node>.0/24), as each
    node of a cluster has; the node namespace routes between them like the cluster network."""
    subnet = f"10.244.{node}" if node else POD_SUBNET
    return {"cniVersion": "1.0.0", "name": POD_NETWORK_NAME, "plugins": [
        {"type": "bridge", "bridge": f"nb-br{node}", "isGateway": True, "ipMasq": False, "hairpinMode": False,
         "ipam": {"type": "host-local", "dataDir": str(ipam_dir / f"node{node}" if node else ipam_dir),
                  "ranges": [[{"subnet": f"{subnet}.0/24", "rangeStart": f"{subnet}.10",
                               "gateway": f"{subnet}.1"}]],
                  "routes": [{"dst": "0.0.0.0/0"}]}}]}


@dataclass(frozen=True)
class Attachment:
    """One CNI ADD of a pod: which network, as which interface, and its result."""
    network: str                 # "namespace/name" of the NAD, or the pod network's name
    ifname: str
    result: dict
    default: bool = False
    mac: str | None = None

    def status(self) -> dict[str, Any]:
        """This attachment's entry of Multus' network-status annotation."""
        entry: dict[str, Any] = {"name": self.network}
        sandbox_if = next((i for i in self.result.get("interfaces", []) if i.get("name") == self.ifname
                           and i.get("sandbox")), None)
        if sandbox_if is not None or self.default:
            # like Multus: a result without a pod interface (the passt binding CNI's) names none
            entry["interface"] = self.ifname
        ips = [ip["address"].split("/")[0] for ip in self.result.get("ips", [])
               if not ip.get("interface") or _iface_name(self.result, ip["interface"]) == self.ifname]
        if ips:
            entry["ips"] = ips
        mac = (sandbox_if or {}).get("mac") or self.mac
        if mac:
            entry["mac"] = mac
        if self.default:
            entry["default"] = True
        gateways = [ip["gateway"] for ip in self.result.get("ips", []) if ip.get("gateway")]
        if self.default and gateways:
            entry["gateway"] = gateways
        entry["dns"] = self.result.get("dns") or {}
        return entry


def _iface_name(result: dict, index: int) -> str | None:
    interfaces = result.get("interfaces", [])
    return interfaces[index].get("name") if 0 <= index < len(interfaces) else None


def network_status(attachments: Sequence[Attachment]) -> str:
    return json.dumps([a.status() for a in attachments], indent=1)


def executor(cni_path: Sequence[str], cache_dir: Path, node_netns: str) -> CNIExecutor:
    return CNIExecutor(cni_path, cache_dir, plugin_netns=node_netns)


def attach(journal: Journal, cni: CNIExecutor, conflist: Mapping, rt: RuntimeConf, network: str,
           default: bool = False) -> Attachment:
    """ADD one network list, journalled before the call (undo = DEL)."""
    conf = normalize_conflist(conflist)
    entry = journal.intend("cni-attachment", f"{network}:{rt.ifname}", conflist=conf,
                           container_id=rt.container_id, netns=rt.netns, ifname=rt.ifname,
                           args=[list(a) for a in rt.args], capability_args=dict(rt.capability_args),
                           cni_path=list(cni.cni_path), cache_dir=str(cni.cache_dir),
                           plugin_netns=cni.plugin_netns)
    try:
        result = cni.add_network_list(conf, rt)
    except CNIError as exc:
        journal.forget(entry)   # the executor already DELeted the plugins of this list
        raise AttachmentError(f"CNI ADD of {network} as {rt.ifname} failed: {exc}") from None
    journal.created(entry)
    mac = rt.capability_args.get("mac") if rt.capability_args else None
    return Attachment(network, rt.ifname, result, default, str(mac) if mac else None)


def undo_attachment(attrs: dict[str, Any]) -> None:
    cni = CNIExecutor(attrs["cni_path"], attrs["cache_dir"], plugin_netns=attrs.get("plugin_netns"))
    if attrs.get("plugin_netns") and not iproute.netns_exists(attrs["plugin_netns"]):
        return  # the node namespace is gone, and with it every link and address the plugins made
    rt = RuntimeConf(attrs["container_id"], attrs["netns"], attrs["ifname"],
                     [tuple(a) for a in attrs.get("args", [])], attrs.get("capability_args") or {})
    cni.del_network_list(attrs["conflist"], rt)


def multus_runtime(ifname: str, netns_path: str, container_id: str, mac: str | None, pod_namespace: str,
                   pod_name: str, pod_uid: str) -> RuntimeConf:
    args = [("IgnoreUnknown", "true"), ("K8S_POD_NAMESPACE", pod_namespace), ("K8S_POD_NAME", pod_name),
            ("K8S_POD_INFRA_CONTAINER_ID", container_id), ("K8S_POD_UID", pod_uid)]
    caps: dict[str, Any] = {}
    if mac:
        args.append(("MAC", mac))
        caps["mac"] = mac
    return RuntimeConf(container_id, netns_path, ifname, args, caps)


def selection_elements(annotation: str | None) -> list[dict]:
    if not annotation:
        return []
    elements = json.loads(annotation)
    return elements if isinstance(elements, list) else []


def nad_delegate_config(nad_config: str, cni_args: Mapping | None, device_id: str | None) -> dict:
    """What Multus runs for a NAD: its config, cni-args as args.cni, the device plugin's deviceID."""
    conf = nad_conflist(nad_config, cni_args)
    if device_id:
        for plugin in conf["plugins"]:
            if not plugin.get("master") and not plugin.get("deviceID"):
                plugin["deviceID"] = device_id
    return copy.deepcopy(conf)


def device_id_of(annotations: Mapping[str, str] | None) -> str | None:
    """macvtap-cni's device plugin hands out ``macvtap.network.kubevirt.io/<lower device>``."""
    resource = (annotations or {}).get(RESOURCE_ANNOTATION, "")
    return resource.rsplit("/", 1)[1] if "/" in resource else None


# ---- the node side: its "outside world" address and L2 segments for lower devices -----------------

@dataclass(frozen=True)
class Segment:
    lower: str          # the lower device in the node netns (what deviceID names)
    peer: str           # its veth peer, where the DHCP server listens
    subnet: str         # e.g. 10.250.17

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"


def segment_for(lower: str) -> Segment:
    digest = hashlib.sha256(lower.encode()).digest()
    return Segment(lower, "nbl2" + digest[:4].hex()[:8], f"10.250.{digest[4] % 250 + 1}")


def ensure_world(journal: Journal, netns: str) -> None:
    """198.18.0.1 on the node namespace's loopback: a server there is 'outside' the pods, reached
    through the pod's default route (the node's gateway address itself is special to passt, which
    maps it to the pod's own loopback)."""
    shown = iproute.ip("-4", "-o", "addr", "show", "dev", "lo", netns=netns)
    if f" {WORLD_ADDRESS}/32 " not in shown:
        iproute.ip("addr", "add", f"{WORLD_ADDRESS}/32", "dev", "lo", netns=netns)


def ensure_segment(journal: Journal, netns: str, directory: Path, lower: str) -> Segment:
    """The lower device (a veth end) plus a dnsmasq DHCP server on its peer, owned by the node."""
    segment = segment_for(lower)
    if iproute.link_exists(lower, netns):
        return segment
    entry = journal.intend("link", lower, netns=netns)
    iproute.ip("link", "add", lower, "type", "veth", "peer", "name", segment.peer, netns=netns)
    journal.created(entry)
    iproute.ip("addr", "add", f"{segment.gateway}/24", "dev", segment.peer, netns=netns)
    for link in (lower, segment.peer):
        iproute.ip("link", "set", link, "up", netns=netns)
    name = f"dnsmasq-{lower}"
    argv = ("dnsmasq", "--no-daemon", "--port=0", f"--interface={segment.peer}", "--bind-interfaces",
            f"--dhcp-range={segment.subnet}.100,{segment.subnet}.199,10m", f"--dhcp-option=option:router,{segment.gateway}",
            "--dhcp-authoritative", "--no-ping", "--no-resolv", "--no-hosts", "--log-dhcp",
            f"--dhcp-leasefile={directory / f'{name}.leases'}")
    spec = procs.ProcessSpec(name, argv, directory / "logs" / f"{name}.log", directory / "pids" / f"{name}.pid",
                             netns=netns)
    proc_entry = journal.intend("process", name, log=str(spec.log), pidfile=str(spec.pidfile))
    record = procs.start(spec)
    journal.created(proc_entry, **record.attrs())
    return segment


# ---- the pod network's IPv6 router ----------------------------------------------------------------

RA_PROCESS = "router-advertisements"
RA_INTERVAL = 4.0   # the shortest RFC 4861 allows: a guest that boots between two RAs waits at most this


def ensure_router_advertisements(journal: Journal, netns: str, directory: Path, result: dict) -> str | None:
    """On a dual-stack pod network the node's gateway is an IPv6 router, and a router advertises:
    RAs on the node side of the pod network (the CNI bridge) with the subnet's prefix (M, O and A
    flags: DHCPv6 where the guest runs a client, else SLAAC) and itself as the default router. Guests
    behind a bridge binding get their IPv6 default route from here, as on a real network. Started
    once per node (a process in the node's journal); returns what it advertises, or None."""
    import ipaddress
    import sys

    v6 = [ip for ip in result.get("ips", []) if ipaddress.ip_interface(ip["address"]).version == 6]
    l2 = next((i.get("name") for i in result.get("interfaces", []) if not i.get("sandbox")), None)
    if not v6 or not v6[0].get("gateway") or not l2:
        return None
    prefix = str(ipaddress.ip_interface(v6[0]["address"]).network)
    what = f"IPv6 router advertisements for {prefix} on {l2} (the node plays the pod network's router)"
    if journal.find("process", RA_PROCESS):
        return what
    argv = (sys.executable, "-m", "netbind.cli", "dhcp", "serve", "-i", l2, "--client-mac", "02:00:00:00:00:01",
            "--ra", "--ra-prefix", prefix, "--slaac", "--ra-interval", str(RA_INTERVAL))
    spec = procs.ProcessSpec(RA_PROCESS, argv, directory / "logs" / f"{RA_PROCESS}.log",
                             directory / "pids" / f"{RA_PROCESS}.pid", netns=netns)
    entry = journal.intend("process", RA_PROCESS, log=str(spec.log), pidfile=str(spec.pidfile))
    record = procs.start(spec)
    journal.created(entry, **record.attrs())
    return what
