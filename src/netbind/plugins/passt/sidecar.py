"""The passt binding plugin's sidecar: what KubeVirt's ``network-passt-binding`` does, on our SDK.

For the pod network's interface (which must use this binding) it writes a ``vhostuser`` interface
with a passt backend and port forwarding, replacing its own previous output, and makes sure the
memory is shared (memfd) as vhost-user needs (spec sections 7.1 and 7.2).

Run as ``netbind-passt-sidecar`` or ``python -m netbind.plugins.passt.sidecar``; it serves on
``/var/run/kubevirt-hooks/<binding>.sock`` (``passt.sock`` by default) unless ``--socket`` says
otherwise. The binding name is ``$NETWORK_BINDING_PLUGIN_NAME``, default ``passt``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from lxml import etree

from netbind.domain import QEMU_NS, Domain, Interface, PortForward, PortRange
from netbind.hooks import App, HookContext, HookError
from netbind.hooks._vmi import VMIDecodeError, vmi_root

DEFAULT_BINDING = "passt"
PASST_LOG_FILE = "/var/run/kubevirt/passt.log"
# pkg/network/istio: ports of the Istio proxy that must stay with the pod, not the guest
ISTIO_RESERVED_PORTS = (15000, 15001, 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090)

app = App("network-passt-binding", binding=DEFAULT_BINDING, versions=("v1alpha3",))


@dataclass(frozen=True)
class PasstInterface:
    """Desired state of the passt interface, computed from the VMI alone."""

    name: str
    pod_interface: str
    model: str
    mac: str | None
    pci_address: str | None
    acpi_index: int | None
    port_forwards: tuple[PortForward, ...]


def _port_forwards(ports, istio: bool) -> tuple[PortForward, ...]:
    tcp = [PortRange(start=p, exclude=True) for p in ISTIO_RESERVED_PORTS] if istio else []
    udp: list[PortRange] = []
    for port in ports:
        protocol, number = port.str("protocol"), port.int("port")
        if number < 0:
            continue
        if protocol == "" or protocol.casefold() == "tcp":
            tcp.append(PortRange(start=number))
        elif protocol.casefold() == "udp":
            udp.append(PortRange(start=number))
        else:  # KubeVirt logs and skips (SCTP)
            print(f"passt: protocol {protocol} is not supported by passt, port {number} skipped",
                  file=sys.stderr)
    if not tcp and not udp:
        return (PortForward("tcp"), PortForward("udp"))  # forward everything
    forwards = []
    if tcp:
        forwards.append(PortForward("tcp", tuple(tcp)))
    if udp:
        forwards.append(PortForward("udp", tuple(udp)))
    return tuple(forwards)


def plan(vmi_json: dict, binding: str) -> PasstInterface:
    """What the passt interface must look like for this VMI; raises HookError as KubeVirt words it."""
    try:
        vmi = vmi_root(vmi_json)
        meta = vmi.obj("metadata", "ObjectMeta")
        spec = vmi.obj("spec", "VirtualMachineInstanceSpec")
        devices = spec.obj("domain", "DomainSpec").obj("devices", "Devices")
        transitional = devices.bool("useVirtioTransitional")
        istio = meta.str_map("annotations").get("sidecar.istio.io/inject", "").casefold() == "true"
        networks = spec.list("networks", "Network")
        interfaces = devices.list("interfaces", "Interface")
        statuses = vmi.obj("status", "VirtualMachineInstanceStatus").list(
            "interfaces", "VirtualMachineInstanceNetworkInterface")

        def configurator_error(message: str) -> HookError:
            return HookError(f"failed to create passt configurator: {message}")

        pod_network = next((n for n in networks if n.has("pod")), None)
        if pod_network is None:
            raise configurator_error("pod network not found")
        network_name = pod_network.str("name")
        iface = next((i for i in interfaces if i.str("name") == network_name), None)
        if iface is None:
            raise configurator_error("no interface found")
        if not iface.has("binding") or iface.obj("binding", "PluginBinding").str("name") != binding:
            raise configurator_error(f'interface "{network_name}" is not set with Passt network binding plugin')
        status = next((s for s in statuses if s.str("name") == iface.str("name")), None)
        if status is None:
            raise configurator_error("primary network interface status was not found")
        pod_interface = status.str("podInterfaceName")
        if not pod_interface:
            raise configurator_error("primary pod network interface name was not found")

        model = iface.str("model")
        if model in ("", "virtio"):
            model = "virtio-transitional" if transitional else "virtio-non-transitional"
        acpi_index = iface.int("acpiIndex", "int")
        return PasstInterface(
            name=iface.str("name"),
            pod_interface=pod_interface,
            model=model,
            mac=iface.str("macAddress") or None,
            pci_address=iface.str("pciAddress") or None,
            acpi_index=acpi_index if acpi_index > 0 else None,
            port_forwards=_port_forwards(iface.list("ports", "Port"), istio),
        )
    except VMIDecodeError as exc:
        raise HookError(f"failed to unmarshal VMI: {exc}") from None


def build_interface(desired: PasstInterface) -> Interface:
    # A new element is built child by child in the order KubeVirt's Go structs write them, so
    # each child is appended, not placed by Interface's setters (a search per child; this is
    # on every call's reply path). Values are checked by lxml as the setters' are.
    element = etree.Element("interface", type="vhostuser")
    child = etree.SubElement
    child(element, "source", dev=desired.pod_interface)
    child(element, "model", type=desired.model)
    if desired.mac is not None:
        child(element, "mac", address=desired.mac)
    child(element, "alias", name="ua-" + desired.name)
    if desired.acpi_index is not None:
        child(element, "acpi", index=str(desired.acpi_index))
    child(element, "backend", type="passt", logFile=PASST_LOG_FILE)
    for forward in desired.port_forwards:
        pf = child(element, "portForward", proto=forward.proto)
        if forward.address is not None:
            pf.set("address", forward.address)
        for r in forward.ranges:
            attrs = {"start": str(r.start)}
            if r.end is not None:
                attrs["end"] = str(r.end)
            if r.to is not None:
                attrs["to"] = str(r.to)
            if r.exclude:
                attrs["exclude"] = "yes"
            child(pf, "range", attrs)
    iface = Interface(element)
    if desired.pci_address is not None:   # goes first, where the setter puts it
        try:
            iface.pci_address = desired.pci_address
        except ValueError:
            raise HookError("failed to generate domain interface spec: "
                            f"failed to parse pci address {desired.pci_address}") from None
    return iface


def apply(domain: Domain, desired: PasstInterface) -> Domain:
    """Edit ``domain``: replace-or-append the interface, require/establish shared memory."""
    mode = domain.memory_access_mode
    if mode is not None and mode != "shared":
        raise HookError(f"memory backing access mode must be 'shared'; cannot override existing mode: \"{mode}\"")
    domain.ensure_namespace("qemu", QEMU_NS)  # KubeVirt's marshaller always declares it
    domain.put_interface(build_interface(desired))
    if domain.memory_backing is None:  # an existing one (e.g. hugepages without <access>) is kept
        domain.set_memory_backing(source_type="memfd", access_mode="shared")
    return domain


@app.on_define_domain
def on_define_domain(domain: Domain, ctx: HookContext) -> Domain:
    return apply(domain, plan(ctx.vmi_json, ctx.binding))


def main(argv: list[str] | None = None) -> int:
    return app.main(argv, prog="netbind-passt-sidecar",
                    description="KubeVirt hook sidecar of the passt network binding plugin.")


if __name__ == "__main__":
    sys.exit(main())
