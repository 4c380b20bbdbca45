"""Real clients in real namespaces: busybox udhcpc, ISC dhclient (v4 and -6), the kernel's own RA
handling, and scapy decoding what we send. Every option is asserted on the client side."""
from __future__ import annotations

import json
import pwd
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netbind.testing import require_binary

from .conftest import CLIENT_MAC, OTHER_MAC, ns_exec, serving

pytestmark = pytest.mark.root
PROBE = str(Path(__file__).with_name("scapy_probe.py"))

V4 = {"address": "10.0.2.2/24", "server_address": "10.0.2.1", "router": "10.0.2.1",
      "dns": ["10.96.0.10", "10.96.0.11"], "domain_name": "cluster.local",
      "search": ["default.svc.cluster.local", "svc.cluster.local"], "hostname": "vm-1", "mtu": 1400,
      "routes": [{"destination": "10.10.0.0/16", "gateway": "10.0.2.254"}], "ntp": ["10.0.2.123"],
      "private_options": {224: "hello", 254: "last-one"}, "lease_time": 3600,
      "tftp_server_name": "tftp.example", "boot_file_name": "pxelinux.0"}
V6 = {"address": "fd00:10::2/64", "dns": ["fd00:10::53"], "search": ["example.com"]}
RA = {"prefixes": ["fd00:10::/64"], "mtu": 1400, "rdnss": ["fd00:10::53"], "autonomous": True}


def config(link, **extra):
    return {"interface": link.server_if, "client_mac": CLIENT_MAC, "netns": link.server_ns.name,
            "v4": V4, **extra}


def probe(link, *args: str) -> dict | None:
    out = ns_exec(link.client_ns, sys.executable, PROBE, args[0], link.client_if, *args[1:], check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def udhcpc(link, tmp_path: Path, *extra: str) -> dict[str, str] | None:
    require_binary("busybox", "busybox")
    script = tmp_path / "udhcpc.sh"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = bound ] && env > {tmp_path}/bound.env\nexit 0\n")
    script.chmod(0o755)
    ns_exec(link.client_ns, "busybox", "udhcpc", "-i", link.client_if, "-n", "-q", "-f", "-t", "3",
            "-T", "1", "-s", str(script), "-O", "search", "-O", "staticroutes", "-O", "ntpsrv",
            "-O", "224", "-O", "254", *extra, check=False)
    env = tmp_path / "bound.env"
    if not env.exists():
        return None
    return dict(line.split("=", 1) for line in env.read_text().splitlines() if "=" in line)


def dhclient(link, tmp_path: Path, v6: bool = False, extra_conf: str = "") -> str | None:
    require_binary("dhclient", "isc-dhcp-client")
    conf = tmp_path / "dhclient.conf"
    conf.write_text(
        "option nb-224 code 224 = text;\noption nb-254 code 254 = text;\n"
        "option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;\n"
        "request subnet-mask, routers, domain-name-servers, domain-name, domain-search, host-name,"
        " interface-mtu, rfc3442-classless-static-routes, ntp-servers, nb-224, nb-254,"
        " tftp-server-name, bootfile-name, dhcp6.name-servers, dhcp6.domain-search;\n" + extra_conf)
    lease = tmp_path / ("lease6" if v6 else "lease")
    argv = ["ip", "netns", "exec", link.client_ns.name, "dhclient", "-d", "-cf", str(conf),
            "-sf", "/bin/true", "-lf", str(lease), "-pf", str(tmp_path / "dhclient.pid"),
            *(["-6"] if v6 else []), link.client_if]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if lease.exists() and "}" in lease.read_text():
                return lease.read_text()
            time.sleep(0.05)
        return None
    finally:
        proc.terminate()
        proc.wait(10)


def wait_link_local(link) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = link.client_ns.ip("-6", "addr", "show", "dev", link.client_if, "scope", "link").stdout
        if "fe80" in out and "tentative" not in out:
            return
        time.sleep(0.05)
    pytest.fail("the client never got a link-local address")


