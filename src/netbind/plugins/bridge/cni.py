"""``netbind-cni-bridge-binding``: the bridge binding plugin's CNI (the privileged half).

Chained like KubeVirt's passt binding CNI (a binding NAD with ``cni-args.logicNetworkName``), it
finds the pod link of that network (``pod<hash>``, else ``eth0``), and in the pod namespace builds
KubeVirt's bridge-binding layout (``netbind.netpod``): in-pod bridge ``k6t-eth0`` with the
link-local ``169.254.75.10/32``, the pod link renamed ``eth0-nic`` on it with its IP configuration
removed, tap ``tap0``, and a dummy ``eth0`` keeping the pod link's MAC, MTU and addresses.

Hand-off to the sidecar: the dummy link carries the configuration. Its addresses are the pod's, and
its ``ifalias`` (``/sys/class/net/eth0/ifalias``, readable by any process of the pod, no capability
needed, which a file on the node is not: KubeVirt mounts nothing of the node into sidecars) holds
compact JSON: ``{"netbind.io/bridge-binding":1,"mac":...,"mtu":...,"ips":[...],"gateways":[...]}``.
ADD also sets ``net.ipv4.ip_unprivileged_port_start=0`` so a non-root sidecar can bind UDP 67 and 547.

DEL restores the pod exactly: links, names, MACs, MTU, addresses, routes and sysctls as ADD found
them (state file ``<dataDir>/<network>/<containerID>-<ifname>.json``, default dataDir
``/var/lib/cni/netbind/bridge-binding``, with the namespace's inode so a reused path is never
touched). A repeated ADD into the same live namespace succeeds without changes while the layout
stands (KubeVirt's binding CNI is idempotent; the plugin creates no ``CNI_IFNAME`` link, so the
spec's "interface exists" error does not apply), and is refused naming the missing part (code 100,
run DEL, which restores) when it does not. A stale state file (its namespace gone or another one,
the runtime never sent DEL) is undone where its namespace still lives, and ADD proceeds. Netconf: ``tapOwner`` (default 107, KubeVirt's non-root qemu; 0 for root VMIs),
``queues`` (> 1: multi-queue tap), ``dataDir``.
"""
from __future__ import annotations

import hashlib
import json
import os

from netbind.cni import CNIError, NetNS, Plugin
from netbind.cni._state import (
    attachment_state_path,
    load_attachment_state,
    recorded_netns,
    records_netns,
    save_attachment_state,
    state_for_add,
)
from netbind.cni._types import ERR_INVALID_NETWORK_CONFIG

ERR_ALREADY_SET_UP = 100
ERR_NOT_SET_UP = 101
ERR_LAYOUT = 102

DEFAULT_DATA_DIR = "/var/lib/cni/netbind/bridge-binding"
HANDOFF_KEY = "netbind.io/bridge-binding"
IFALIAS_MAX = 255
PORT_SYSCTL = ("net.ipv4.ip_unprivileged_port_start", "0")

plugin = Plugin("netbind-bridge-binding",
                about="netbind bridge binding CNI plugin: in-pod bridge + tap, configuration handed to the sidecar")


def pod_interface_name(ns, logic_network: str) -> str:
    """KubeVirt's lookup: the hashed name of the network, else the primary ``eth0``."""
    hashed = "pod" + hashlib.sha256(logic_network.encode()).hexdigest()[:11]
    return hashed if logic_network and hashed in ns.links() else "eth0"


def _names(pod_iface: str) -> dict:
    short = pod_iface[3:] if pod_iface.startswith("pod") else pod_iface
    return {"bridge": "k6t-" + short, "port": short + "-nic", "tap": "tap0" if pod_iface == "eth0" else "tap" + short}


def handoff(pod, pod_iface_gateways) -> str:
    """The ifalias text for the sidecar (compact JSON, at most 255 bytes)."""
    data = {HANDOFF_KEY: 1, "mac": pod.mac, "mtu": pod.mtu, "ips": list(pod.addresses),
            "gateways": pod_iface_gateways}
    text = json.dumps(data, separators=(",", ":"))
    if len(text.encode()) > IFALIAS_MAX:
        raise CNIError(ERR_LAYOUT, f"the pod interface's configuration does not fit the {IFALIAS_MAX}-byte "
                                   f"link alias ({len(text)} bytes): too many addresses")
    return text


def _state_path(args) -> str:
    return attachment_state_path(args, DEFAULT_DATA_DIR)


def _int_option(netconf: dict, key: str, default: int, low: int, high: int) -> int:
    value = netconf.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CNIError(ERR_INVALID_NETWORK_CONFIG, f"{key} must be an integer from {low} to {high}, got {value!r}")
    return value


