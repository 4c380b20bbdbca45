"""What the server hands out: validated once at the boundary, immutable afterwards.

Field names are the ``netbind dhcp serve`` option names (``client_mac`` is ``--client-mac``), so a
configuration error names the option to fix whichever way the server was configured.
"""
from __future__ import annotations

import ipaddress
import re
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from netbind.dhcp._options import check_domain

KUBEVIRT_LEASE_TIME = 999 * 24 * 3600   # KubeVirt's "infinite" lease (999 days)
INFINITY = 0xFFFFFFFF
_MAC = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")
_IFNAME = re.compile(r"^[^/\s:]{1,15}$")


class ConfigError(ValueError):
    """Bad configuration: ``str()`` is one line per problem, each naming the option."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _domains(values: list[str]) -> tuple[str, ...]:
    return tuple(check_domain(v) for v in values)


class Route4(_Model):
    destination: IPv4Network
    gateway: IPv4Address = IPv4Address(0)   # 0.0.0.0: on-link

    @classmethod
    def parse(cls, text: str) -> "Route4":
        """``CIDR=GATEWAY`` or ``CIDR`` (on-link), the CLI's ``--route`` form."""
        dest, _, gw = text.partition("=")
        return cls(destination=dest.strip(), gateway=gw.strip() or "0.0.0.0")


