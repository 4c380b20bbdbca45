"""A private libvirtd per pod network namespace, and the pure domain XML rewrites it needs here.

qemu inherits libvirtd's network namespace, so each pod gets its own libvirtd started inside the
pod netns (host notes R5) with its own ``/etc/libvirt``, ``/run/libvirt``, ``/var/lib/libvirt``,
``/var/cache/libvirt`` and ``/var/log/libvirt`` bind-mounted from the pod's runtime directory in a
private mount namespace. Configuration: ``stdio_handler = "file"`` (there is no virtlogd), qemu as
root (``/dev/kvm`` is root-only here, and a non-root qemu makes libvirt re-probe on every start),
no cgroups, no namespaces, no security driver. QEMU's capabilities are probed once per host
(8-12 s under TCG) and then copied from ``$NETBIND_CACHE_DIR/libvirt-qemu-capabilities`` into
every new libvirtd.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import libvirt
from lxml import etree

from netbind.node import paths, procs
from netbind.node.status import AgentInterface
from netbind.node.sandbox import Pod

# host directory -> subdirectory of the pod's libvirt root
MOUNTS = {"/etc/libvirt": "etc", "/run/libvirt": "run", "/var/lib/libvirt": "lib",
          "/var/cache/libvirt": "cache", "/var/log/libvirt": "log",
          # the VMI's disks where virt-launcher has them (netbind.node.guest_disks)
          "/run/kubevirt-ephemeral-disks": "ephemeral-disks", "/run/kubevirt/container-disks": "container-disks"}
CAPABILITIES = Path("qemu/capabilities")
_SUN_PATH_MAX = 107
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors arrive as exceptions; no stderr spam


class LibvirtError(RuntimeError):
    """libvirt refused or failed; the message names the domain and libvirt's reason."""


def qemu_conf(qemu_user: str | None, label: str) -> str:
    """The lines appended to a private libvirtd's qemu.conf (pure): QEMU's stdio to files (there is
    no virtlogd), no security driver, no namespaces or cgroups of libvirt's making; QEMU as
    ``qemu_user`` (user and group), or as the libvirt build's default user when None. ``label``
    says which libvirtd in the file's comment."""
    run_as = f'user = "{qemu_user}"\ngroup = "{qemu_user}"\n' if qemu_user else ""
    return f"""
# netbind: a private libvirtd ({label}) inside a pod network namespace, without systemd or virtlogd
stdio_handler = "file"
security_driver = "none"
# no owner bookkeeping in xattrs on shared files (the guest kernel in the cache): a killed
# libvirtd would leave them "in use" and every later start or migration of it refused
remember_owner = 0
namespaces = [ ]
cgroup_controllers = [ ]
{run_as}"""


# ---- pure domain XML rewrites ------------------------------------------------------------------

def _parse(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode(), _PARSER)


def _dump(root: etree._Element) -> str:
    return etree.tostring(root, pretty_print=True, encoding="unicode")


def to_tcg(xml: str, cpu_model: str = "qemu64") -> str:
    """KubeVirt's KVM domain made runnable under TCG (no usable KVM on PVM hosts, pitfall 1):
    domain type ``qemu``; host-model/host-passthrough/maximum CPUs become a custom ``cpu_model``
    (topology and NUMA kept); KVM-only features (``<kvm>``, the kvmclock timer) are dropped."""
    root = _parse(xml)
    root.set("type", "qemu")
    cpu = root.find("cpu")
    if cpu is None:
        cpu = etree.SubElement(root, "cpu")
    if cpu.get("mode") in (None, "host-model", "host-passthrough", "maximum"):
        for child in list(cpu):
            if child.tag not in ("topology", "numa"):
                cpu.remove(child)
        for attr in ("mode", "check", "migratable"):
            cpu.attrib.pop(attr, None)
        cpu.set("mode", "custom")
        cpu.set("match", "exact")
        model = etree.Element("model", fallback="allow")
        model.text = cpu_model
        cpu.insert(0, model)
    for kvm_only in root.findall("features/kvm") + root.findall("clock/timer[@name='kvmclock']"):
        kvm_only.getparent().remove(kvm_only)
    return _dump(root)


