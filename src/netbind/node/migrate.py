"""``netbind migrate``: live migration of a running VMI to a second "node" on this machine, the way
KubeVirt does it.

The roles, in order: the migration admission (the VMI's ``LiveMigratable`` condition, spec 9.1: a
refusal carries KubeVirt's ``Cannot migrate VMI, Reason: ..., Message: ...``); virt-controller (the
target launcher pod, rendered from the same VMI and registry); the target node's kubelet + Multus
(a new pod namespace wired by the *target node's* pod network: node N has its own bridge and pod
CIDR 10.244.N.0/24, so the guest's address must change, the case link-refresh exists for); the
target's sidecars and libvirtd; the target launcher (``OnDefineDomain`` once with the incoming
domain, result discarded, spec 6.4); the source launcher (a peer-to-peer live migration between the
two libvirtds, QEMU's stream over a unix socket); virt-handler on the target (link-refresh for every
interface whose binding declares it: down, 100 ms, up, spec 9.2); the source launcher again
(``Shutdown`` to the v1alpha3 sidecars); and the source pod's end.

Every failure before the hand-over leaves the VM running on the source: the target pod is torn
down from its journal and the VMI's ``migrationState`` says ``failed``.
"""
from __future__ import annotations

import datetime
import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lxml import etree

from netbind.node import guest as guestmod
from netbind.node import multus, paths, procs, sandbox, status
from netbind.node import sidecars as sidecarmod
from netbind.node.images import ImageMap, ImageMapError
from netbind.node.journal import UndoError
from netbind.node.runtime import (
    PLUGIN_SOCKET_TIMEOUT, POD_CONSOLE, POD_SEEDED_INITRD, SOCKET_TIMEOUT, STATE_FILE, Progress, UpError, _Clock, _Silent, _tail,
    attach_pod_networks, await_hook_sockets, current_vmi, load_state, manifests_of, node_name, passt_nics_of,
    publish_network_status, start_passt, start_sidecars, _domain_phase, confine_compute, describe_sidecars,
    AGENT_POLL_SECONDS, agent_addresses, guest_agent_interfaces,
)

LINK_REFRESH_PAUSE = 0.1     # KubeVirt: down, sleep 100 ms, up
LINK_REFRESH = "link-refresh"


class MigrationError(UpError):
    """The migration was refused or failed; the VM still runs on the source and the target pod is gone."""


@dataclass
class MigrateOptions:
    images: ImageMap | None = None        # the target node's image map; default: the one the VM was started with
    wait: bool = False                    # return once the guest has a lease on the target
    wait_timeout: float = 60.0
    runtime: Path | None = None
    socket_timeout: float = SOCKET_TIMEOUT
    plugin_socket_timeout: float = PLUGIN_SOCKET_TIMEOUT   # for each Plugin sidecar's socket
    # fault injection for tests and drills: runs with the target pod once it is ready, before the transfer
    before_transfer: Callable[[sandbox.Pod], None] | None = None


@dataclass
class MigrateResult:
    source: str                           # the source pod's netns (gone now)
    target: sandbox.Pod
    vmi: dict
    phases: list[dict] = field(default_factory=list)
    job: dict = field(default_factory=dict)          # libvirt's completed-job statistics (target side)
    link_refresh: list[dict] = field(default_factory=list)
    shutdown: dict = field(default_factory=dict)     # source sidecar -> what happened on Shutdown
    lease: dict = field(default_factory=dict)        # with --wait: the guest's new lease and its timing

    def to_json(self) -> dict:
        return {"source": self.source, "target": self.target.netns, "vmi": self.vmi, "phases": self.phases,
                "job": self.job, "linkRefresh": self.link_refresh, "shutdown": self.shutdown, "lease": self.lease}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _running(name: str, runtime: Path) -> tuple[sandbox.Pod, dict]:
    pods = [(p, load_state(p)) for p in sandbox.find_pods(name, runtime)]
    pods = [(p, s) for p, s in pods if s is not None]
    if not pods:
        raise MigrationError(f"no VMI {name!r} runs here (netbind status lists them)", phase="admission")
    if len(pods) > 1:
        raise MigrationError(f"{name!r} names {len(pods)} running pods ({', '.join(p.netns for p, _ in pods)});"
                             " name one by its pod namespace", phase="admission")
    return pods[0]