class DHCPv4Config(_Model):
    address: IPv4Interface = Field(description="the client's address with its prefix, 10.0.2.2/24")
    server_address: IPv4Address = Field(description="server identifier (option 54); give it to the "
                                        "interface too, or renewals only work by rebinding")
    router: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] = ()
    domain_name: str | None = None
    search: tuple[str, ...] = ()
    hostname: str | None = None
    mtu: int | None = Field(default=None, ge=68, le=65535)
    routes: tuple[Route4, ...] = ()
    ntp: tuple[IPv4Address, ...] = ()
    tftp_server_name: str | None = None
    boot_file_name: str | None = None
    private_options: dict[int, str] = {}
    lease_time: int = Field(default=KUBEVIRT_LEASE_TIME, ge=60, le=INFINITY)

    @field_validator("search", mode="after")
    @classmethod
    def _search(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _domains(list(v))

    @field_validator("domain_name", "hostname", mode="after")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else check_domain(v)

    @field_validator("private_options", mode="after")
    @classmethod
    def _private(cls, v: dict[int, str]) -> dict[int, str]:
        bad = sorted(k for k in v if not 224 <= k <= 254)
        if bad:
            raise ValueError(f"private options must be in range 224 to 254, got {bad}")
        return v

    @model_validator(mode="after")
    def _addresses(self) -> "DHCPv4Config":
        net = self.address.network
        if net.prefixlen < 31 and self.address.ip in (net.network_address, net.broadcast_address):
            raise ValueError(f"address: {self.address} is the network or broadcast address of {net}")
        if self.server_address == self.address.ip:
            raise ValueError(f"server_address: {self.server_address} is the client's own address")
        return self


class DHCPv6Config(_Model):
    address: IPv6Interface = Field(description="the client's address; the prefix decides CONFIRM")
    dns: tuple[IPv6Address, ...] = ()
    search: tuple[str, ...] = ()
    preferred_lifetime: int = Field(default=3600, ge=60, le=INFINITY)
    valid_lifetime: int = Field(default=7200, ge=60, le=INFINITY)
    rapid_commit: bool = True
    client_duid: bytes | None = Field(default=None, description="accept this DUID besides the "
                                      "ones that carry the client MAC (DUID-LL/LLT, EUI-64 source)")

    @field_validator("search", mode="after")
    @classmethod
    def _search(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _domains(list(v))

    @field_validator("client_duid", mode="before")
    @classmethod
    def _duid(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                v = bytes.fromhex(v.replace(":", ""))
            except ValueError:
                raise ValueError("a DUID is hex bytes, like 00:03:00:01:52:54:00:12:34:56") from None
        if v is not None and not 2 < len(v) <= 130:
            raise ValueError("a DUID is 3 to 130 bytes long")
        return v

    @model_validator(mode="after")
    def _lifetimes(self) -> "DHCPv6Config":
        if self.address.ip.is_link_local or self.address.ip.is_multicast:
            raise ValueError(f"address: {self.address.ip} must be a global or unique-local address")
        if self.preferred_lifetime > self.valid_lifetime:
            raise ValueError("preferred_lifetime must not exceed valid_lifetime")
        return self


class RAConfig(_Model):
    prefixes: tuple[IPv6Network, ...] = ()
    managed: bool = True          # M flag: addresses come from DHCPv6
    other: bool = True            # O flag: other configuration (DNS) from DHCPv6
    autonomous: bool = False      # A flag on the prefixes: SLAAC
    router_lifetime: int = Field(default=1800, ge=0, le=9000)   # 0: not a default router
    mtu: int | None = Field(default=None, ge=1280, le=65535)
    rdnss: tuple[IPv6Address, ...] = ()
    rdnss_lifetime: int = Field(default=1800, ge=0, le=INFINITY)
    interval: float = Field(default=200.0, ge=4.0, le=1800.0, description="unsolicited RA period")

    @field_validator("prefixes", mode="after")
    @classmethod
    def _prefixes(cls, v: tuple[IPv6Network, ...]) -> tuple[IPv6Network, ...]:
        for p in v:
            if p.is_link_local or p.is_multicast:
                raise ValueError(f"prefix {p} is link-local or multicast")
        return v


class ServerConfig(_Model):
    interface: str
    client_mac: str
    netns: str | None = Field(default=None, description="a name under /run/netns or a path; "
                              "None: the caller's namespace (a sidecar's pod namespace)")
    v4: DHCPv4Config | None = None
    v6: DHCPv6Config | None = None
    ra: RAConfig | None = None
    answer: bool = True   # False: the "do not answer" mode (log what would be sent, send nothing)

    @field_validator("interface")
    @classmethod
    def _ifname(cls, v: str) -> str:
        if not _IFNAME.match(v):
            raise ValueError(f"{v!r} is not an interface name (1-15 characters, no '/', ':' or spaces)")
        return v

    @field_validator("client_mac")
    @classmethod
    def _mac(cls, v: str) -> str:
        mac = v.strip().lower()
        if not _MAC.match(mac):
            raise ValueError(f"{v!r} is not a MAC address (like 52:54:00:12:34:56)")
        mac = mac.replace("-", ":")
        if int(mac[:2], 16) & 1:
            raise ValueError(f"{v} is a multicast MAC address; the client needs a unicast one")
        return mac

    @model_validator(mode="after")
    def _something(self) -> "ServerConfig":
        if not (self.v4 or self.v6 or self.ra):
            raise ValueError("nothing to serve: configure v4, v6 or ra")
        return self

    @property
    def netns_path(self) -> str | None:
        if self.netns is None:
            return None
        return self.netns if "/" in self.netns else f"/run/netns/{self.netns}"


def build(data: dict[str, Any]) -> ServerConfig:
    """``ServerConfig`` from plain data, with ``ConfigError`` naming each bad field as an option."""
    try:
        return ServerConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            path = [str(p) for p in err["loc"] if not isinstance(p, int)]
            msg = err["msg"].removeprefix("Value error, ")
            if path and msg.split(":", 1)[0] in ("address", "server_address"):
                path, msg = path + [msg.split(":", 1)[0]], msg.split(":", 1)[1].strip()
            field = ".".join(path) or "config"
            lines.append(f"{field}: {msg}")
        raise ConfigError("\n".join(lines)) from None


def vmi_dhcp_options(options: Any) -> dict[str, Any]:
    """``DHCPv4Config`` keywords from a VMI interface's ``dhcpOptions`` (netbind.api.models.DHCPOptions).

    NTP servers must be IPv4 (KubeVirt's admission rule); private options 224-254 keep their string
    values as KubeVirt sends them.
    """
    if options is None:
        return {}
    out: dict[str, Any] = {}
    if options.ntp_servers:
        out["ntp"] = tuple(ipaddress.IPv4Address(s) for s in options.ntp_servers)
    if options.private_options:
        out["private_options"] = {p.option: p.value for p in options.private_options}
    if options.tftp_server_name:
        out["tftp_server_name"] = options.tftp_server_name
    if options.boot_file_name:
        out["boot_file_name"] = options.boot_file_name
    return out
