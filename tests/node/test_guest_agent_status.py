"""The guest agent's interfaces in the VMI status, as KubeVirt merges them (pure logic).

The expectations follow KubeVirt's source: pkg/virt-launcher/virtwrap/agent-poller (convertToInterfaces:
``lo`` dropped, the first IPv4 address as the interface's) and pkg/network/setup/netstat.go
(ifacesStatusFromGuestAgent: matched by MAC, per-family IP precedence, link-local addresses dropped
on masquerade, guest-only interfaces appended up to 10, infoSource "domain, guest-agent"), with
cases from its netstat_test.go."""
from __future__ import annotations

import libvirt
import pytest

from netbind.node import libvirt as lv
from netbind.node import runtime, status
from netbind.node.guest import Report
from netbind.node.status import AgentInterface, DomainNic

MAC1, MAC2 = "02:00:00:00:00:01", "02:00:00:00:00:02"


def _guest_info(*ifaces: tuple[str, str, list[tuple[str, str]]]) -> dict:
    """virDomainGetGuestInfo(INTERFACES)'s typed parameters, as libvirt-python returns them."""
    info: dict = {"if.count": len(ifaces)}
    for i, (name, mac, addrs) in enumerate(ifaces):
        info.update({f"if.{i}.name": name, f"if.{i}.hwaddr": mac, f"if.{i}.addr.count": len(addrs)})
        for j, (kind, addr) in enumerate(addrs):
            info.update({f"if.{i}.addr.{j}.type": kind, f"if.{i}.addr.{j}.addr": addr, f"if.{i}.addr.{j}.prefix": 24})
    return info


def test_the_agents_interfaces_drop_lo_and_take_the_first_ipv4_address_as_the_interfaces():
    info = _guest_info(("lo", "00:00:00:00:00:00", [("ipv4", "127.0.0.1"), ("ipv6", "::1")]),
                       ("eth0", MAC1, [("ipv6", "fe80::1"), ("ipv4", "10.0.2.2"), ("ipv4", "10.0.2.3")]),
                       ("eth1", MAC2, [("ipv6", "fd00::5")]),
                       ("eth2", "02:00:00:00:00:03", []))
    assert lv.agent_interfaces(info) == [
        AgentInterface("eth0", MAC1, "10.0.2.2", ("fe80::1", "10.0.2.2", "10.0.2.3")),
        AgentInterface("eth1", MAC2, "fd00::5", ("fd00::5",)),          # no IPv4: any address
        AgentInterface("eth2", "02:00:00:00:00:03", "", ()),
    ]
    assert lv.agent_interfaces({}) == []


class _Domain:
    def __init__(self, answer):
        self.answer, self.timeouts = answer, []

    def agentSetResponseTimeout(self, seconds, flags):
        self.timeouts.append(seconds)

    def guestInfo(self, types, flags):
        assert types == libvirt.VIR_DOMAIN_GUEST_INFO_INTERFACES
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_a_guest_without_an_agent_is_no_error_and_the_query_is_bounded():
    silent = _Domain(libvirt.libvirtError("Guest agent is not responding: QEMU guest agent is not connected"))
    assert lv.query_agent_interfaces(silent) is None
    assert silent.timeouts == [lv.AGENT_TIMEOUT_SECONDS]
    answering = _Domain(_guest_info(("eth0", MAC1, [("ipv4", "10.0.2.2")])))
    assert lv.query_agent_interfaces(answering, timeout=1) == [AgentInterface("eth0", MAC1, "10.0.2.2", ("10.0.2.2",))]
    assert answering.timeouts == [1]


def _entry(name: str, mac: str, **more) -> dict:
    return {"name": name, "mac": mac, "infoSource": "domain", "linkState": "up", "queueCount": 1, **more}


