"""``netbind-cni-macvtap``: the CNI half of the zero-code macvtap binding (spec 7.6).

It creates a macvtap link on a lower device of the namespace it runs in, directly inside the pod
network namespace, named after the requested ifname (KubeVirt's tap attachment then finds
``pod<hash>`` and uses it as the domain's target), with the requested MAC and MTU. DEL removes it;
CHECK verifies it against the ADD result. No IPAM: the guest gets its address on the L2 segment.

Netconf (compatible with kubevirt/macvtap-cni, plus ``master``)::

    {"cniVersion": "1.0.0", "name": "macvtapnet", "type": "netbind-cni-macvtap",
     "master": "eth1",            # lower device; "deviceID" (set by Multus from the device
                                  # plugin, as macvtap-cni reads it) is accepted instead
     "mode": "bridge",            # bridge | vepa | private | passthru
     "mtu": 1500,                 # default: the lower device's MTU
     "promiscMode": false,
     "owner": 107, "group": 107}  # chown of /dev/tapN when given

The MAC comes from ``CNI_ARGS`` ``MAC=`` (Multus, from the selection's ``mac``) or
``runtimeConfig.mac`` (the ``mac`` capability); without one the kernel picks a random one.
"""
from __future__ import annotations

import os

from netbind.cni import (
    ERR_INTERNAL,
    ERR_INVALID_NETWORK_CONFIG,
    CNIError,
    Interface,
    NetNS,
    Plugin,
    Result,
)

ERR_LINK_EXISTS = 100
ERR_CHECK_FAILED = 101

MODES = ("bridge", "vepa", "private", "passthru")
_HEX = frozenset("0123456789abcdef")

plugin = Plugin("netbind-macvtap",
                about="netbind macvtap CNI plugin: a macvtap of a host device in the pod netns")


def _bad(field: str, problem: str) -> CNIError:
    return CNIError(ERR_INVALID_NETWORK_CONFIG, f"{field}: {problem}")


def _normalize_mac(value: object, field: str) -> str:
    mac = str(value).lower().replace("-", ":")
    parts = mac.split(":")
    if len(parts) != 6 or any(len(p) != 2 or not set(p) <= _HEX for p in parts):
        raise _bad(field, f"{value!r} is not a MAC address like 02:00:00:00:00:01")
    if int(parts[0], 16) & 1:
        raise _bad(field, f"{value!r} is a multicast MAC address; use a unicast one")
    return mac


class _Config:
    __slots__ = ("master", "mode", "mtu", "promisc", "owner", "group", "mac")

    def __init__(self, args) -> None:
        conf = args.netconf
        master = conf.get("master") or conf.get("deviceID")
        if not master or not isinstance(master, str):
            raise _bad("master", "name the lower device (or set deviceID), e.g. \"master\": \"eth1\"")
        self.master = master
        self.mode = conf.get("mode", "bridge")
        if self.mode not in MODES:
            raise _bad("mode", f"{self.mode!r} is not one of {', '.join(MODES)}")
        mtu = conf.get("mtu", 0)
        if not isinstance(mtu, int) or isinstance(mtu, bool) or not (mtu == 0 or 68 <= mtu <= 65535):
            raise _bad("mtu", f"{mtu!r} is not an MTU between 68 and 65535")
        self.mtu = mtu
        promisc = conf.get("promiscMode", False)
        if not isinstance(promisc, bool):
            raise _bad("promiscMode", f"{promisc!r} must be true or false")
        self.promisc = promisc
        for field in ("owner", "group"):
            value = conf.get(field)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise _bad(field, f"{value!r} must be a non-negative integer id")
        self.owner, self.group = conf.get("owner"), conf.get("group")
        mac = args.env_args.get("MAC") or args.runtime_config.get("mac")
        self.mac = _normalize_mac(mac, "MAC") if mac else ""


class _Link:
    """What the plugin reads of a link (from ``ip -j -d link show``)."""
    __slots__ = ("index", "kind", "mac", "mtu", "up", "mode")

    def __init__(self, shown: dict) -> None:
        info = shown.get("linkinfo") or {}
        self.index = shown.get("ifindex", 0)
        self.kind = info.get("info_kind", "")
        self.mac = str(shown.get("address", "")).lower()
        self.mtu = shown.get("mtu", 0)
        self.up = "UP" in shown.get("flags", ())
        self.mode = (info.get("info_data") or {}).get("mode", "") if self.kind == "macvtap" else ""


def _link(name: str) -> _Link | None:
    """A link of the calling thread's namespace (the plugin's, or the pod's inside ``with netns``)."""
    from netbind import _iproute

    shown = _iproute.link(name)
    return _Link(shown) if shown is not None else None


