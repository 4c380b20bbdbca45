"""The NoCloud seed of the tiny guest: KubeVirt's ``cloudInitNoCloud`` data, made bootable.

KubeVirt hands a guest its NoCloud data on a ``cidata`` disk; cloud-init reads ``meta-data``,
``user-data`` and ``network-config`` from it. The tiny guest has no cloud-init and no YAML parser,
so the host does the parsing: the files land unchanged under ``/var/lib/cloud/seed/nocloud/`` (the
local seed directory cloud-init's NoCloud source also reads) in an extra initramfs segment that is
appended to the guest's initrd, together with ``/etc/nb-net.conf``, the network configuration
compiled to one ``key=value`` line per interface rule for the guest's shell init.

Supported network-config (cloud-init "version 2", ethernets only): per ethernet ``match``
(``macaddress``, ``name`` with shell globs), ``set-name``, ``dhcp4``, ``addresses`` (CIDR),
``gateway4``, a default route in ``routes`` (``to: default`` or ``0.0.0.0/0``), ``nameservers.addresses``,
``mtu``; ``dhcp6: false`` and ``optional`` are accepted and ignored. Anything else is refused with
the field named. As with cloud-init, a network-config configures only the interfaces it lists; the
others are set up without an address. Without a network-config every NIC uses DHCP.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from netbind.node import _cpio

SEED_DIR = "var/lib/cloud/seed/nocloud"
RULES_FILE = "etc/nb-net.conf"


class SeedError(ValueError):
    """Bad NoCloud data; the message names the field and the fix."""


@dataclass(frozen=True)
class NicRule:
    """How the guest configures the interfaces a rule matches (first matching rule wins)."""
    match_mac: str = ""
    match_name: str = ""
    set_name: str = ""
    dhcp4: bool = False
    addresses: tuple[str, ...] = ()
    gateway4: str = ""
    nameservers: tuple[str, ...] = ()
    mtu: int = 0

    def render(self) -> str:
        pairs = {
            "match_mac": self.match_mac.lower(), "match_name": self.match_name,
            "set_name": self.set_name, "dhcp4": "yes" if self.dhcp4 else "no",
            "addresses": ",".join(self.addresses), "gateway4": self.gateway4,
            "nameservers": ",".join(self.nameservers), "mtu": str(self.mtu or ""),
        }
        return "nic " + " ".join(f"{k}={v}" for k, v in pairs.items() if v)


@dataclass(frozen=True)
class NoCloudSeed:
    """KubeVirt's cloudInitNoCloud volume, after secrets and base64 are resolved."""
    user_data: str = ""
    network_config: str | None = None
    meta_data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def for_vmi(cls, name: str, namespace: str = "default", hostname: str | None = None,
                user_data: str = "", network_config: str | None = None) -> "NoCloudSeed":
        # KubeVirt's meta-data: instance-id "<name>.<namespace>", local-hostname the VMI's hostname
        return cls(user_data=user_data, network_config=network_config,
                   meta_data={"instance-id": f"{name}.{namespace}", "local-hostname": hostname or name})


_SAFE = re.compile(r"^[A-Za-z0-9_.:*?\[\]/-]+$")
_IGNORED = {"optional"}
_KNOWN = {"match", "set-name", "dhcp4", "addresses", "gateway4", "routes", "nameservers", "mtu", "dhcp6"}


def _word(value: Any, where: str) -> str:
    text = str(value)
    if not _SAFE.match(text):
        raise SeedError(f"{where}: {text!r} has characters the guest cannot use; use a plain name or address")
    return text


def _ip(value: Any, where: str) -> str:
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        raise SeedError(f"{where}: {value!r} is not an IPv4 address") from None


def _cidr(value: Any, where: str) -> str:
    try:
        iface = ipaddress.IPv4Interface(str(value))
    except ValueError:
        raise SeedError(f"{where}: {value!r} is not an IPv4 address with a prefix (e.g. 10.0.0.5/24);"
                        " IPv6 is not supported by the tiny guest") from None
    if "/" not in str(value):
        raise SeedError(f"{where}: {value!r} needs a prefix length, e.g. {value}/24")
    return str(iface)


