"""``netbind dhcp serve``: the netbind.dhcp server on one interface, by hand, for debugging."""
from __future__ import annotations

import ipaddress
from typing import Any

import click

from netbind._cli.common import EXIT_BAD_INPUT, fail

# ServerConfig field -> the option that sets it (errors name the option)
_OPTION = {
    "interface": "--interface", "client_mac": "--client-mac", "netns": "--netns",
    "v4.address": "--address", "v4.server_address": "--server-address", "v4.router": "--router",
    "v4.dns": "--dns", "v4.search": "--search", "v4.domain_name": "--domain-name",
    "v4.hostname": "--hostname", "v4.mtu": "--mtu", "v4.routes": "--route", "v4.ntp": "--ntp",
    "v4.private_options": "--option", "v4.lease_time": "--lease-time",
    "v4.tftp_server_name": "--tftp-server-name", "v4.boot_file_name": "--boot-file-name",
    "v6.address": "--address6", "v6.dns": "--dns", "v6.search": "--search",
    "v6.preferred_lifetime": "--preferred-lifetime", "v6.valid_lifetime": "--valid-lifetime",
    "v6.client_duid": "--client-duid", "ra.prefixes": "--ra-prefix", "ra.mtu": "--mtu",
    "ra.rdnss": "--dns", "ra.router_lifetime": "--router-lifetime", "ra.interval": "--ra-interval",
}


@click.group()
def dhcp() -> None:
    """DHCPv4, DHCPv6 and router advertisements for one guest (netbind.dhcp)."""


@dhcp.command()
@click.option("-i", "--interface", required=True, help="Interface to serve on (e.g. the tap's bridge).")
@click.option("--netns", help="Network namespace (name under /run/netns or a path); default: this one.")
@click.option("--client-mac", required=True, help="The one client MAC to answer (the VM's).")
@click.option("--address", help="IPv4 address for the client, with prefix: 10.0.2.2/24.")
@click.option("--server-address", help="Server identifier (option 54); default: the first host of "
              "--address's subnet that is not the client's.")
@click.option("--router", help="Default gateway (option 3; also 0.0.0.0/0 in option 121 with --route).")
@click.option("--dns", multiple=True, help="DNS server, IPv4 or IPv6 (repeatable).")
@click.option("--search", multiple=True, help="Search domain (options 119 and DHCPv6 24; repeatable).")
@click.option("--domain-name", help="Domain name (option 15).")
@click.option("--hostname", help="Host name (option 12).")
@click.option("--mtu", type=int, help="MTU (option 26; also the RA MTU when >= 1280).")
@click.option("--route", multiple=True, help="Classless static route CIDR=GATEWAY (option 121; repeatable).")
@click.option("--ntp", multiple=True, help="NTP server, IPv4 (option 42; repeatable).")
@click.option("--option", "private", multiple=True, help="Private option CODE=TEXT, 224-254 (repeatable).")
@click.option("--tftp-server-name", help="Option 66.")
@click.option("--boot-file-name", help="Option 67.")
@click.option("--lease-time", type=int, help="Lease time in seconds (default: KubeVirt's 999 days).")
@click.option("--address6", help="IPv6 address for the client (DHCPv6), with prefix: fd00::2/64.")
@click.option("--preferred-lifetime", type=int, help="DHCPv6 preferred lifetime (s).")
@click.option("--valid-lifetime", type=int, help="DHCPv6 valid lifetime (s).")
@click.option("--rapid-commit/--no-rapid-commit", default=True, show_default=True,
              help="Answer a SOLICIT with rapid commit by a REPLY.")
@click.option("--client-duid", help="Also accept this DHCPv6 DUID (hex) as the client.")
@click.option("--ra/--no-ra", "ra", default=None, help="Send router advertisements (default: with "
              "--address6 or --ra-prefix; needs CAP_NET_RAW).")
@click.option("--ra-prefix", multiple=True, help="Prefix to advertise (default: --address6's).")
@click.option("--slaac", is_flag=True, help="Let the client autoconfigure from the prefixes (A flag).")
@click.option("--router-lifetime", type=int, help="RA router lifetime (s); 0: not a default router.")
@click.option("--ra-interval", type=float, help="Seconds between unsolicited RAs.")
@click.option("--no-answer", is_flag=True, help="Read and log requests, send nothing.")
@click.option("-v", "--verbose", is_flag=True, help="Also log ignored packets.")
@click.option("--counters", "counters_file", type=click.Path(dir_okay=False),
              help="Keep the server's counters (received, answered, ignored per protocol) in this JSON file.")