def with_direct_kernel_boot(xml: str, kernel: Path | str, initrd: Path | str, cmdline: str) -> str:
    """Boot ``kernel``/``initrd`` directly (our tiny guest stands in for the containerDisk): firmware,
    NVRAM, boot orders and the VMI's disks go, since they only slow down a TCG boot and conflict with
    kernel boot."""
    root = _parse(xml)
    os_el = root.find("os")
    if os_el is None:
        os_el = etree.SubElement(root, "os")
        etree.SubElement(os_el, "type", arch="x86_64", machine="q35").text = "hvm"
    for tag in ("loader", "nvram", "boot", "bootmenu", "kernel", "initrd", "cmdline"):
        for el in os_el.findall(tag):
            os_el.remove(el)
    for tag, value in (("kernel", kernel), ("initrd", initrd), ("cmdline", cmdline)):
        etree.SubElement(os_el, tag).text = str(value)
    for boot in root.findall("devices/*/boot"):
        boot.getparent().remove(boot)
    # the VMI's own disks (files inside a real launcher) are not booted: the kernel above stands in
    for disk in root.findall("devices/disk"):
        disk.getparent().remove(disk)
    return _dump(root)


def with_serial_log(xml: str, path: Path | str) -> str:
    """One serial port appending to ``path`` (KubeVirt's unix-socket console needs a client).
    Appending keeps what a migration source wrote when the target starts on a copy of it."""
    root = _parse(xml)
    devices = root.find("devices")
    for el in devices.findall("serial") + devices.findall("console"):
        devices.remove(el)
    serial = etree.SubElement(devices, "serial", type="file")
    etree.SubElement(serial, "source", path=str(path), append="on")
    etree.SubElement(serial, "target", port="0")
    return _dump(root)


def serial_log_path(xml: str) -> Path | None:
    root = _parse(xml)
    for serial in root.findall("devices/serial"):
        source = serial.find("source")
        if serial.get("type") == "file" and source is not None and source.get("path"):
            return Path(source.get("path"))
        log = serial.find("log")
        if log is not None and log.get("file"):
            return Path(log.get("file"))
    return None


def interface_with_link_state(xml: str, mac: str, up: bool) -> str:
    """The ``<interface>`` with ``mac`` from a domain's XML, its ``<link state>`` set (for an
    update-device call, the way KubeVirt's link-refresh and link state API do it)."""
    root = _parse(xml)
    for iface in root.findall("devices/interface"):
        mac_el = iface.find("mac")
        if mac_el is not None and mac_el.get("address", "").lower() == mac.lower():
            for link in iface.findall("link"):
                iface.remove(link)
            etree.SubElement(iface, "link", state="up" if up else "down")
            return _dump(iface)
    raise LibvirtError(f"the domain has no interface with MAC {mac}")


def minimal_domain_xml(name: str, interfaces: Iterable[tuple[str, str]], memory_mib: int = 256,
                       vcpus: int = 1) -> str:
    """A small domain shaped like KubeVirt's (KVM, host-model CPU, tap interfaces as the bridge
    binding writes them: ``(tap, mac)``), for tests and benchmarks until the domain builder of the
    launcher is at hand; run it through to_tcg and with_direct_kernel_boot like any other."""
    root = etree.Element("domain", type="kvm")
    etree.SubElement(root, "name").text = name
    etree.SubElement(root, "memory", unit="MiB").text = str(memory_mib)
    etree.SubElement(root, "vcpu", placement="static").text = str(vcpus)
    os_el = etree.SubElement(root, "os")
    etree.SubElement(os_el, "type", arch="x86_64", machine="q35").text = "hvm"
    etree.SubElement(os_el, "boot", dev="hd")
    features = etree.SubElement(root, "features")
    etree.SubElement(features, "acpi")
    etree.SubElement(root, "cpu", mode="host-model")
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        etree.SubElement(root, event).text = "destroy"
    devices = etree.SubElement(root, "devices")
    for tap, mac in interfaces:
        iface = etree.SubElement(devices, "interface", type="ethernet")
        etree.SubElement(iface, "mac", address=mac)
        etree.SubElement(iface, "target", dev=tap, managed="no")
        etree.SubElement(iface, "model", type="virtio")
        etree.SubElement(iface, "rom", enabled="no")  # KubeVirt: no option ROM unless booting from it
    etree.SubElement(devices, "memballoon", model="none")
    return _dump(root)