def test_udhcpc_gets_every_option(link, tmp_path):
    with serving(config(link)) as server:
        env = udhcpc(link, tmp_path)
    assert env is not None, server.counters
    assert env["ip"] == "10.0.2.2" and env["subnet"] == "255.255.255.0" and env["mask"] == "24"
    assert env["router"] == "10.0.2.1" and env["serverid"] == "10.0.2.1"
    assert env["dns"].split() == ["10.96.0.10", "10.96.0.11"]
    assert env["domain"] == "cluster.local" and env["hostname"] == "vm-1"
    assert env["search"].split() == ["default.svc.cluster.local", "svc.cluster.local"]
    assert env["mtu"] == "1400" and env["lease"] == "3600" and env["ntpsrv"] == "10.0.2.123"
    assert env["staticroutes"].split() == ["10.10.0.0/16", "10.0.2.254", "0.0.0.0/0", "10.0.2.1"]
    assert bytes.fromhex(env["opt224"]) == b"hello" and bytes.fromhex(env["opt254"]) == b"last-one"


def test_dhclient_v4_lease_has_every_option(link, tmp_path):
    with serving(config(link)):
        lease = dhclient(link, tmp_path)
    assert lease is not None
    for line in ("fixed-address 10.0.2.2;", "option subnet-mask 255.255.255.0;",
                 "option routers 10.0.2.1;", "option domain-name-servers 10.96.0.10,10.96.0.11;",
                 'option domain-name "cluster.local";',
                 'option domain-search "default.svc.cluster.local.", "svc.cluster.local.";',
                 'option host-name "vm-1";', "option interface-mtu 1400;",
                 "option rfc3442-classless-static-routes 16,10,10,10,0,2,254,0,10,0,2,1;",
                 "option ntp-servers 10.0.2.123;", 'option nb-224 "hello";', 'option nb-254 "last-one";',
                 "option dhcp-lease-time 3600;", "option dhcp-server-identifier 10.0.2.1;",
                 'option tftp-server-name "tftp.example";', 'option bootfile-name "pxelinux.0";'):
        assert line in lease, f"{line} missing from\n{lease}"


@pytest.mark.parametrize("rapid", [False, True])
def test_dhclient_v6_lease(link, tmp_path, rapid):
    wait_link_local(link)
    with serving(config(link, v6=V6)) as server:
        lease = dhclient(link, tmp_path, v6=True, extra_conf="send dhcp6.rapid-commit;\n" if rapid else "")
    assert lease is not None, server.counters
    assert "iaaddr fd00:10::2 {" in lease and "preferred-life 3600;" in lease and "max-life 7200;" in lease
    assert "option dhcp6.name-servers fd00:10::53;" in lease
    assert 'option dhcp6.domain-search "example.com.";' in lease
    assert ("option dhcp6.rapid-commit;" in lease) == rapid


def test_scapy_decodes_the_v4_offer(link):
    long_value = "z" * 300
    v4 = {**V4, "private_options": {224: "hello", 254: long_value}}
    with serving(config(link, v4=v4)):
        big = probe(link, "v4", CLIENT_MAC, "1500")
        small = probe(link, "v4", CLIENT_MAC, "576")
    assert big["yiaddr"] == "10.0.2.2" and big["dst"] == "255.255.255.255"
    assert big["eth_dst"] == "ff:ff:ff:ff:ff:ff"
    o = big["options"]
    assert o["message-type"] == 2 and o["server_id"] == "10.0.2.1" and o["lease_time"] == 3600
    assert o["subnet_mask"] == "255.255.255.0" and o["router"] == "10.0.2.1"
    assert o["name_server"] == ["10.96.0.10", "10.96.0.11"] and o["domain"] == "cluster.local"
    assert o["hostname"] == "vm-1" and o["interface-mtu"] == 1400 and o["NTP_server"] == "10.0.2.123"
    assert o["119"] == ["default.svc.cluster.local", "svc.cluster.local"]
    assert o["classless_static_routes"] == ["10.10.0.0/16:10.0.2.254", "0.0.0.0/0:10.0.2.1"]
    assert o["224"] == "hello" and o["254"] == long_value            # split per RFC 3396
    assert o["tftp_server_name"] == "tftp.example" and o["boot-file-name"] == "pxelinux.0"
    assert small["length"] <= 576 and "254" not in small["options"]
    assert small["options"]["subnet_mask"] == "255.255.255.0"