def migrate(name: str, options: MigrateOptions | None = None, progress: Progress | None = None) -> MigrateResult:
    from netbind.api.versions import profile as profile_named
    from netbind.bindings import binding_migration_method_by_interface_name, verify_vmi_migratable
    from netbind.controller import RenderError, render_launcher_pod
    from netbind.review import configuration

    options = options or MigrateOptions()
    clock = _Clock(progress or _Silent())
    runtime = options.runtime or paths.runtime_dir()

    # -- the migration admission: is the VMI migratable (virt-handler's LiveMigratable condition)?
    with clock.phase("admission") as info:
        source, state = _running(name, runtime)
        manifests = manifests_of(state)
        profile = profile_named(state.get("profile", "latest"))
        vmi = profile.decoded(manifests.vmi)
        config = configuration(manifests)
        verdict = verify_vmi_migratable(vmi, config, profile)
        if not verdict.migratable:
            raise MigrationError(f"Cannot migrate VMI, Reason: {verdict.reason}, Message: {verdict.message}",
                                 phase="admission")
        if _domain_phase(state) != "Running":
            raise MigrationError(f"Cannot migrate VMI {vmi.namespace}/{vmi.metadata.name}: it is not running"
                                 f" (phase {_domain_phase(state)})", phase="admission")
        source_index = int(state.get("nodeIndex", 0))
        target_index = 1 - source_index          # two nodes: migrations go back and forth
        info["detail"] = (f"LiveMigratable=True; {node_name(source_index)} -> {node_name(target_index)}")

    migration = {"migrationUid": str(uuid.uuid4()), "startTimestamp": _now(), "mode": "PreCopy",
                 "sourceNode": node_name(source_index), "targetNode": node_name(target_index),
                 "sourcePod": state["launcherPod"], "completed": False, "failed": False}

    # -- virt-controller: the target launcher pod, from the same VMI and registry
    with clock.phase("target pod") as info:
        try:
            pod_manifest = render_launcher_pod(vmi, config, nads=manifests.nads, profile=profile)
        except RenderError as exc:
            raise MigrationError(f"virt-controller: {exc.sync_message}", phase="target pod") from None
        _refuse_shared_lower_devices(pod_manifest, manifests, vmi)
        from netbind.node import plugins as pluginsmod
        try:
            plugin_plan = pluginsmod.plan_for(manifests)
        except pluginsmod.PluginSetupError as exc:
            raise MigrationError(str(exc), phase="target pod") from None
        sidecarmod.inject_plugin_sidecars(pod_manifest, plugin_plan.sockets, plugin_plan.images)
        containers = sidecarmod.sidecar_containers(pod_manifest)
        images = options.images or ImageMap(**state["images"])
        try:
            # the target runs its sidecars the way the source does (containers or processes)
            resolved = sidecarmod.choose_all(containers, images, state.get("sidecarsMode", "process"))
        except sidecarmod.SidecarError as exc:
            raise MigrationError(exc.message, phase="target pod") from None
        except ImageMapError as exc:
            raise MigrationError(str(exc), phase="target pod") from None
        target = sandbox.create_pod(vmi.metadata.name, vmi.namespace, runtime)
        target_pod_name = f"virt-launcher-{vmi.metadata.name}-{target.names.suffix}"
        migration["targetPod"] = target_pod_name
        info["detail"] = f"pod netns {target.netns} on {node_name(target_index)}"

    try:
        return _migrate_to(target, source, state, vmi, config, manifests, profile, pod_manifest, containers,
                           resolved, images, target_index, migration, options, clock,
                           binding_migration_method_by_interface_name(vmi, config), plugin_plan)
    except BaseException as exc:
        phase = clock.current
        if migration["completed"]:
            # after the hand-over the guest lives in the target pod: tearing it down would kill the VM
            if not isinstance(exc, Exception):
                raise   # Ctrl-C, SIGTERM: the VM stays where it runs now, the rest is for `netbind down`
            reason = exc.message if isinstance(exc, UpError) else str(exc)
            raise MigrationError(f"{phase} failed after the hand-over: {reason}; the VMI runs on"
                                 f" {migration['targetNode']} ({target.netns}) now; source pod {source.netns}"
                                 f" (no domain left) and the target remain for `netbind down`",
                                 phase=phase) from exc
        cleanup = ""
        with sandbox.uninterrupted():   # a second Ctrl-C must not leave half a target pod
            try:
                target.down()
            except UndoError as undo_exc:
                cleanup = f"\ncleanup of the target pod incomplete ({undo_exc}); run `netbind down {target.netns}`"
        reason = exc.message if isinstance(exc, UpError) else f"{phase}: {exc}"
        migration.update({"failed": True, "endTimestamp": _now(), "failureReason": reason})
        _record(source, {"migrationState": migration})
        if isinstance(exc, UpError):
            raise MigrationError(f"migration failed: {exc.message}; the VMI keeps running on"
                                 f" {migration['sourceNode']} ({source.netns})", phase=exc.phase or phase,
                                 details=exc.details + cleanup, vmi=current_vmi(source)) from None
        if isinstance(exc, Exception):
            raise MigrationError(f"migration failed: {reason}; the VMI keeps running on {migration['sourceNode']}",
                                 phase=phase, details=cleanup, vmi=current_vmi(source)) from exc
        raise