def _restore(state: dict) -> None:
    from netbind import netpod

    netns = recorded_netns(state)
    if netns is None:
        return  # the namespace is gone or the path now names another one
    with netns:
        ns = netpod.Namespace()
        netpod.restore(ns, netpod.PodLinkState.from_json(state["podLink"]), netpod.Layout(**state["layout"]))
        key, _ = PORT_SYSCTL
        ns.sysctl(key, state["portStart"])


@plugin.add
def add(args):
    from netbind import netpod

    path = _state_path(args)
    prev = args.prev_result            # read (and refused if broken) before anything changes
    logic_network = args.cni_args.get("logicNetworkName", "")
    if not isinstance(logic_network, str):
        raise CNIError(ERR_INVALID_NETWORK_CONFIG, f"args.cni.logicNetworkName must be a string (the VMI's network "
                                                   f"name), got {logic_network!r}")
    owner = _int_option(args.netconf, "tapOwner", netpod.NON_ROOT_OWNER, 0, 2**31 - 1)
    queues = _int_option(args.netconf, "queues", 0, 0, 256)
    netns = NetNS(args.netns)
    netns.open()  # a missing namespace fails here, before any state is touched
    earlier = state_for_add(path, netns, _restore, args.log)
    with netns:
        ns = netpod.Namespace()
        if earlier is not None:  # a repeated ADD into the same live namespace
            problem = _layout_problem(earlier, ns.links())
            if problem:
                raise CNIError(ERR_ALREADY_SET_UP, f"bridge binding was set up for container {args.container_id} "
                                                   f"ifname {args.ifname} on network {args.name}, but {problem}; "
                                                   "run DEL first (it restores the pod)")
            args.log(f"bridge binding for {logic_network}: already set up")
            return prev
        pod_iface = pod_interface_name(ns, logic_network)
        try:
            pod = netpod.observe(ns, pod_iface)
        except netpod.LayoutError as exc:
            raise CNIError(ERR_LAYOUT, str(exc)) from None
        gateways = [r.gateway for r in pod.routes if r.dst == "default" and r.gateway]
        alias = handoff(pod, gateways)
        layout = netpod.Layout(**_names(pod_iface), queues=queues, owner=owner,
                               bridge_address=netpod.BRIDGE_LINK_LOCAL, dummy=netpod.dummy_kind(ns))
        state = {"netns": args.netns, "netnsInode": list(netns.inode()), "podLink": pod.to_json(),
                 "layout": layout.__dict__, "portStart": ns.sysctl(PORT_SYSCTL[0])}
        save_attachment_state(path, state)   # written first: a crash mid-ADD is still DELeted exactly
        try:
            netpod.build(ns, pod, layout)
            ns.ip("link", "set", "dev", pod_iface, "alias", alias)
            ns.sysctl(*PORT_SYSCTL)
        except Exception as exc:
            try:
                netpod.restore(ns, pod, layout)
                ns.sysctl(PORT_SYSCTL[0], state["portStart"])
            finally:
                os.unlink(path)
            raise CNIError(ERR_LAYOUT, f"bridge binding layout for {pod_iface}: {exc}") from None
    args.log(f"bridge binding for {logic_network}: {pod_iface} on {layout.bridge}, tap {layout.tap}")
    return prev


@plugin.delete
def delete(args):
    path = _state_path(args)
    state = load_attachment_state(path)
    if state is None:
        return  # never added or already deleted: DEL is idempotent
    _restore(state)
    os.unlink(path)
    try:
        os.rmdir(os.path.dirname(path))   # the network's directory, once its last attachment is gone
    except OSError:
        pass


@plugin.check
def check(args):
    if args.prev_result is None:
        return
    state = load_attachment_state(_state_path(args))
    netns = NetNS(args.netns)
    if not records_netns(state, netns):
        raise CNIError(ERR_NOT_SET_UP, f"bridge binding is not set up for container {args.container_id} "
                                       f"in {args.netns}")
    from netbind import netpod

    with netns:
        problem = _layout_problem(state, netpod.Namespace().links())
    if problem:
        raise CNIError(ERR_NOT_SET_UP, f"{problem} in {args.netns}")


def _layout_problem(state: dict, links: dict) -> str | None:
    """What of the layout ``state`` recorded is not in place among ``links``, or None."""
    layout = state["layout"]
    for name in (layout["bridge"], layout["port"], layout["tap"], state["podLink"]["name"]):
        if name not in links:
            return f"link {name} of the bridge binding is missing"
    if links[layout["port"]].get("master") != layout["bridge"] or links[layout["tap"]].get("master") != layout["bridge"]:
        return f"{layout['port']} and {layout['tap']} must be ports of {layout['bridge']}"
    return None


main = plugin.main

if __name__ == "__main__":
    main()