def test_an_agent_interface_joins_the_domain_nic_with_its_mac_and_names_both_sources():
    nics = [DomainNic("default", MAC1, None), DomainNic("lan", MAC2, None)]
    agent = [AgentInterface("eth0", MAC1.upper(), "10.0.2.2", ("10.0.2.2", "fd10::2"))]
    default, lan = status.interface_statuses(nics, [], {"default": "eth0"}, agent)
    assert default == {"name": "default", "mac": MAC1, "infoSource": "domain, guest-agent, multus-status",
                       "linkState": "up", "queueCount": 1, "interfaceName": "eth0", "ipAddress": "10.0.2.2",
                       "ipAddresses": ["10.0.2.2", "fd10::2"], "podInterfaceName": "eth0"}
    # a NIC the agent does not see keeps the domain's data only (KubeVirt: "not seen in the guest")
    assert lan == _entry("lan", MAC2)


def test_the_status_keeps_its_own_addresses_per_family_unless_it_has_none_or_the_agent_has_none():
    agent = [AgentInterface("eth0", MAC1, "2.2.2.1", ("2.2.2.1", "fd20:244::8c4c"))]
    # both families known before (the pod's, in KubeVirt): they stay
    [kept] = status.merge_guest_agent([_entry("default", MAC1, ipAddress="1.1.1.1",
                                              ipAddresses=["1.1.1.1", "fd10:244::1"])], agent)
    assert (kept["ipAddress"], kept["ipAddresses"]) == ("1.1.1.1", ["1.1.1.1", "fd10:244::1"])
    # IPv4 before, the agent only IPv6: the guest is unreachable by IPv4, so the agent's view wins
    [swapped] = status.merge_guest_agent([_entry("default", MAC1, ipAddress="1.1.1.1", ipAddresses=["1.1.1.1"])],
                                         [AgentInterface("eth0", MAC1, "fd20::8", ("fd20::8",))])
    assert (swapped["ipAddress"], swapped["ipAddresses"]) == ("fd20::8", ["fd20::8"])
    # the agent reports no address at all: the status has none either
    [cleared] = status.merge_guest_agent([_entry("default", MAC1, ipAddress="1.1.1.1", ipAddresses=["1.1.1.1"])],
                                         [AgentInterface("eth0", MAC1, "", ())])
    assert "ipAddress" not in cleared and "ipAddresses" not in cleared and cleared["interfaceName"] == "eth0"
    # IPv4 first in the merged list, whatever order the agent gave
    [ordered] = status.merge_guest_agent([_entry("default", MAC1)],
                                         [AgentInterface("eth0", MAC1, "10.0.0.9", ("fd00::9", "10.0.0.9", "bogus"))])
    assert ordered["ipAddresses"] == ["10.0.0.9", "fd00::9"] and ordered["ipAddress"] == "10.0.0.9"


def test_link_local_addresses_are_dropped_on_a_masquerade_nic_only():
    agent = [AgentInterface("eth0", MAC1, "10.0.2.2", ("10.0.2.2", "fe80::1")),
             AgentInterface("eth1", MAC2, "fe80::2", ("fe80::2",))]
    masq, bridge = status.merge_guest_agent([_entry("default", MAC1), _entry("lan", MAC2)], agent,
                                            masquerade={"default"})
    assert masq["ipAddresses"] == ["10.0.2.2"]
    assert bridge["ipAddresses"] == ["fe80::2"]       # KubeVirt: bridge w/o IPAM keeps its LLA


