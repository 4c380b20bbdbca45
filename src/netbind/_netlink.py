"""The one place netbind talks rtnetlink (through pyroute2), in the caller thread's namespace.

Kept small on purpose: callers get plain ``Link`` records and ``NetlinkFailure`` errors, never
pyroute2 objects, so the backend can change (or be replaced by ``ip(8)``) without touching them.
pyroute2 is imported on first use (it costs ~170 ms), never at import of this module.
"""
from __future__ import annotations

from dataclasses import dataclass

IFF_UP = 0x1
IFF_PROMISC = 0x100
MACVTAP_MODES = ("private", "vepa", "bridge", "passthru")


class NetlinkFailure(Exception):
    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str          # "" for links without IFLA_LINKINFO (lo, physical devices)
    mac: str
    mtu: int
    flags: int
    lower_index: int   # IFLA_LINK (the master of a macvlan/macvtap), 0 if none
    macvtap_mode: str  # "" unless kind is macvtap

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def promisc(self) -> bool:
        return bool(self.flags & IFF_PROMISC)


class Netlink:
    """``with Netlink() as nl:`` an rtnetlink socket in the current thread's network namespace."""

    def __init__(self) -> None:
        from pyroute2 import IPRoute

        self._ipr = IPRoute()

    def __enter__(self) -> "Netlink":
        return self

    def __exit__(self, *exc_info) -> None:
        self._ipr.close()

    def _call(self, what: str, func, *args, **kwargs):
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            return func(*args, **kwargs)
        except NetlinkError as exc:
            raise NetlinkFailure(exc.code, f"{what}: {exc.args[1] if len(exc.args) > 1 else exc}") from None

    @staticmethod
    def _to_link(msg) -> Link:
        info = msg.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
        mode = ""
        if kind == "macvtap":
            data = info.get_attr("IFLA_INFO_DATA")
            mode = str(data.get_attr("IFLA_MACVLAN_MODE") or "") if data is not None else ""
            mode = _MODE_NAMES.get(mode, mode)
        return Link(index=msg["index"], name=msg.get_attr("IFLA_IFNAME"), kind=kind or "",
                    mac=msg.get_attr("IFLA_ADDRESS") or "", mtu=msg.get_attr("IFLA_MTU") or 0,
                    flags=msg["flags"], lower_index=msg.get_attr("IFLA_LINK") or 0,
                    macvtap_mode=mode)

    def link(self, name: str) -> Link | None:
        indexes = self._ipr.link_lookup(ifname=name)
        if not indexes:
            return None
        return self._to_link(self._call(f"get link {name}", self._ipr.link, "get", index=indexes[0])[0])

    def create_macvtap(self, name: str, lower_index: int, mode: str, *, mac: str | None = None,
                       mtu: int | None = None, netns_fd: int | None = None) -> None:
        """Create a macvtap on ``lower_index`` (a link here), directly in ``netns_fd`` if given."""
        kwargs: dict = {"ifname": name, "kind": "macvtap", "link": lower_index,
                        "macvtap_mode": mode}
        if mac:
            kwargs["address"] = mac
        if mtu:
            kwargs["mtu"] = mtu
        if netns_fd is not None:
            kwargs["net_ns_fd"] = netns_fd
        self._call(f"create macvtap {name}", self._ipr.link, "add", **kwargs)

    def set_link(self, name: str, *, up: bool | None = None, promisc: bool | None = None,
                 mac: str | None = None) -> None:
        link = self.link(name)
        if link is None:
            raise NetlinkFailure(19, f"link {name} not found")
        if mac:
            self._call(f"set address of {name}", self._ipr.link, "set", index=link.index,
                       address=mac)
        flags, mask = 0, 0
        if up is not None:
            mask |= IFF_UP
            flags |= IFF_UP if up else 0
        if promisc is not None:
            mask |= IFF_PROMISC
            flags |= IFF_PROMISC if promisc else 0
        self._call(f"set link {name}", self._ipr.link, "set", index=link.index, flags=flags,
                   change=mask)

    def delete(self, name: str) -> bool:
        """Delete a link by name; False if there was none."""
        link = self.link(name)
        if link is None:
            return False
        self._call(f"delete link {name}", self._ipr.link, "del", index=link.index)
        return True


# pyroute2 decodes IFLA_MACVLAN_MODE as a name or a number depending on version.
_MODE_NAMES = {"1": "private", "2": "vepa", "4": "bridge", "8": "passthru", "16": "source"}