@pytest.mark.parametrize("rapid", [False, True])
def test_scapy_decodes_the_v6_answer(link, rapid):
    wait_link_local(link)
    with serving(config(link, v6=V6)):
        got = probe(link, "v6", CLIENT_MAC, *(["rapid"] if rapid else []))
    assert got["type"] == (7 if rapid else 2) and got["rapid_commit"] == rapid
    assert got["address"] == "fd00:10::2" and got["lifetimes"] == [3600, 7200] and got["iaid"] == 7
    assert got["dns"] == ["fd00:10::53"] and got["search"] == ["example.com"]
    assert got["dst"] == "fe80::5054:ff:fe6e:6201"


def test_router_advertisement_configures_the_client_kernel(link):
    wait_link_local(link)
    with serving(config(link, ra=RA)):
        decoded = probe(link, "ra", CLIENT_MAC)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            addrs = link.client_ns.ip("-6", "addr", "show", "dev", link.client_if).stdout
            route = link.client_ns.ip("-6", "route", "show", "default").stdout
            mtu = link.client_ns.sysctl(f"net.ipv6.conf.{link.client_if}.mtu")
            if "fd00:10::5054:ff:fe6e:6201/64" in addrs and "via fe80::" in route and mtu == "1400":
                break
            time.sleep(0.1)
    assert "fd00:10::5054:ff:fe6e:6201/64" in addrs          # SLAAC from the prefix (A flag)
    assert "via fe80::" in route and link.client_if in route  # default router
    assert mtu == "1400"
    assert decoded["M"] == 1 and decoded["O"] == 1 and decoded["hlim"] == 255
    assert decoded["prefix"] == "fd00:10::/64" and decoded["L"] == 1 and decoded["A"] == 1
    assert decoded["rdnss"] == ["fd00:10::53"] and decoded["mtu"] == 1400
    assert decoded["src"].startswith("fe80::")


def test_another_mac_gets_no_answer(link, tmp_path):
    wait_link_local(link)
    with serving(config(link, v6=V6, ra=RA)) as server:
        assert probe(link, "v4", OTHER_MAC) is None
        assert probe(link, "v6", OTHER_MAC) is None
        link.client_ns.ip("link", "set", link.client_if, "address", OTHER_MAC)
        assert udhcpc(link, tmp_path) is None
    assert server.counters.get("v4.other_client", 0) >= 2
    assert server.counters.get("v4.answered", 0) == 0 and server.counters.get("v6.answered", 0) == 0


def test_do_not_answer_mode_reads_but_sends_nothing(link):
    with serving(config(link, answer=False)) as server:
        assert probe(link, "v4", CLIENT_MAC) is None
        server.answering = True
        assert probe(link, "v4", CLIENT_MAC)["yiaddr"] == "10.0.2.2"
    assert server.counters["v4.withheld"] >= 1 and server.counters["v4.answered"] == 1