def test_guest_only_interfaces_are_appended_as_the_agent_reports_them_up_to_ten():
    agent = [AgentInterface("eth0", MAC1, "10.0.2.2", ("10.0.2.2",)),
             AgentInterface("eth3", "02:00:00:00:00:33", "3.3.3.3", ("3.3.3.3", "169.254.0.1", "fe80::3"))]
    agent += [AgentInterface(f"br{i}", f"00:00:00:00:00:{i:02X}", "", ()) for i in range(1, 25)]
    merged = status.merge_guest_agent([_entry("default", MAC1)], agent, masquerade={"default"})
    assert len(merged) == 1 + 10
    assert merged[1] == {"mac": "02:00:00:00:00:33", "interfaceName": "eth3", "infoSource": "guest-agent",
                         "ipAddress": "3.3.3.3", "ipAddresses": ["3.3.3.3", "169.254.0.1", "fe80::3"]}
    assert [m["interfaceName"] for m in merged[2:]] == [f"br{i}" for i in range(1, 10)]
    assert all("name" not in m and "ipAddress" not in m for m in merged[2:])
    # guest-only entries never take a pod interface name
    statuses = status.interface_statuses([DomainNic("default", MAC1, None)], [], {"default": "eth0"}, agent[:2])
    assert statuses[1]["infoSource"] == "guest-agent" and "podInterfaceName" not in statuses[1]


def test_an_agent_entry_without_a_guest_name_leaves_the_info_source_alone():
    # KubeVirt: such data came from an old virt-launcher's own merge of the domain spec
    [entry] = status.merge_guest_agent([_entry("default", MAC1)], [AgentInterface("", MAC1, "10.0.2.2", ("10.0.2.2",))])
    assert entry["infoSource"] == "domain" and entry["ipAddress"] == "10.0.2.2"


def test_the_agent_when_it_answers_is_the_guest_source_and_the_console_reports_only_stand_in_for_it():
    nics = [DomainNic("default", MAC1, None)]
    reports = [Report("LEASE", {"iface": "eth0", "ip": "10.244.0.10", "mac": MAC1, "event": "bound"})]
    [from_console] = status.interface_statuses(nics, reports, {})
    assert (from_console["ipAddress"], from_console["infoSource"]) == ("10.244.0.10", "domain, guest-agent")
    [from_agent] = status.interface_statuses(nics, reports, {}, [AgentInterface("eth0", MAC1, "10.244.1.7",
                                                                                ("10.244.1.7",))])
    assert from_agent["ipAddresses"] == ["10.244.1.7"]
    [no_guest] = status.interface_statuses(nics, [], {}, None)
    assert no_guest == _entry("default", MAC1)


@pytest.mark.parametrize("agent, expected", [
    ([AgentInterface("eth0", MAC1, "10.0.2.2", ("fe80::1", "10.0.2.2"))], {"default": ["10.0.2.2"], "lan": []}),
    ([AgentInterface("eth0", MAC1, "fe80::1", ("fe80::1",)), AgentInterface("eth1", MAC2, "", ())],
     {"default": [], "lan": []}),
    ([], {"default": [], "lan": []}),
])
def test_a_wait_counts_a_nics_address_only_when_it_is_no_link_local_one(agent, expected):
    nics = [DomainNic("default", MAC1, None), DomainNic("lan", MAC2, None)]
    assert runtime.agent_addresses(nics, agent) == expected


def test_info_sources_are_added_once_in_order():
    assert status.add_info_source("", "domain") == "domain"
    assert status.add_info_source("domain, guest-agent", "multus-status") == "domain, guest-agent, multus-status"
    assert status.add_info_source("domain, multus-status", "multus-status") == "domain, multus-status"


def test_the_pod_wiring_draws_the_domain_nics_and_leaves_guest_only_interfaces_out():
    from netbind import wiring

    vmi = {"status": {"interfaces": [
        {"name": "default", "mac": MAC1, "interfaceName": "eth0", "ipAddress": "10.0.2.2",
         "infoSource": "domain, guest-agent"},
        {"mac": "02:00:00:00:00:33", "interfaceName": "docker0", "infoSource": "guest-agent"}]}}
    drawn = wiring.from_pod_links(vmi, {}, [])
    assert [n.name for n in drawn.networks] == ["default"]
    assert drawn.networks[0].domain == f"guest eth0 {MAC1}, 10.0.2.2"