# ---- live or paused migration (pure) --------------------------------------------------------------

# Debian 12's QEMU 7.2 under TCG loses guest writes during a live migration: the target's kernel
# dies on stale pages within seconds (bench/flake.py: 8 of 12; QEMU 10: 0 of 6). Most likely the bug
# QEMU 9.0 fixed (commit 03bfc2188f, "physmem: Fix migration dirty bitmap coherency with TCG memory
# access"): after a dirty-bitmap sync of an aligned range the TCG TLB's dirty tracking was not
# re-armed, so a page whose TLB entry stays resident (a kernel stack, the timer queue) was written
# on the source and never sent again. Paused, the guest writes nothing while its RAM is copied.
TCG_LIVE_MIGRATION_FIXED = 9_000_000   # libvirt's version number of QEMU 9.0.0


def paused_migration_reason(domain_type: str, qemu_version: int) -> str | None:
    """Why a domain of ``domain_type`` (``qemu``: TCG) on a QEMU of ``qemu_version`` (libvirt's
    number: major * 1,000,000 + minor * 1,000 + micro) must be migrated paused, or None when a
    live migration keeps its memory intact."""
    if domain_type != "qemu" or qemu_version >= TCG_LIVE_MIGRATION_FIXED:
        return None
    major, minor = qemu_version // 1_000_000, qemu_version // 1_000 % 1_000
    return (f"paused for the transfer: QEMU {major}.{minor} under TCG loses guest writes in a live migration"
            " (fixed in QEMU 9.0, commit 03bfc2188f)")


# ---- the guest agent's view of the guest's interfaces (pure) -------------------------------------

# How long a guest agent query may take: a guest without an agent answers at once (libvirt knows its
# channel is unconnected), a busy TCG guest with one within a second or two.
AGENT_TIMEOUT_SECONDS = 2


def agent_interfaces(guest_info: dict[str, Any]) -> list[AgentInterface]:
    """The interfaces in libvirt's typed parameters of virDomainGetGuestInfo(INTERFACES)
    (``if.count``, ``if.<i>.name``, ``if.<i>.hwaddr``, ``if.<i>.addr.<j>.type|addr``), converted as
    KubeVirt's agent poller does: ``lo`` dropped, addresses in the agent's order, the first IPv4
    one as the interface's address."""
    found = []
    for i in range(int(guest_info.get("if.count", 0))):
        name = str(guest_info.get(f"if.{i}.name", ""))
        if name == "lo":
            continue
        addrs = [(str(guest_info.get(f"if.{i}.addr.{j}.type", "")), str(guest_info.get(f"if.{i}.addr.{j}.addr", "")))
                 for j in range(int(guest_info.get(f"if.{i}.addr.count", 0)))]
        ips = tuple(addr for _, addr in addrs if addr)
        primary = next((addr for kind, addr in addrs if kind == "ipv4" and addr), ips[0] if ips else "")
        found.append(AgentInterface(name, str(guest_info.get(f"if.{i}.hwaddr", "")), primary, ips))
    return found


def query_agent_interfaces(domain: libvirt.virDomain,
                           timeout: int = AGENT_TIMEOUT_SECONDS) -> list[AgentInterface] | None:
    """The guest's interfaces from its QEMU guest agent, or None when no agent answers (none in
    the guest, not started yet, or slower than ``timeout`` seconds): a guest without one is no error."""
    try:
        domain.agentSetResponseTimeout(timeout, 0)
        info = domain.guestInfo(libvirt.VIR_DOMAIN_GUEST_INFO_INTERFACES, 0)
    except libvirt.libvirtError:
        return None
    return agent_interfaces(info)


