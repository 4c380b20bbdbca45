"""Pure parts of `netbind up`: the passt substitution (R6a), the image map, VMI status and
Multus' network-status. No root needed."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from lxml import etree

from netbind.node import multus, passt, status
from netbind.node.guest import Report
from netbind.node.images import ImageMap, ImageMapError

SIDECAR_XML = """<domain type="kvm" xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0"><name>default_vm</name>
<devices><interface type="vhostuser"><source dev="eth0"/><model type="virtio-non-transitional"/>
<mac address="02:00:00:00:00:02"/><alias name="ua-default"/>
<backend type="passt" logFile="/var/run/kubevirt/passt.log"/>
<portForward proto="tcp"><range start="15000" exclude="yes"/><range start="80"/><range start="1000" end="1010"/></portForward>
<portForward proto="udp"><range start="53"/></portForward></interface>
<interface type="ethernet"><alias name="ua-other"/></interface></devices></domain>"""


def test_passt_interface_becomes_netdev_stream_with_same_mac_and_ports():
    xml, nics = passt.substitute(SIDECAR_XML, lambda alias: Path(f"/run/x/{alias}.sock"))
    root = etree.fromstring(xml.encode())
    assert [i.get("type") for i in root.findall("devices/interface")] == ["ethernet"]  # the other NIC stays
    args = [a.get("value") for a in root.iter("{http://libvirt.org/schemas/domain/qemu/1.0}arg")]
    assert args[0] == "-netdev" and "addr.path=/run/x/ua-default.sock" in args[1] and "server=off" in args[1]
    assert args[2] == "-device" and args[3].startswith("virtio-net-pci-non-transitional,netdev=nb-ua-default,")
    assert "mac=02:00:00:00:00:02" in args[3] and "id=ua-default" in args[3]
    (nic,) = nics
    assert (nic.tcp, nic.udp, nic.pod_interface, nic.mac_generated) == (("~15000", "80", "1000-1010"), ("53",), "eth0", False)
    argv = nic.passt_argv("/usr/bin/passt", Path("/l"))
    assert argv[argv.index("-t") + 1] == "~15000,80,1000-1010" and argv[argv.index("-u") + 1] == "53"
    assert argv[argv.index("--interface") + 1] == "eth0" and "--one-off" in argv


def test_passt_forward_all_without_mac_and_missing_qemu_namespace():
    xml = ('<domain><name>d</name><devices><interface type="vhostuser"><alias name="ua-p"/>'
           '<backend type="passt"/><portForward proto="tcp"/><portForward proto="udp"/></interface></devices></domain>')
    out, (nic,) = passt.substitute(xml, lambda a: Path("/s"))
    assert nic.tcp == ("all",) and nic.udp == ("all",) and nic.mac_generated and nic.mac.startswith("52:54:00:")
    assert passt.substitute(xml, lambda a: Path("/s"))[1][0].mac == nic.mac   # stable choice
    assert 'xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0"' in out
    fitted, why = passt.fit_to_limit(nic, 20000)
    assert fitted.tcp == () and fitted.udp == () and "20000" in why and "ports" in why
    assert passt.fit_to_limit(nic, 1 << 20) == (nic, None)
    only_excluded = passt._specs(etree.fromstring('<portForward proto="tcp"><range start="22" exclude="yes"/></portForward>'))
    assert only_excluded == ("all", "~22")


def test_passt_refuses_a_model_it_cannot_express():
    xml = SIDECAR_XML.replace("virtio-non-transitional", "e1000")
    with pytest.raises(passt.PasstSubstitutionError, match="ua-default: model 'e1000'"):
        passt.substitute(xml, lambda a: Path("/s"))


def test_no_passt_interface_leaves_the_domain_alone():
    xml = "<domain><name>d</name><devices/></domain>"
    assert passt.substitute(xml, lambda a: Path("/s"))[1] == []


def test_image_map_matches_with_or_without_tag_and_user_entries_win(tmp_path):
    default = ImageMap.load()
    for ref in ("quay.io/kubevirt/network-passt-binding:20231205_29a16d5c9",
                "quay.io/kubevirt/network-passt-binding@sha256:abc", "quay.io/kubevirt/network-passt-binding"):
        assert default.sidecar(ref).argv[0].endswith("netbind-passt-sidecar")
    assert default.disk("quay.io/anything:1").guest == "tiny"
    with pytest.raises(ImageMapError, match="(?s)registry.example/mine:1.*not in the image map.*command"):
        default.sidecar("registry.example/mine:1")
    user = tmp_path / "images.yaml"
    user.write_text("sidecars:\n  registry.example/mine: {command: [/bin/true, --flag], env: {A: b}}\n"
                    "cni:\n  my-cni: /bin/true\n")
    mine = ImageMap.load(user)
    found = mine.sidecar("registry.example/mine:2")
    assert found.argv == ("/bin/true", "--flag") and found.env == {"A": "b"} and str(user) in found.source
    links = mine.cni_bin_dir(tmp_path / "bin")
    assert os.readlink(links / "my-cni") == "/bin/true"
    assert os.path.basename(os.readlink(links / "cni-passt-binding-plugin")) == "netbind-cni-passt-binding"
    assert os.path.basename(os.readlink(links / "macvtap")) == "netbind-cni-macvtap"
    bad = tmp_path / "bad.yaml"
    bad.write_text("sidecars:\n  x: {command: not-a-list}\n")
    with pytest.raises(ImageMapError, match=r"sidecars\.x\.command: give a list"):
        ImageMap.load(bad)


def test_interface_status_joins_domain_guest_and_multus():
    nics = [status.DomainNic("default", "52:54:00:00:00:01", None), status.DomainNic("lan", "02:00:00:00:00:05", None)]
    reports = [Report("LEASE", {"iface": "eth0", "ip": "10.244.0.10", "mac": "52:54:00:00:00:01", "event": "bound"}),
               Report("LEASE", {"iface": "eth0", "ip": "10.244.0.10", "mac": "52:54:00:00:00:01", "event": "renew"})]
    default, lan = status.interface_statuses(nics, reports, {"default": "eth0", "lan": "pod1234"})
    assert default == {"name": "default", "mac": "52:54:00:00:00:01", "interfaceName": "eth0",
                       "ipAddress": "10.244.0.10", "ipAddresses": ["10.244.0.10"], "podInterfaceName": "eth0",
                       "infoSource": "domain, guest-agent, multus-status", "linkState": "up", "queueCount": 1}
    assert lan["infoSource"] == "domain, multus-status" and "ipAddress" not in lan
    down = reports + [Report("LINK", {"iface": "eth0", "state": "down"})]
    assert "ipAddress" not in status.interface_statuses(nics, down, {})[0]


def test_network_status_names_only_interfaces_the_plugins_created():
    pod = multus.Attachment("netbind-pod-network", "eth0", {
        "cniVersion": "1.0.0", "interfaces": [{"name": "nb-br0"}, {"name": "veth1"},
                                              {"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/run/netns/p"}],
        "ips": [{"address": "10.244.0.10/24", "gateway": "10.244.0.1", "interface": 2}]}, default=True)
    binding = multus.Attachment("default/netbindingpasst", "net1", {"cniVersion": "1.0.0"})
    assert pod.status() == {"name": "netbind-pod-network", "interface": "eth0", "ips": ["10.244.0.10"],
                            "mac": "aa:bb:cc:dd:ee:ff", "default": True, "gateway": ["10.244.0.1"], "dns": {}}
    assert binding.status() == {"name": "default/netbindingpasst", "dns": {}}


def test_delegate_config_gets_cni_args_and_the_device_plugins_device_id():
    conf = multus.nad_delegate_config('{"cniVersion":"0.3.1","name":"m","type":"macvtap"}', {"x": "y"}, "eth9")
    assert conf["plugins"][0]["deviceID"] == "eth9" and conf["plugins"][0]["args"] == {"cni": {"x": "y"}}
    mastered = multus.nad_delegate_config('{"cniVersion":"0.3.1","name":"m","type":"macvtap","master":"a"}', None, "b")
    assert "deviceID" not in mastered["plugins"][0]
    assert multus.device_id_of({multus.RESOURCE_ANNOTATION: "macvtap.network.kubevirt.io/eth0"}) == "eth0"
    assert multus.device_id_of({}) is None


def test_console_follower_reads_what_was_appended_and_reports_only_complete_lines(tmp_path):
    from netbind.node.guest import ConsoleFollower

    console = tmp_path / "console.log"
    follower = ConsoleFollower(console)
    assert not follower.poll()   # no file yet
    console.write_bytes(b"[ 0.1] boot\nNB: LEASE iface=eth0 ip=10.0.2.15\nNB: REA")
    assert follower.poll()
    assert [(r.word, r.fields) for r in follower.reports] == [("LEASE", {"iface": "eth0", "ip": "10.0.2.15"})]
    with console.open("ab") as out:
        out.write("DY uptime=3.1 caf\u00e9".encode()[:-1])   # a character cut in two
    assert follower.poll()
    assert [r.word for r in follower.reports] == ["LEASE"]
    with console.open("ab") as out:
        out.write("\u00e9".encode()[-1:] + b"\ndebian login: ")
    assert follower.poll() and not follower.poll()
    assert follower.reports[-1].fields == {"uptime": "3.1"}
    assert follower.text.endswith("NB: READY uptime=3.1 caf\u00e9\ndebian login: ")   # the prompt has no newline


def test_reports_come_from_complete_lines_only():
    from netbind.node.guest import parse_reports

    reports = parse_reports("NB: PROBE ok=yes reply=x\nNB: PROBE ok")   # the second one half written
    assert [(r.word, r.fields) for r in reports] == [("PROBE", {"ok": "yes", "reply": "x"})]
    assert parse_reports("NB: READY uptime=1") == []
