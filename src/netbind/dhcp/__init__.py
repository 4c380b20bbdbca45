"""DHCPv4, DHCPv6 and router advertisements for one guest, on one interface.

    from netbind.dhcp import Server, ServerConfig, DHCPv4Config

    config = ServerConfig(interface="k6t-eth0", client_mac="52:54:00:12:34:56",
                          v4=DHCPv4Config(address="10.0.2.2/24", server_address="10.0.2.1",
                                          router="10.0.2.1", dns=["10.96.0.10"]))
    asyncio.run(Server(config).serve_forever())

What the process needs is listed in ``netbind.dhcp._sockets`` (and the README): DHCPv4/v6 run as
a non-root sidecar once ``net.ipv4.ip_unprivileged_port_start`` is 0; RA needs CAP_NET_RAW.
"""
from netbind.dhcp.config import (ConfigError, DHCPv4Config, DHCPv6Config, RAConfig, Route4,
                                 ServerConfig, vmi_dhcp_options)
from netbind.dhcp.server import Server, ServerError

__all__ = ["ConfigError", "DHCPv4Config", "DHCPv6Config", "RAConfig", "Route4", "Server",
           "ServerConfig", "ServerError", "vmi_dhcp_options"]