def _refuse_shared_lower_devices(pod_manifest: dict, manifests, vmi) -> None:
    """A limit of this machine, not of KubeVirt: a NAD with a device plugin resource (macvtap-cni)
    gets the node's lower device, and both local nodes share the one node namespace's device. The
    target's macvtap, with the VM's MAC on that same device, cannot come up while the source's
    exists (EADDRINUSE); real nodes each have their own lower device on a shared L2."""
    from netbind.node.runtime import NETWORKS

    annotations = pod_manifest["metadata"].get("annotations", {})
    for element in multus.selection_elements(annotations.get(NETWORKS)):
        namespace = element.get("namespace") or vmi.namespace
        nad = manifests.nad(namespace, element["name"])
        device = multus.device_id_of(nad.metadata.annotations) if nad is not None else None
        if device:
            raise MigrationError(
                f"LiveMigratable=True (KubeVirt would migrate this VMI), but the local runtime cannot: network"
                f" {namespace}/{element['name']} takes the node's lower device {device!r} (device plugin"
                f" resource), and both local nodes share that one device, so the target's macvtap with the"
                f" VM's MAC could not come up next to the source's; nothing was created", phase="target pod")


def _record(pod: sandbox.Pod, changes: dict) -> None:
    state = load_state(pod)
    if state is None:
        return
    state.update(changes)
    (pod.names.directory / STATE_FILE).write_text(json.dumps(state, indent=1))


