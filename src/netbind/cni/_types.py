"""CNI versions, errors and results, per spec version (0.1.0 ... 1.1.0).

A ``Result`` holds the current (1.1.0) model; ``Result.from_dict`` reads any version's JSON and
``Result.to_dict(version)`` writes the JSON a given version expects, so prevResult conversion and
per-version printing are one code path. Field order follows the spec's (and Go's) order.
"""
from __future__ import annotations

SUPPORTED_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT_VERSION = "1.1.0"

# Well-known error codes of the CNI spec (1.1, "Error"); plugins use codes >= 100 for their own.
ERR_INCOMPATIBLE_CNI_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENVIRONMENT_VARIABLES = 4
ERR_IO_FAILURE = 5
ERR_DECODING_FAILURE = 6
ERR_INVALID_NETWORK_CONFIG = 7
ERR_TRY_AGAIN_LATER = 11
ERR_PLUGIN_NOT_AVAILABLE = 50
ERR_LIMITED_CONNECTIVITY = 51
ERR_INTERNAL = 999  # what the reference Go libraries use for unclassified failures


class CNIError(Exception):
    """A CNI error: printed by a plugin as ``{"code", "msg", "details"}``, raised by the executor."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg if not details else f"{msg}; {details}")
        self.code = code
        self.msg = msg
        self.details = details

    def to_dict(self) -> dict:
        out: dict = {"code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "CNIError":
        code = data.get("code")
        return cls(code if isinstance(code, int) else ERR_INTERNAL, str(data.get("msg", "")),
                   str(data.get("details", "") or ""))


def parse_version(version: str) -> tuple[int, int, int]:
    parts = version.split(".") if isinstance(version, str) else []
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"cniVersion {version!r} is not a version like 1.0.0")
    return int(parts[0]), int(parts[1]), int(parts[2])


def version_at_least(version: str, minimum: str) -> bool:
    return parse_version(version) >= parse_version(minimum)


def _is_ipv6(cidr_or_ip: str) -> bool:
    return ":" in cidr_or_ip


class Interface:
    __slots__ = ("name", "mac", "mtu", "sandbox", "socket_path", "pci_id")

    def __init__(self, name: str, mac: str = "", sandbox: str = "", mtu: int = 0,
                 socket_path: str = "", pci_id: str = "") -> None:
        self.name, self.mac, self.sandbox, self.mtu = name, mac, sandbox, mtu
        self.socket_path, self.pci_id = socket_path, pci_id

    def to_dict(self, version: str) -> dict:
        out: dict = {"name": self.name}
        if self.mac:
            out["mac"] = self.mac
        v11 = version_at_least(version, "1.1.0")
        if v11 and self.mtu:
            out["mtu"] = self.mtu
        if self.sandbox:
            out["sandbox"] = self.sandbox
        if v11 and self.socket_path:
            out["socketPath"] = self.socket_path
        if v11 and self.pci_id:
            out["pciID"] = self.pci_id
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Interface":
        return cls(str(d.get("name", "")), str(d.get("mac", "")), str(d.get("sandbox", "")),
                   int(d.get("mtu", 0) or 0), str(d.get("socketPath", "")), str(d.get("pciID", "")))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Interface) and all(
            getattr(self, s) == getattr(other, s) for s in self.__slots__)

    def __repr__(self) -> str:
        return f"Interface({self.name!r}, mac={self.mac!r}, sandbox={self.sandbox!r})"


class IPConfig:
    __slots__ = ("address", "gateway", "interface")

    def __init__(self, address: str, gateway: str = "", interface: int | None = None) -> None:
        self.address, self.gateway, self.interface = address, gateway, interface

    def to_dict(self, version: str) -> dict:
        out: dict = {}
        if not version_at_least(version, "1.0.0"):
            out["version"] = "6" if _is_ipv6(self.address) else "4"
        if self.interface is not None:
            out["interface"] = self.interface
        out["address"] = self.address
        if self.gateway:
            out["gateway"] = self.gateway
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "IPConfig":
        iface = d.get("interface")
        return cls(str(d.get("address", "")), str(d.get("gateway", "") or ""),
                   iface if isinstance(iface, int) else None)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IPConfig) and (self.address, self.gateway, self.interface) == (
            other.address, other.gateway, other.interface)

    def __repr__(self) -> str:
        return f"IPConfig({self.address!r}, gateway={self.gateway!r}, interface={self.interface!r})"


class Route:
    __slots__ = ("dst", "gw", "mtu", "advmss", "priority", "table", "scope")
    _V11 = (("mtu", "mtu"), ("advmss", "advmss"), ("priority", "priority"), ("table", "table"),
            ("scope", "scope"))

    def __init__(self, dst: str, gw: str = "", mtu: int = 0, advmss: int = 0, priority: int = 0,
                 table: int | None = None, scope: int | None = None) -> None:
        self.dst, self.gw, self.mtu, self.advmss = dst, gw, mtu, advmss
        self.priority, self.table, self.scope = priority, table, scope

    def to_dict(self, version: str) -> dict:
        out: dict = {"dst": self.dst}
        if self.gw:
            out["gw"] = self.gw
        if version_at_least(version, "1.1.0"):
            for attr, key in self._V11:
                value = getattr(self, attr)
                if value:
                    out[key] = value
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Route":
        return cls(str(d.get("dst", "")), str(d.get("gw", "") or ""), int(d.get("mtu", 0) or 0),
                   int(d.get("advmss", 0) or 0), int(d.get("priority", 0) or 0), d.get("table"),
                   d.get("scope"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Route) and all(
            getattr(self, s) == getattr(other, s) for s in self.__slots__)

    def __repr__(self) -> str:
        return f"Route({self.dst!r}, gw={self.gw!r})"


class DNS:
    __slots__ = ("nameservers", "domain", "search", "options")

    def __init__(self, nameservers=(), domain: str = "", search=(), options=()) -> None:
        self.nameservers, self.domain = list(nameservers), domain
        self.search, self.options = list(search), list(options)

    def __bool__(self) -> bool:
        return bool(self.nameservers or self.domain or self.search or self.options)

    def to_dict(self) -> dict:
        out: dict = {}
        if self.nameservers:
            out["nameservers"] = list(self.nameservers)
        if self.domain:
            out["domain"] = self.domain
        if self.search:
            out["search"] = list(self.search)
        if self.options:
            out["options"] = list(self.options)
        return out

    @classmethod
    def from_dict(cls, d) -> "DNS":
        d = d if isinstance(d, dict) else {}
        return cls(d.get("nameservers") or (), str(d.get("domain", "") or ""),
                   d.get("search") or (), d.get("options") or ())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DNS) and self.to_dict() == other.to_dict()


class Result:
    """A CNI ADD result, convertible to every supported version."""

    __slots__ = ("cni_version", "interfaces", "ips", "routes", "dns")

    def __init__(self, cni_version: str = CURRENT_VERSION, interfaces=(), ips=(), routes=(),
                 dns: DNS | None = None) -> None:
        self.cni_version = cni_version
        self.interfaces: list[Interface] = list(interfaces)
        self.ips: list[IPConfig] = list(ips)
        self.routes: list[Route] = list(routes)
        self.dns = dns if dns is not None else DNS()

    @classmethod
    def from_dict(cls, d: dict) -> "Result":
        """Read a result of any version (0.1.0/0.2.0 ``ip4``/``ip6`` or 0.3.0+ ``ips``)."""
        if not isinstance(d, dict):
            raise ValueError("a CNI result must be a JSON object")
        version = str(d.get("cniVersion") or "0.1.0")
        parse_version(version)
        if not version_at_least(version, "0.3.0"):
            ips, routes = [], []
            for key in ("ip4", "ip6"):
                block = d.get(key)
                if isinstance(block, dict) and block.get("ip"):
                    ips.append(IPConfig(str(block["ip"]), str(block.get("gateway", "") or "")))
                    routes += [Route.from_dict(r) for r in block.get("routes") or ()]
            return cls(version, (), ips, routes, DNS.from_dict(d.get("dns")))
        return cls(
            version,
            [Interface.from_dict(i) for i in d.get("interfaces") or ()],
            [IPConfig.from_dict(i) for i in d.get("ips") or ()],
            [Route.from_dict(r) for r in d.get("routes") or ()],
            DNS.from_dict(d.get("dns")),
        )

    def to_dict(self, version: str | None = None) -> dict:
        """The JSON of this result as ``version`` (default: its own) writes it."""
        version = version or self.cni_version
        parse_version(version)
        out: dict = {"cniVersion": version}
        if not version_at_least(version, "0.3.0"):
            for family, key in ((False, "ip4"), (True, "ip6")):
                ip = next((i for i in self.ips if _is_ipv6(i.address) == family), None)
                if ip is None:
                    continue
                block: dict = {"ip": ip.address}
                if ip.gateway:
                    block["gateway"] = ip.gateway
                routes = [r.to_dict(version) for r in self.routes if _is_ipv6(r.dst) == family]
                if routes:
                    block["routes"] = routes
                out[key] = block
        else:
            if self.interfaces:
                out["interfaces"] = [i.to_dict(version) for i in self.interfaces]
            if self.ips:
                out["ips"] = [i.to_dict(version) for i in self.ips]
            if self.routes:
                out["routes"] = [r.to_dict(version) for r in self.routes]
        if self.dns:
            out["dns"] = self.dns.to_dict()
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Result) and all(
            getattr(self, s) == getattr(other, s) for s in self.__slots__)

    def __repr__(self) -> str:
        return (f"Result({self.cni_version!r}, interfaces={self.interfaces!r}, ips={self.ips!r}, "
                f"routes={self.routes!r})")