def serve(**opts: Any) -> None:
    """Serve one client until interrupted, logging every exchange to stderr."""
    import asyncio
    import logging
    import signal

    from netbind.dhcp import ConfigError, Server, ServerError
    from netbind.dhcp.config import build

    try:
        data = _config(opts)
        config = build(data)
    except ConfigError as exc:
        fail("; ".join(_name_option(line) for line in str(exc).splitlines()))
    logging.basicConfig(level=logging.DEBUG if opts["verbose"] else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    async def run() -> None:
        server = Server(config)
        await server.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: loop.create_task(server.close()))
        if opts["counters_file"]:
            loop.create_task(_keep_counters(server, opts["counters_file"]))
        await server.serve_forever()

    try:
        asyncio.run(run())
    except ServerError as exc:
        message = str(exc)
        field = message.split(":", 1)[0]
        fail(_name_option(message), EXIT_BAD_INPUT if field in ("interface", "netns") else 1)


async def _keep_counters(server, path: str, period: float = 0.2) -> None:
    """Rewrite ``path`` (atomically) whenever the counters changed; a reader never sees half a file."""
    import asyncio
    import json
    import os

    written = None
    while True:
        current = dict(server.counters)
        if current != written:
            tmp = f"{path}.tmp"
            with open(tmp, "w") as fh:
                json.dump(current, fh)
            os.replace(tmp, path)
            written = current
        await asyncio.sleep(period)


def _name_option(line: str) -> str:
    field, sep, rest = line.partition(": ")
    if sep and field in _OPTION:
        return f"{_OPTION[field]}: {rest}"
    return line


def _split(values: tuple[str, ...], option: str) -> tuple[list[str], list[str]]:
    v4, v6 = [], []
    for value in values:
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            raise _bad(option, f"{value!r} is not an IP address")
        (v4 if addr.version == 4 else v6).append(value)
    return v4, v6


def _bad(option: str, message: str):
    from netbind.dhcp import ConfigError

    return ConfigError(f"{option}: {message}")


def _config(o: dict[str, Any]) -> dict[str, Any]:
    from netbind.dhcp import Route4

    data: dict[str, Any] = {"interface": o["interface"], "client_mac": o["client_mac"],
                            "netns": o["netns"], "answer": not o["no_answer"]}
    dns4, dns6 = _split(o["dns"], "--dns")
    if o["address"]:
        v4: dict[str, Any] = {"address": o["address"], "dns": dns4, "search": list(o["search"])}
        server = o["server_address"]
        if not server:
            try:
                iface = ipaddress.IPv4Interface(o["address"])
            except ValueError as exc:
                raise _bad("--address", str(exc))
            server = str(next(h for h in iface.network.hosts() if h != iface.ip)) \
                if iface.network.num_addresses > 2 else str(iface.ip + 1)
        v4["server_address"] = server
        for key in ("router", "domain_name", "hostname", "mtu", "lease_time", "tftp_server_name",
                    "boot_file_name"):
            if o[key] is not None:
                v4[key] = o[key]
        if o["ntp"]:
            v4["ntp"] = list(o["ntp"])
        routes = []
        for text in o["route"]:
            try:
                routes.append(Route4.parse(text))
            except Exception:
                raise _bad("--route", f"{text!r} is not CIDR=GATEWAY (like 10.10.0.0/16=10.0.2.254)")
        v4["routes"] = routes
        private = {}
        for text in o["private"]:
            code, sep, value = text.partition("=")
            if not sep or not code.strip().isdigit():
                raise _bad("--option", f"{text!r} is not CODE=TEXT (like 224=hello)")
            private[int(code)] = value
        v4["private_options"] = private
        data["v4"] = v4
    else:
        for key in ("server_address", "router", "domain_name", "hostname", "route", "ntp", "private",
                    "lease_time"):
            if o[key]:
                raise _bad(f"--{key.replace('_', '-')}" if key != "private" else "--option",
                           "needs --address (the DHCPv4 address to hand out)")
    if o["address6"]:
        v6: dict[str, Any] = {"address": o["address6"], "dns": dns6, "search": list(o["search"]),
                              "rapid_commit": o["rapid_commit"]}
        for key in ("preferred_lifetime", "valid_lifetime", "client_duid"):
            if o[key] is not None:
                v6[key] = o[key]
        data["v6"] = v6
    want_ra = o["ra"] if o["ra"] is not None else bool(o["address6"] or o["ra_prefix"])
    if want_ra:
        prefixes = list(o["ra_prefix"])
        if not prefixes and o["address6"]:
            try:
                prefixes = [str(ipaddress.IPv6Interface(o["address6"]).network)]
            except ValueError as exc:
                raise _bad("--address6", str(exc))
        ra: dict[str, Any] = {"prefixes": prefixes, "rdnss": dns6, "autonomous": o["slaac"],
                              "managed": bool(o["address6"]), "other": bool(o["address6"])}
        if o["mtu"] is not None and o["mtu"] >= 1280:
            ra["mtu"] = o["mtu"]
        if o["router_lifetime"] is not None:
            ra["router_lifetime"] = o["router_lifetime"]
        if o["ra_interval"] is not None:
            ra["interval"] = o["ra_interval"]
        data["ra"] = ra
    if not (o["address"] or o["address6"] or want_ra):
        raise _bad("--address", "nothing to serve: give --address, --address6 or --ra-prefix")
    return data