def _ip(*argv: str, what: str) -> None:
    from netbind import _iproute

    try:
        _iproute.ip(*argv)
    except _iproute.IPRouteError as exc:
        raise CNIError(ERR_INTERNAL, f"{what}: {exc}") from None


@plugin.add
def add(args):
    cfg = _Config(args)
    prev = args.prev_result            # read (and refused if broken) before anything changes
    master = _link(cfg.master)
    if master is None:
        raise _bad("master", f"lower device {cfg.master!r} does not exist in the plugin's "
                             "network namespace")
    netns = NetNS(args.netns)
    with netns:
        if _link(args.ifname) is not None:
            raise CNIError(ERR_LINK_EXISTS, f"interface {args.ifname!r} already exists in "
                                            f"{args.netns}; DEL it first or pick another ifname")
    # created directly in the pod namespace (IFLA_NET_NS_FD), so it never exists on the host side
    _ip("link", "add", "link", cfg.master, "name", args.ifname,
        *(("address", cfg.mac) if cfg.mac else ()), *(("mtu", str(cfg.mtu)) if cfg.mtu else ()),
        "netns", args.netns, "type", "macvtap", "mode", cfg.mode,
        what=f"cannot create macvtap {args.ifname!r} on {cfg.master!r} (mode {cfg.mode})")
    try:
        with netns:
            # passthru links start with the lower device's MAC whatever was asked; setting it
            # now also moves the lower device to it (the kernel restores it on delete)
            if cfg.mode == "passthru" and cfg.mac:
                _ip("link", "set", "dev", args.ifname, "address", cfg.mac, what=f"set MAC of {args.ifname!r}")
            if cfg.promisc:
                _ip("link", "set", "dev", args.ifname, "promisc", "on", what=f"set {args.ifname!r} promiscuous")
            _ip("link", "set", "dev", args.ifname, "up", what=f"set {args.ifname!r} up")
            link = _link(args.ifname)
            if cfg.owner is not None or cfg.group is not None:
                device = f"/dev/tap{link.index}"
                if os.path.exists(device):
                    os.chown(device, -1 if cfg.owner is None else cfg.owner,
                             -1 if cfg.group is None else cfg.group)
    except BaseException:
        from netbind import _iproute

        with netns:  # undo: no half-wired namespace
            _iproute.delete_link(args.ifname)
        raise
    result = prev or Result(args.cni_version)
    result.interfaces.append(Interface(args.ifname, mac=link.mac, sandbox=args.netns,
                                       mtu=link.mtu))
    return result


@plugin.delete
def delete(args):
    if not args.netns or not os.path.exists(args.netns):
        return  # the namespace is gone, and the link with it
    with NetNS(args.netns):
        link = _link(args.ifname)
        if link is not None and link.kind == "macvtap":
            _ip("link", "delete", "dev", args.ifname, what=f"delete macvtap {args.ifname!r}")


@plugin.check
def check(args):
    cfg = _Config(args)
    prev = args.prev_result
    if prev is None:
        raise CNIError(ERR_INVALID_NETWORK_CONFIG, "CHECK needs prevResult (the ADD result)")
    expected = next((i for i in prev.interfaces
                     if i.name == args.ifname and i.sandbox == args.netns), None)
    if expected is None:
        raise CNIError(ERR_CHECK_FAILED, f"prevResult lists no interface {args.ifname!r} in "
                                         f"{args.netns}")
    master = _link(cfg.master)
    with NetNS(args.netns):
        link = _link(args.ifname)
    problems = []
    if link is None:
        problems.append("does not exist")
    else:
        if link.kind != "macvtap":
            problems.append(f"is a {link.kind or 'device'} link, not macvtap")
        if link.mode and link.mode != cfg.mode:
            problems.append(f"has mode {link.mode}, expected {cfg.mode}")
        if expected.mac and link.mac != expected.mac.lower():
            problems.append(f"has MAC {link.mac}, expected {expected.mac}")
        if cfg.mac and link.mac != cfg.mac:
            problems.append(f"has MAC {link.mac}, expected {cfg.mac}")
        if cfg.mtu and link.mtu != cfg.mtu:
            problems.append(f"has MTU {link.mtu}, expected {cfg.mtu}")
        if not link.up:
            problems.append("is down")
        if master is None:
            problems.append(f"has no lower device: {cfg.master!r} is gone")
    if problems:
        raise CNIError(ERR_CHECK_FAILED, f"macvtap {args.ifname!r} in {args.netns} "
                                         + "; ".join(problems))


main = plugin.main

if __name__ == "__main__":
    main()