@contextmanager
def domain_at(uri: str, name: str) -> Iterator[tuple[str, "libvirt.virDomain | None"]]:
    """The domain ``name`` of the libvirtd at ``uri``, on one connection for the block, with its
    phase as the VMI states it: Running (the domain is given), Succeeded (defined, not running),
    Failed (the libvirtd or the domain is gone), Unknown (the libvirtd does not answer)."""
    socket = Path(uri.split("socket=", 1)[1]) if "socket=" in uri else None
    if socket is not None and not socket.exists():
        yield "Failed", None
        return
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        yield "Unknown", None
        return
    try:
        try:
            domain = conn.lookupByName(name)
            active = domain.isActive()
        except libvirt.libvirtError:
            found: tuple[str, libvirt.virDomain | None] = ("Failed", None)
        else:
            found = ("Running", domain) if active else ("Succeeded", None)
        yield found
    finally:
        conn.close()


# ---- the private libvirtd (effectful) ----------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    root: Path

    def dir(self, host_dir: str) -> Path:
        return self.root / MOUNTS[host_dir]

    def host_path(self, pod_path: Path | str) -> Path:
        """Where a path that the pod's libvirtd and QEMU see lives on the host."""
        if str(pod_path).startswith("/var/run/"):   # a symlink to /run, as on the host
            pod_path = str(pod_path)[len("/var"):]
        for host_dir in MOUNTS:
            if str(pod_path).startswith(host_dir + "/"):
                return self.dir(host_dir) / str(pod_path)[len(host_dir) + 1:]
        raise ValueError(f"{pod_path} is not under a directory private to the pod ({', '.join(MOUNTS)})")

    @property
    def socket(self) -> Path:
        return self.dir("/run/libvirt") / "libvirt-sock"

    @property
    def uri(self) -> str:
        return f"qemu:///system?socket={self.socket}"

    @property
    def pidfile(self) -> Path:
        return self.root / "libvirtd.pid"

    @property
    def capabilities(self) -> Path:
        return self.dir("/var/cache/libvirt") / CAPABILITIES


def shared_capabilities_dir() -> Path:
    return paths.cache_dir() / "libvirt-qemu-capabilities"


def write_host_uuid(layout: Layout) -> None:
    """Each libvirtd plays another host: libvirt refuses to migrate between two daemons that report
    the same host UUID (both read the same SMBIOS or machine-id), so each gets its own."""
    with open(layout.dir("/etc/libvirt") / "libvirtd.conf", "a") as conf:
        conf.write(f'\nhost_uuid = "{uuid.uuid5(uuid.NAMESPACE_URL, str(layout.root.resolve()))}"\n')


def _prepare(layout: Layout) -> None:
    for host_dir in MOUNTS:
        layout.dir(host_dir).mkdir(parents=True, exist_ok=True)
    etc = layout.dir("/etc/libvirt")
    shutil.copytree("/etc/libvirt", etc, dirs_exist_ok=True, symlinks=True)
    # no autostarted networks (virbr0 + dnsmasq in the pod) and no leftover domains
    for autostart in etc.glob("qemu/networks/autostart/*"):
        autostart.unlink()
    with open(etc / "qemu.conf", "a") as conf:
        conf.write(qemu_conf("root", "the host's libvirt"))
    write_host_uuid(layout)
    for sub in ("qemu", "qemu/channel/target", "qemu/nvram", "images"):
        (layout.dir("/var/lib/libvirt") / sub).mkdir(parents=True, exist_ok=True)
    (layout.dir("/var/log/libvirt") / "qemu").mkdir(parents=True, exist_ok=True)
    layout.capabilities.mkdir(parents=True, exist_ok=True)
    shared = shared_capabilities_dir()
    if shared.is_dir():
        for cached in shared.glob("*.xml"):
            shutil.copy2(cached, layout.capabilities / cached.name)


# Lists "PATH MAJOR:MINOR" of the macvtap character devices of the namespace it runs in: `ip netns
# exec` mounts a sysfs of that namespace.
_TAP_DEVICES = 'for f in /sys/class/net/*/macvtap/tap*/dev; do [ -e "$f" ] && echo "$f $(cat "$f")"; done; true'