def _migrate_to(target, source, state, vmi, config, manifests, profile, pod_manifest, containers, resolved,
                images, target_index, migration, options, clock, methods, plugin_plan) -> MigrateResult:
    from netbind.launcher.hooks import HookClientError, HookManager
    from netbind.launcher.plugins import PluginHookError
    from netbind.node import plugins as pluginsmod
    from netbind.node import libvirt as lv

    node = sandbox.ensure_node(target.names.runtime)
    annotations = pod_manifest["metadata"].get("annotations", {})
    substitutions: list[str] = []
    pod_name = migration["targetPod"]

    # -- the target node's kubelet + Multus
    with clock.phase("target network") as info:
        pod_network = state.get("podNetwork") or multus.default_pod_network(node.names.directory / "ipam",
                                                                            target_index)
        attachments = attach_pod_networks(target, node, manifests, vmi, annotations, pod_name, images, pod_network,
                                          substitutions)
        network_status = publish_network_status(target, vmi, config, annotations, attachments, profile)
        eth0 = next((ip["address"] for ip in attachments[0].result.get("ips", [])), "?")
        info["detail"] = f"eth0 {eth0}" + "".join(f", {a.network} -> {a.ifname}" for a in attachments[1:])

    # -- the target's sidecars and libvirtd; the target launcher's OnDefineDomain (result discarded)
    source_lv = lv.PrivateLibvirtd(source, lv.Layout(source.names.directory / "libvirt"), None)
    domain_name = state["domain"]
    with clock.phase("target sidecars+libvirtd") as info:
        records = start_sidecars(target, resolved, pod_manifest, pod_name, vmi.namespace)
        # the target runs the passt path the source runs (a native domain needs a native libvirtd)
        from netbind.node import native
        source_path = (state.get("host") or {}).get("passtPath", {}).get("path", "substitute")
        target_lv = native.start_libvirtd(target, native.select(source_path))
        confine_compute(target, pod_manifest, target_lv.record.pid, None)
        info["detail"] = f"{describe_sidecars(records)}, libvirtd pid {target_lv.record.pid}"
    with clock.phase("target hooks") as info:
        hook_records = sidecarmod.hook_api_sidecars(records)
        await_hook_sockets(target, hook_records, options.socket_timeout)
        incoming = source_lv.domain(domain_name).XMLDesc(_migratable_flag())
        vmi_json = json.dumps(current_vmi(source)).encode()
        manager = HookManager(target.names.hooks_dir, poll_period=0.02)
        outcomes: list = []
        try:
            manager.collect(len(hook_records), timeout=5)
            trace: list = []
            manager.on_define_domain(incoming.encode(), vmi_json, trace=trace)   # side effects only
            if plugin_plan:   # the target launcher's MigrationTarget call, on the incoming domain too
                _, outcomes = pluginsmod.define(target, plugin_plan, incoming.encode(), vmi_json, "MigrationTarget",
                                                readiness=options.plugin_socket_timeout)
        except HookClientError as exc:
            raise UpError(f"executing custom preStart hooks failed: {exc}",
                          details="\n".join(r.log_tail() for r in records)) from None
        except PluginHookError as exc:
            raise UpError(f"applying plugin domain hooks failed: {exc}",
                          details="\n".join(r.log_tail() for r in records)) from None
        finally:
            manager.close()
        substitutions += sorted({f"warning: {o.detail}" for o in outcomes if o.status == "ignored"})
        info["detail"] = (f"OnDefineDomain x1 on {len(manager.sidecars)} sidecar(s), result discarded"
                          if trace else "no hook subscribers")
        if plugin_plan:
            info["detail"] += f"; Plugin MutateDomain (MigrationTarget) x{sum(o.status == 'applied' for o in outcomes)}"

    # -- the target launcher's files: passt (R6a) where the migrated QEMU dials it, the guest's
    #    seeded initramfs and the console history at the paths the domain names inside the pod
    with clock.phase("target prepare") as info:
        host = state.get("host", {})
        nics = passt_nics_of(state)
        for nic in nics:
            start_passt(target, target_lv.layout, nic, host.get("passt") or "passt")
        seeded = source_lv.layout.host_path(POD_SEEDED_INITRD)
        if seeded.exists():
            destination = target_lv.layout.host_path(POD_SEEDED_INITRD)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(seeded, destination)
        if state.get("disks"):
            from netbind.node import guest_disks

            try:
                guest_disks.place_for_migration(state["disks"], source_lv.layout.host_path,
                                                target_lv.layout.host_path)
            except guest_disks.GuestDiskError as exc:
                raise UpError(str(exc)) from None
        console = target_lv.layout.host_path(POD_CONSOLE)
        console.parent.mkdir(parents=True, exist_ok=True)
        # contents only: the source libvirt's DAC bookkeeping (trusted.libvirt.security.* xattrs:
        # "in use, owner X") must not come along, or the target libvirt refuses to relabel the copy
        shutil.copyfile(state["console"], console)
        text = console.read_text(errors="replace")
        reports_before = guestmod.parse_reports(text)
        boots_before = _boots(reports_before)
        if options.before_transfer is not None:
            options.before_transfer(target)
        target_lv.adopt_incoming(domain_name)
        info["detail"] = f"{len(nics)} passt NIC(s) listening in the target pod"

    # your own disk may speak our console protocol too (netbind's cloud guest image does)
    reporting = state.get("guestReports", True) or any(r.word == "READY" for r in reports_before)
    # a guest that reports nothing on its console may have a guest agent: what it says of each NIC
    # now tells a new address on the target from the old one
    addresses_before = None
    if options.wait and not reporting:
        agent = source_lv.agent_interfaces(domain_name)
        if agent is not None:
            addresses_before = agent_addresses([status.DomainNic(**n) for n in state["nics"]], agent)

    # -- the source launcher: live migration, peer to peer, QEMU's stream over a unix socket
    with clock.phase("transfer") as info:
        channel = target.names.directory / "migration"
        channel.mkdir(mode=0o700, exist_ok=True)
        target_lv.hand_to_qemu(channel)   # the target QEMU listens there (as libvirt-qemu on the native path)
        paused = source_lv.paused_migration_reason(domain_name)
        t0 = time.perf_counter()
        try:
            job = source_lv.migrate(domain_name, target_lv, channel / "qemu.sock",
                                    channel / "nbd.sock" if state.get("disks") else None, live=paused is None)
        except lv.LibvirtError as exc:
            qemu_log = target_lv.layout.dir("/var/log/libvirt") / "qemu" / f"{domain_name}.log"
            raise UpError(f"live migration failed: {exc}", details=_tail(qemu_log, "target qemu")) from None
        finally:
            source_lv.close()
        wall = time.perf_counter() - t0
        job = {k: v for k, v in job.items() if isinstance(v, (int, float, str))}
        info["detail"] = (f"{wall:.2f} s, downtime {job.get('downtime', '?')} ms,"
                          f" {job.get('data_processed', 0) / 2**20:.1f} MiB" + (f"; {paused}" if paused else ""))
    if paused:
        substitutions.append(f"migration: {paused}")
    migration.update({"completed": True, "endTimestamp": _now(), "targetNodeDomainDetected": True,
                      "targetNodeDomainReadyTimestamp": _now()})
    # the VM runs on the target now: from here on, failures are reported, not rolled back

    # -- virt-handler on the target: FinalizeVirtualMachineMigration's link-refresh
    refreshed = []
    with clock.phase("link-refresh") as info:
        xml = target_lv.domain(domain_name).XMLDesc(0)
        by_alias = {nic.alias: nic for nic in nics}
        for iface_name, method in methods.items():
            if method != LINK_REFRESH:
                continue
            alias = f"ua-{iface_name}"
            t0 = time.perf_counter()
            if alias in by_alias:    # a <qemu:commandline> NIC (R6a): QEMU's set_link, what libvirt would send
                target_lv.set_qemu_link(domain_name, alias, False)
                time.sleep(LINK_REFRESH_PAUSE)
                target_lv.set_qemu_link(domain_name, alias, True)
                how = "QMP set_link (R6a NIC)"
            else:
                mac = _mac_of_alias(xml, alias)
                if mac is None:
                    continue         # KubeVirt skips domain interfaces it cannot find by alias
                how = _refresh_through_libvirt(target_lv, domain_name, mac, alias)
            refreshed.append({"interface": iface_name, "how": how, "at": time.time(),
                              "ms": round((time.perf_counter() - t0) * 1000, 1)})
        target_lv.close()
        info["detail"] = ", ".join(f"{r['interface']} ({r['ms']} ms)" for r in refreshed) or "no interface declares it"

    # -- the source launcher after hand-over: Shutdown to v1alpha3 sidecars, then the pod ends
    with clock.phase("source shutdown") as info:
        shutdown = _shutdown_source_sidecars(source)
        source_netns = source.netns
        source.down()
        info["detail"] = "; ".join(f"{k}: {v}" for k, v in shutdown.items()) or "no sidecars"

    # the refreshed NICs that had an address before: the ones a new address is awaited on
    awaited = {r["interface"]: addresses_before[r["interface"]] for r in refreshed
               if addresses_before and addresses_before.get(r["interface"])}
    if options.wait and refreshed and not reporting and not awaited:
        substitutions.append("--wait: the guest (your own disk) reports no leases on its console"
                             + (" and its guest agent no address on a refreshed NIC" if addresses_before is not None
                                else " and no guest agent answered")
                             + "; the wait ends with the migration, not with the guest's new address")
    new_state = dict(state)
    new_state.update({"uri": target_lv.layout.uri, "launcherPod": pod_name, "node": node.netns,
                      "nodeIndex": target_index, "nodeName": node_name(target_index),
                      "networkStatus": json.loads(network_status), "console": str(console),
                      "substitutions": state.get("substitutions", []) + substitutions,
                      "migrationState": migration, "phases": clock.phases})
    (target.names.directory / STATE_FILE).write_text(json.dumps(new_state, indent=1))

    lease: dict = {}
    if options.wait and refreshed and reporting:
        with clock.phase("guest lease") as info:
            lease = _wait_for_new_lease(console, options.wait_timeout, boots_before, len(reports_before))
            info["detail"] = f"{lease['iface']} {lease['ip']} ({lease['link_up_to_lease_ms']} ms after link up)"
        new_state["phases"] = clock.phases
        (target.names.directory / STATE_FILE).write_text(json.dumps(new_state, indent=1))
    elif options.wait and awaited:
        with clock.phase("guest address") as info:
            lease = _wait_for_new_agent_address(new_state, awaited, options.wait_timeout, refreshed[-1]["at"])
            info["detail"] = (f"{lease['iface']} {lease['ip']} (guest agent, {lease['link_refresh_to_address_ms']} ms"
                              " after link-refresh)")
        new_state["phases"] = clock.phases
        (target.names.directory / STATE_FILE).write_text(json.dumps(new_state, indent=1))
    return MigrateResult(source_netns, target, current_vmi(target), clock.phases, job, refreshed, shutdown, lease)