def test_hostile_packets_do_not_stop_the_server(link, tmp_path):
    import random

    rnd = random.Random(6)
    # paced: a burst of 350 datagrams overflows the default receive buffer before the server reads
    sender = ("import socket,sys,time\n"
              "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
              "s.setsockopt(socket.SOL_SOCKET,socket.SO_BROADCAST,1)\n"
              f"s.setsockopt(socket.SOL_SOCKET,socket.SO_BINDTODEVICE,b'{link.client_if}')\n"
              "for h in sys.stdin.read().split():\n"
              "    s.sendto(bytes.fromhex(h),('255.255.255.255',67)); time.sleep(0.001)\n")
    from .test_codec import request
    valid = request(1)
    packets = [bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 600))) for _ in range(150)]
    packets += [valid[:rnd.randint(0, len(valid))] for _ in range(100)]
    packets += [bytes(b ^ (rnd.getrandbits(8) if rnd.random() < 0.05 else 0) for b in valid) for _ in range(100)]
    with serving(config(link)) as server:
        subprocess.run(["ip", "netns", "exec", link.client_ns.name, sys.executable, "-c", sender],
                       input=" ".join(p.hex() or "00" for p in packets), text=True, check=True, timeout=30)
        env = udhcpc(link, tmp_path)
    assert env is not None and env["ip"] == "10.0.2.2"
    assert server.counters["v4.received"] >= 300


def _identity() -> list[str]:
    """nobody where it can reach the checkout and its interpreter, else uid 0 without capabilities.

    What the kernel checks here (port < 1024, raw sockets) is capabilities, not the uid; the uid
    only matters for reading files, and CI may clone under a directory only root can enter.
    """
    entry = pwd.getpwnam("nobody")
    probe = subprocess.run(["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
                            sys.executable, "-c", "import netbind.dhcp"], capture_output=True)
    if probe.returncode == 0:
        return [f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
    return []


def _serve_unprivileged(link, *args: str) -> subprocess.Popen:
    """``netbind dhcp serve`` in the server namespace with no capabilities at all."""
    require_binary("setpriv", "util-linux")
    netbind = str(Path(sys.executable).with_name("netbind"))
    return subprocess.Popen(
        ["ip", "netns", "exec", link.server_ns.name, "setpriv", *_identity(),
         "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", netbind, "dhcp",
         "serve", "-i", link.server_if, "--client-mac", CLIENT_MAC, "--address", "10.0.2.2/24",
         "--router", "10.0.2.1", "--dns", "10.96.0.10", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_runs_unprivileged_with_the_passt_cni_sysctl(link, tmp_path):
    """What a non-root sidecar gets: no capabilities, ip_unprivileged_port_start=0 from the CNI."""
    # without the sysctl: a clear error that names it
    proc = _serve_unprivileged(link)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "ip_unprivileged_port_start" in err, err
    ns_exec(link.server_ns, "sysctl", "-qw", "net.ipv4.ip_unprivileged_port_start=0")
    # router advertisements need CAP_NET_RAW: refused at start, naming it
    proc = _serve_unprivileged(link, "--ra-prefix", "fd00:10::/64")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "CAP_NET_RAW" in err, err
    # DHCPv4 and DHCPv6 work
    wait_link_local(link)
    proc = _serve_unprivileged(link, "--address6", "fd00:10::2/64", "--no-ra")
    try:
        env = None
        deadline = time.monotonic() + 15
        while env is None and time.monotonic() < deadline and proc.poll() is None:
            env = udhcpc(link, tmp_path)
        assert env is not None and env["ip"] == "10.0.2.2", proc.stderr.read() if proc.poll() is not None else ""
        v6 = probe(link, "v6", CLIENT_MAC, "rapid")
        assert v6 is not None and v6["address"] == "fd00:10::2"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "v4 ACK to 255.255.255.255" in err and "v6 REPLY to fe80::5054:ff:fe6e:6201" in err


def test_start_fails_cleanly_on_a_missing_interface(link):
    from netbind.dhcp import ServerError

    cfg = config(link)
    cfg["interface"] = "nb-missing0"
    with pytest.raises(ServerError, match="interface: there is no link named 'nb-missing0'"):
        with serving(cfg):
            pass
    with pytest.raises(ServerError, match="netns: cannot open /run/netns/nb-nosuchns"):
        with serving({**config(link), "netns": "nb-nosuchns"}):
            pass