def pod_tap_devices(netns: str) -> tuple[procs.Device, ...]:
    """The pod's macvtap character devices, for its libvirtd to see at ``/dev/tap<ifindex>``.

    libvirt opens a macvtap by that name, but the host's /dev has one node per name while ifindexes
    are per namespace: with macvtaps of the same ifindex in two pods, one pod's QEMU opened the
    other's device (its traffic left through the other pod's lower device, or the open failed).
    KubeVirt's macvtap device plugin gives each compute container its own node; so do we."""
    from netbind import _iproute

    expected = {f"/dev/tap{link['ifindex']}" for link in _iproute.links(netns).values()
                if link.get("linkinfo", {}).get("info_kind") == "macvtap"}
    if not expected:
        return ()
    done = subprocess.run(["ip", "netns", "exec", netns, "sh", "-c", _TAP_DEVICES],
                          capture_output=True, text=True)
    devices = []
    for line in done.stdout.splitlines():
        path, _, numbers = line.partition(" ")
        major, _, minor = numbers.partition(":")
        if major.isdigit() and minor.isdigit():
            devices.append(procs.Device(f"/dev/{Path(path).parent.name}", int(major), int(minor), 0o600))
    found = {d.path for d in devices}
    if found != expected:
        # without its own nodes the pod's QEMU may open another pod's macvtap: refuse rather than guess
        raise LibvirtError(f"pod {netns}: macvtap devices {sorted(expected)} expected, the pod's sysfs lists"
                           f" {sorted(found)} ({done.stderr.strip() or 'no error'})")
    return tuple(devices)


def offer_capabilities(probed_dir: Path, shared: Path) -> None:
    """Copy the capability files a libvirtd probed into the host's shared cache, where new."""
    # Pods started at once on a fresh host all probe and offer their files together: each writes
    # its own temporary name (with one shared name, a pod's rename can take another pod's copy
    # away under it, and that pod's `up` fails), and a failed offer only costs the next pod a probe.
    try:
        fresh = [p for p in probed_dir.glob("*.xml")
                 if not (shared / p.name).exists() or (shared / p.name).read_bytes() != p.read_bytes()]
        if fresh:
            shared.mkdir(parents=True, exist_ok=True)
        for probed in fresh:
            tmp = shared / f".{probed.name}.{os.getpid()}.tmp"
            try:
                shutil.copy2(probed, tmp)
                tmp.replace(shared / probed.name)
            finally:
                tmp.unlink(missing_ok=True)
    except OSError:
        pass


