"""``make demo``: bring up examples/passt/ for real, prove the network, print the status, tear down.

Run as root: ``python -m netbind.node.demo [DIR]``. The guest gets the pod's address from passt's
DHCP; then one TCP exchange each way between the guest and a server in the node namespace (the
outside world): the guest connects out through passt, and the node connects in to the pod address
on a port the VM lists in ``ports``, which passt forwards to the guest's echo server.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console

from netbind.api.loading import load_manifests
from netbind.node import guest, multus, netcheck, runtime, sandbox

SERVER_PORT = 9000
ECHO_PORT = 8080


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = argv[0] if argv else "examples/passt/"
    out = Console(highlight=False, soft_wrap=True)
    manifests = load_manifests([folder])
    name = manifests.vmi.metadata.name
    out.rule(f"netbind up -f {folder} --wait")
    node = sandbox.ensure_node()
    with sandbox.node_lock():
        multus.ensure_world(node.journal, node.netns)
    server = netcheck.start_server(node.netns, multus.WORLD_ADDRESS, SERVER_PORT,
                                   node.names.directory / "demo-server.log")
    ok = False
    try:
        # the tiny guest (seconds): its probe and echo arguments are the demo's two TCP exchanges;
        # the default map would boot the cloud guest (`netbind up --guest cloud` shows that one)
        options = runtime.UpOptions(wait=True, guest="tiny", guest_args=(f"nb.echo={ECHO_PORT}",
                                                            f"nb.probe={multus.WORLD_ADDRESS}:{SERVER_PORT}"))
        try:
            result = runtime.up(manifests, options, _Progress(out))
        except runtime.UpError as exc:
            out.print(f"[red]up failed[/] ({exc.phase}): {exc}")
            return 1
        pod = result.pod
        for line in result.substitutions:
            out.print(f"  substituted: {line}", markup=False)
        console_log = Path(runtime.load_state(pod)["console"])
        reports = guest.parse_reports(console_log.read_text())
        lease = next(r for r in reports if r.word == "LEASE")
        pod_ip = result.vmi["status"]["interfaces"][0].get("ipAddress")
        out.rule("the guest's lease (passt's DHCP hands it the pod's address)")
        out.print(f"guest {lease.fields['iface']} got {lease.fields['ip']}/{lease.fields['mask']} router"
                  f" {lease.fields['router']} mtu {lease.fields['mtu']}; the pod's eth0 is {pod_ip}")
        out.rule("TCP guest -> node (through passt)")
        deadline = time.monotonic() + 20
        probe = None
        while probe is None and time.monotonic() < deadline:
            probe = next((r for r in guest.parse_reports(console_log.read_text()) if r.word == "PROBE"), None)
            time.sleep(0.05)
        seen = server.seen()
        if probe is None:
            out.print("guest: no PROBE report; console:\n" + "\n".join(console_log.read_text().splitlines()[-8:]))
        else:
            out.print(f"guest: connected to {probe.fields['target']}: ok={probe.fields['ok']}, reply {probe.fields['reply']!r}")
        out.print(f"server {multus.WORLD_ADDRESS}:{SERVER_PORT} in {node.netns}: {seen}")
        out.rule(f"TCP node -> guest (pod {pod_ip}:{ECHO_PORT}, forwarded by passt from the VM's ports)")
        reply = netcheck.exchange(node.netns, pod_ip, ECHO_PORT, "hello-from-the-node")
        out.print(f"node sent 'hello-from-the-node', the guest's echo answered {reply!r}")
        out.rule(f"netbind status {name}")
        vmi = runtime.current_vmi(pod)
        for iface in vmi["status"]["interfaces"]:
            out.print(f"interface {iface['name']}: {iface.get('ipAddress')} mac {iface['mac']} guest"
                      f" {iface.get('interfaceName')} pod {iface.get('podInterfaceName')} ({iface['infoSource']})")
        out.print("conditions: " + ", ".join(f"{c['type']}={c['status']}" for c in vmi["status"]["conditions"]))
        out.print(f"phase: {vmi['status']['phase']}")
        ok = bool(probe and probe.fields.get("ok") == "yes" and seen and pod_ip and seen[0].startswith(f"from {pod_ip}")
                  and reply == "hello-from-the-node")
    finally:
        server.stop()
        out.rule(f"netbind down {name}")
        removed = sandbox.down(name)
        sandbox.down_node_if_idle()
        out.print(f"removed {', '.join(removed) or 'nothing'}")
    out.print("[green]demo OK[/]" if ok else "[red]demo FAILED[/]")
    return 0 if ok else 1


class _Progress:
    def __init__(self, out: Console) -> None:
        self.out = out

    def phase(self, name: str, seconds: float, detail: str) -> None:
        self.out.print(f"[green]✓[/] {name:<18} [cyan]{seconds * 1000:8.1f} ms[/]  {detail}")

    def note(self, kind: str, text: str) -> None:
        self.out.print(f"  {kind}: {text}", markup=False)


if __name__ == "__main__":
    raise SystemExit(main())