def _wait_for_new_agent_address(state: dict, before: dict[str, list[str]], timeout: float,
                                refreshed_at: float) -> dict:
    """Poll the guest agent on the target until each refreshed NIC in ``before`` (interface name ->
    its addresses on the source) holds an IPv4 address it did not hold before: the DHCP client's
    answer to the link-refresh. Returns the first NIC's new address and when it was seen (to
    within a poll)."""
    nics = [status.DomainNic(**n) for n in state["nics"]]
    deadline = time.monotonic() + timeout
    now: dict[str, list[str]] = {}
    while True:
        agent = guest_agent_interfaces(state)
        now = agent_addresses(nics, agent) if agent is not None else now
        fresh = {name: [ip for ip in now.get(name, []) if ":" not in ip and ip not in old]
                 for name, old in before.items()}
        if all(fresh.values()):
            seen_ms = round((time.time() - refreshed_at) * 1000)
            first = next(iter(before))
            guest_name = next((a.name for a in agent or [] for n in nics
                               if n.name == first and a.mac.lower() == n.mac.lower()), first)
            return {"iface": guest_name, "ip": fresh[first][0], "interface": first, "source": "guest-agent",
                    "addresses": {name: now.get(name, []) for name in before},
                    "link_refresh_to_address_ms": seen_ms}
        if time.monotonic() > deadline:
            held = "; ".join(f"{name}: {' '.join(now.get(name, [])) or 'no address'}" for name in before)
            had = "; ".join(f"{name}: {' '.join(ips)}" for name, ips in before.items())
            console = Path(state["console"])
            tail = console.read_text(errors="replace").splitlines()[-15:] if console.exists() else []
            raise UpError(f"the guest agent shows no new address within {timeout:g} s after link-refresh"
                          f" (now {held}; before the migration {had})",
                          details="--- console ---\n" + "\n".join(tail))
        time.sleep(AGENT_POLL_SECONDS / 2)