def _accepts(path: Path) -> bool:
    """Whether a connection to the unix socket ``path`` is taken. Its file appears at bind(), a
    moment before libvirtd listens: a connect in between is refused."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def await_socket(pod: Pod, layout: Layout, record: procs.ProcessRecord, timeout: float, what: str) -> None:
    """Wait for a just-started libvirtd to open its socket; stop it and say why if it does not."""
    deadline = time.monotonic() + timeout
    while not _accepts(layout.socket):
        if not procs.alive(record.pid, record.starttime) or time.monotonic() > deadline:
            tail = procs.log_tail(record.log)
            pod.stop("libvirtd")
            raise LibvirtError(f"{what} in {pod.netns} did not open {layout.socket}: {tail}")
        time.sleep(0.01)


class PrivateLibvirtd:
    """A running libvirtd in a pod's netns; its domains are recorded in the pod's journal."""

    def __init__(self, pod: Pod, layout: Layout, record: procs.ProcessRecord,
                 pending: tuple[float, str] | None = None):
        self.pod, self.layout, self.record = pod, layout, record
        self._conn: libvirt.virConnect | None = None
        self._pending = pending   # (deadline, what) until its socket is seen open

    def ready(self) -> None:
        """Wait for the socket of a libvirtd started with ``wait=False`` (the first use of ``conn``
        does): up lets it start while the sidecars start and the hooks run."""
        if self._pending is not None:
            deadline, what = self._pending
            await_socket(self.pod, self.layout, self.record, max(0.0, deadline - time.monotonic()), what)
            self._pending = None

    @classmethod
    def start(cls, pod: Pod, timeout: float = 15.0, wait: bool = True) -> "PrivateLibvirtd":
        layout = Layout(pod.names.directory / "libvirt")
        if len(str(layout.socket)) > _SUN_PATH_MAX:
            raise LibvirtError(f"{layout.socket} is longer than a unix socket path may be ({_SUN_PATH_MAX});"
                               " use a shorter runtime dir (NETBIND_RUNTIME_DIR)")
        _prepare(layout)
        # Pinned to CPU 0: libvirt 9.0 keys its capabilities cache on the host's raw CPUID, which
        # carries the APIC id of the CPU the probe ran on, so an unpinned libvirtd finds the cache
        # "outdated" (host cpuid changed) on every other start and re-probes for ~8 s. qemu does
        # not inherit the pinning: libvirt resets its affinity to all online CPUs.
        argv = ["taskset", "--cpu-list", "0", "libvirtd", "--pid-file", str(layout.pidfile)]
        binds = tuple(procs.Bind(layout.dir(host), host) for host in MOUNTS)
        # no settle wait: await_socket watches it
        record = pod.start(pod.process_spec("libvirtd", argv, binds=binds, devices=pod_tap_devices(pod.netns)),
                           settle=0)
        daemon = cls(pod, layout, record, (time.monotonic() + timeout, "libvirtd"))
        if wait:
            daemon.ready()
        return daemon

    def hand_to_qemu(self, path: Path) -> None:
        """Make a host directory this libvirtd's QEMU creates files in (a migration socket's)
        usable by QEMU's user; QEMU runs as root here."""

    @property
    def conn(self) -> libvirt.virConnect:
        if self._conn is None:
            self.ready()
            self._conn = libvirt.open(self.layout.uri)
        return self._conn

    def define(self, xml: str) -> libvirt.virDomain:
        name = _parse(xml).findtext("name")
        entry = self.pod.journal.intend("domain", name, uri=self.layout.uri)
        try:
            domain = self.conn.defineXML(xml)
        except libvirt.libvirtError as exc:
            self.pod.journal.undo(since=self.pod.journal.entries.index(entry))
            raise LibvirtError(f"define {name}: {exc}") from None
        self.pod.journal.created(entry)
        self.share_capabilities()
        return domain

    def domain(self, name: str) -> libvirt.virDomain:
        return self.conn.lookupByName(name)

    def start_domain(self, name: str) -> None:
        try:
            self.domain(name).create()
        except libvirt.libvirtError as exc:
            raise LibvirtError(f"start {name}: {exc}") from None

    def remove_domain(self, name: str) -> None:
        for entry in self.pod.journal.find("domain", name):
            self.pod.journal.undo(since=self.pod.journal.entries.index(entry))

    def set_link_state(self, name: str, mac: str, up: bool,
                       flags: int = libvirt.VIR_DOMAIN_AFFECT_LIVE) -> None:
        domain = self.domain(name)
        device = interface_with_link_state(domain.XMLDesc(0), mac, up)
        domain.updateDeviceFlags(device, flags)

    def set_qemu_link(self, name: str, device_id: str, up: bool) -> None:
        """QEMU's ``set_link`` on a device libvirt does not model (a ``<qemu:commandline>`` NIC):
        what ``virDomainUpdateDeviceFlags`` with ``<link state>`` does for an ``<interface>``."""
        import libvirt_qemu

        command = json.dumps({"execute": "set_link", "arguments": {"name": device_id, "up": up}})
        reply = json.loads(libvirt_qemu.qemuMonitorCommand(self.domain(name), command, 0))
        if "error" in reply:
            raise LibvirtError(f"set_link {device_id} {'up' if up else 'down'}: {reply['error'].get('desc')}")

    def adopt_incoming(self, name: str) -> None:
        """Record a domain that a migration will create here, before it exists (undo: destroy)."""
        self.pod.journal.intend("domain", name, uri=self.layout.uri)

    def paused_migration_reason(self, name: str) -> str | None:
        """Why ``name`` must migrate paused on this libvirtd's QEMU (paused_migration_reason)."""
        domain_type = _parse(self.domain(name).XMLDesc(0)).get("type", "")
        return paused_migration_reason(domain_type, self.conn.getVersion())

    def migrate(self, name: str, target: "PrivateLibvirtd", migration_socket: Path,
                disks_socket: Path | None = None, live: bool = True) -> dict[str, Any]:
        """Live-migrate ``name`` to ``target`` as KubeVirt does: peer to peer (this libvirtd
        drives the target libvirtd over its unix socket), QEMU's stream over a unix socket that
        the target QEMU listens on; persistent on the target, undefined here. With
        ``disks_socket``, the VM's local disks go along as KubeVirt sends a containerDisk's
        overlay: VIR_MIGRATE_NON_SHARED_INC (the target has the same base), over the NBD server
        the target QEMU opens on that unix socket. Returns the target's statistics of the
        completed job (downtime, elapsed time, bytes). ``live=False``: libvirt pauses the guest for
        the whole transfer and resumes it on the target (the downtime is the transfer)."""
        flags = (libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_PERSIST_DEST
                 | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
        if live:
            flags |= libvirt.VIR_MIGRATE_LIVE
        params = {libvirt.VIR_MIGRATE_PARAM_URI: f"unix://{migration_socket}"}
        if disks_socket is not None:
            flags |= libvirt.VIR_MIGRATE_NON_SHARED_INC
            params[libvirt.VIR_MIGRATE_PARAM_DISKS_URI] = f"unix://{disks_socket}"
        dconnuri = f"qemu+unix:///system?socket={target.layout.socket}"
        try:
            self.domain(name).migrateToURI3(dconnuri, params, flags)
        except libvirt.libvirtError as exc:
            raise LibvirtError(str(exc)) from None
        try:
            return target.domain(name).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        except libvirt.libvirtError:
            return {}

    def agent_interfaces(self, name: str, timeout: int = AGENT_TIMEOUT_SECONDS) -> list[AgentInterface] | None:
        return query_agent_interfaces(self.domain(name), timeout)

    def console_log(self, name: str) -> str:
        path = serial_log_path(self.domain(name).XMLDesc(0))
        if path is None or not path.exists():
            return ""
        return path.read_text(errors="replace")

    def shared_capabilities(self) -> Path:
        """Where this kind of libvirtd keeps the QEMU capabilities it shares between pods."""
        return shared_capabilities_dir()

    def share_capabilities(self) -> None:
        """Offer this libvirtd's probed QEMU capabilities to the next ones (pitfall 8)."""
        offer_capabilities(self.layout.capabilities, self.shared_capabilities())

    def stop(self) -> None:
        """Remove its domains, then stop libvirtd (what ``down`` would do from the journal)."""
        for entry in self.pod.journal.find("domain"):
            self.remove_domain(entry.name)
        self.close()
        self.pod.stop("libvirtd")

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except libvirt.libvirtError:
                pass
            self._conn = None


def undo_domain(attrs: dict[str, Any]) -> None:
    """Destroy and undefine a recorded domain, if its libvirtd still answers (if not, its qemu
    goes with the pod namespace's processes)."""
    socket = Path(attrs["uri"].split("socket=", 1)[1])
    if not socket.exists():
        return
    try:
        conn = libvirt.open(attrs["uri"])
    except libvirt.libvirtError:
        return
    try:
        domain = conn.lookupByName(attrs["name"])
        if domain.isActive():
            try:
                domain.destroy()
            except libvirt.libvirtError as exc:
                # an incoming domain whose migration was cut off (its source killed) stops by itself
                # between isActive and destroy: "domain is not running" is what undo wants
                if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID or domain.isActive():
                    raise
        if domain.isPersistent():
            domain.undefine()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            raise LibvirtError(f"remove domain {attrs['name']}: {exc}") from None
    finally:
        conn.close()