def _rule(ident: str, spec: Any, where: str) -> NicRule:
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise SeedError(f"{where}: expected a mapping of interface settings")
    unknown = sorted(set(spec) - _KNOWN - _IGNORED)
    if unknown:
        raise SeedError(f"{where}.{unknown[0]}: not supported by the tiny guest (supported: "
                        f"{', '.join(sorted(_KNOWN))})")
    if spec.get("dhcp6"):
        raise SeedError(f"{where}.dhcp6: DHCPv6 is not supported by the tiny guest; remove it or set false")
    match = spec.get("match") or {}
    if not isinstance(match, Mapping) or set(match) - {"macaddress", "name"}:
        raise SeedError(f"{where}.match: only macaddress and name are supported")
    mac = _word(match["macaddress"], f"{where}.match.macaddress") if "macaddress" in match else ""
    name = _word(match["name"], f"{where}.match.name") if "name" in match else ""
    if not match:
        name = _word(ident, where)  # v2: without match, the id is the interface name
    gateway = _ip(spec["gateway4"], f"{where}.gateway4") if "gateway4" in spec else ""
    for i, route in enumerate(spec.get("routes") or []):
        if not isinstance(route, Mapping) or str(route.get("to")) not in ("default", "0.0.0.0/0") or "via" not in route:
            raise SeedError(f"{where}.routes[{i}]: only a default route (to: default, via: ADDRESS) is supported")
        gateway = _ip(route["via"], f"{where}.routes[{i}].via")
    nameservers = spec.get("nameservers") or {}
    if not isinstance(nameservers, Mapping):
        raise SeedError(f"{where}.nameservers: expected a mapping with addresses")
    mtu = spec.get("mtu", 0)
    if not isinstance(mtu, int) or isinstance(mtu, bool) or not 0 <= mtu <= 65535:
        raise SeedError(f"{where}.mtu: {mtu!r} is not an MTU (integer 68..65535)")
    return NicRule(
        match_mac=mac, match_name=name,
        set_name=_word(spec["set-name"], f"{where}.set-name") if "set-name" in spec else "",
        dhcp4=bool(spec.get("dhcp4", False)),
        addresses=tuple(_cidr(a, f"{where}.addresses[{i}]") for i, a in enumerate(spec.get("addresses") or [])),
        gateway4=gateway,
        nameservers=tuple(_ip(a, f"{where}.nameservers.addresses[{i}]")
                          for i, a in enumerate(nameservers.get("addresses") or [])),
        mtu=mtu,
    )


def compile_network_config(text: str) -> list[NicRule]:
    """NoCloud network-config (YAML, version 2 subset) -> the guest's interface rules."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SeedError(f"network-config: not valid YAML ({exc})") from None
    if isinstance(doc, Mapping) and isinstance(doc.get("network"), Mapping):
        doc, root = doc["network"], "network"
    else:
        root = "network-config"
    if not isinstance(doc, Mapping):
        raise SeedError(f"{root}: expected a mapping with version: 2 and ethernets")
    if doc.get("version") != 2:
        raise SeedError(f"{root}.version: {doc.get('version')!r} is not supported by the tiny guest;"
                        " write version: 2 with ethernets")
    others = sorted(set(doc) - {"version", "ethernets", "renderer"})
    if others:
        raise SeedError(f"{root}.{others[0]}: only ethernets are supported by the tiny guest")
    ethernets = doc.get("ethernets") or {}
    if not isinstance(ethernets, Mapping):
        raise SeedError(f"{root}.ethernets: expected a mapping of interface id -> settings")
    return [_rule(str(ident), spec, f"{root}.ethernets.{ident}") for ident, spec in ethernets.items()]


def render_guest_config(seed: NoCloudSeed) -> str:
    """The guest's /etc/nb-net.conf: a hostname line and one ``nic`` line per rule, or ``dhcp-all``."""
    lines = []
    hostname = str(seed.meta_data.get("local-hostname") or "")
    if hostname:
        lines.append(f"hostname {_word(hostname, 'meta-data.local-hostname')}")
    if seed.network_config is None:
        lines.append("dhcp-all")
    else:
        lines.extend(rule.render() for rule in compile_network_config(seed.network_config))
    return "\n".join(lines) + "\n"


def seed_initrd(seed: NoCloudSeed) -> bytes:
    """A gzip'd cpio segment to append to the guest's initramfs (the kernel unpacks both)."""
    meta = yaml.safe_dump(dict(seed.meta_data), default_flow_style=False, sort_keys=True)
    entries = [_cpio.directory(p) for p in ("etc", "var", "var/lib", "var/lib/cloud", "var/lib/cloud/seed", SEED_DIR)]
    entries += [
        _cpio.file(f"{SEED_DIR}/meta-data", meta.encode()),
        _cpio.file(f"{SEED_DIR}/user-data", seed.user_data.encode()),
        _cpio.file(RULES_FILE, render_guest_config(seed).encode()),
    ]
    if seed.network_config is not None:
        entries.append(_cpio.file(f"{SEED_DIR}/network-config", seed.network_config.encode()))
    return _cpio.gzipped(entries)