def _refresh_through_libvirt(target_lv, domain_name: str, mac: str, alias: str) -> str:
    """KubeVirt's link-refresh of a domain ``<interface>``: virDomainUpdateDeviceFlags LIVE|CONFIG
    with ``<link state="down"/>``, 100 ms, then up. libvirt (11.3 here) refuses any live change
    of a ``vhostuser`` interface, link state included ("unable to change config on 'vhostuser'
    network type"): KubeVirt's finalize would fail and be retried. Here the link is flipped by the
    QMP ``set_link`` on the device's alias that libvirt sends for a link state change, and the
    result says so."""
    import libvirt

    flags = _live_and_config()
    try:
        target_lv.set_link_state(domain_name, mac, False, flags)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_UNSUPPORTED or "vhostuser" not in str(exc):
            raise
        target_lv.set_qemu_link(domain_name, alias, False)
        time.sleep(LINK_REFRESH_PAUSE)
        target_lv.set_qemu_link(domain_name, alias, True)
        return f"QMP set_link (libvirt refused virDomainUpdateDeviceFlags: {exc})"
    time.sleep(LINK_REFRESH_PAUSE)
    target_lv.set_link_state(domain_name, mac, True, flags)
    return "virDomainUpdateDeviceFlags LIVE|CONFIG"


def _migratable_flag() -> int:
    import libvirt

    return libvirt.VIR_DOMAIN_XML_MIGRATABLE


def _live_and_config() -> int:
    import libvirt

    return libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG


def _mac_of_alias(xml: str, alias: str) -> str | None:
    root = etree.fromstring(xml.encode(), etree.XMLParser(resolve_entities=False, no_network=True))
    for iface in root.findall("devices/interface"):
        alias_el, mac = iface.find("alias"), iface.find("mac")
        if alias_el is not None and alias_el.get("name") == alias and mac is not None:
            return mac.get("address")
    return None


def _shutdown_source_sidecars(source: sandbox.Pod, grace: float = 3.0) -> dict[str, str]:
    """Shutdown to the source's v1alpha3 sidecars (errors are logged and ignored, as KubeVirt does);
    then whether each sidecar process ended by itself. One that did not would keep KubeVirt's
    source pod from completing; here the pod is torn down regardless."""
    from netbind.launcher.hooks import HookClientError, HookManager

    sidecars = sidecarmod.recorded(source)
    if not sidecars:
        return {}
    outcome: dict[str, str] = {}
    manager = HookManager(source.names.hooks_dir, poll_period=0.02)
    try:
        manager.collect(len(sidecars), timeout=5)
        manager.shutdown()
    except HookClientError as exc:
        outcome["error"] = f"Shutdown: {exc}"
    finally:
        manager.close()
    deadline = time.monotonic() + grace
    pending = {name: (pid, start) for name, pid, start in sidecars}
    while pending and time.monotonic() < deadline:
        for name, (pid, start) in list(pending.items()):
            if not procs.alive(pid, start):
                outcome[name] = "exited after Shutdown"
                del pending[name]
        time.sleep(0.02)
    for name in pending:
        outcome[name] = "still running (no v1alpha3 Shutdown): KubeVirt's source pod would not complete"
    return outcome


def _boots(reports: list[guestmod.Report]) -> int:
    return sum(r.word == "BOOT" for r in reports)


# what a guest kernel prints when it dies (panic=-1 reboots right after)
_DEATH_MARKS = ("Kernel panic", "Attempted to kill init", "BUG:", "Oops", "general protection fault",
                "segfault at")


def _death_excerpt(lines: list[str], limit: int = 30) -> str:
    """The guest kernel's last words before its reboot: from the first death mark up to the trace's end."""
    start = next((i for i, line in enumerate(lines) if any(m in line for m in _DEATH_MARKS)), None)
    if start is None:
        return "\n".join(lines[-15:])
    return "\n".join(lines[start:start + limit])


def _wait_for_new_lease(console: Path, timeout: float, boots_before: int, reports_before: int = 0) -> dict:
    """The first DHCP lease after the last carrier-up the guest reported (the link-refresh). A BOOT
    report past the ``boots_before`` the console held at the hand-over means the guest died and
    rebooted: said at once, with what its kernel printed, instead of waiting for a lease that
    belongs to another boot."""
    deadline = time.monotonic() + timeout
    while True:
        text = console.read_text(errors="replace")
        # complete lines only: QEMU may be halfway through writing the LEASE line
        reports = guestmod.parse_reports(text)
        if _boots(reports) > boots_before:
            lines = text.splitlines()
            last_boot = max(i for i, line in enumerate(lines) if "NB: BOOT" in line)
            previous = max((i for i, line in enumerate(lines[:last_boot]) if "NB: BOOT" in line), default=0)
            raise UpError("the guest rebooted after the migration (its kernel died; panic=-1 restarts it),"
                          " so it took no lease after link-refresh",
                          details="--- console, the guest's last words ---\n"
                          + _death_excerpt(lines[previous:last_boot]))
        # only what the guest said after the hand-over: a guest that reports carrier at boot (the
        # cloud guest) has an older LINK up and lease in the console it brought along
        ups = [i for i, r in enumerate(reports) if i >= reports_before and r.word == "LINK"
               and r.fields.get("state") == "up"]
        if ups:
            up = reports[ups[-1]]
            lease = next((r for r in reports[ups[-1] + 1:] if r.word == "LEASE"), None)
            if lease is not None:
                delta = float(lease.fields.get("uptime", "nan")) - float(up.fields.get("uptime", "nan"))
                return {"iface": lease.fields.get("iface"), "ip": lease.fields.get("ip"),
                        "router": lease.fields.get("router"), "link_up_to_lease_ms": round(delta * 1000)}
        if time.monotonic() > deadline:
            raise UpError(f"the guest took no new lease within {timeout:g} s after link-refresh",
                          details="--- console ---\n" + "\n".join(text.splitlines()[-15:]))
        time.sleep(0.01)


__all__ = ["MigrateOptions", "MigrateResult", "MigrationError", "migrate"]
