"""``netbind up|status|console|logs``: run a VMI on this machine and look at it."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from netbind._cli.common import (BadInput, handles_bad_input, interrupted, kubevirt_version, load_manifests,
                                 manifest_files, terminates_like_ctrl_c)


class _RichProgress:
    def __init__(self, console) -> None:
        self.console = console

    def phase(self, name: str, seconds: float, detail: str) -> None:
        self.console.print(f"[green]✓[/] {name:<18} [cyan]{seconds * 1000:8.1f} ms[/]  {detail}", highlight=False)

    def note(self, kind: str, text: str) -> None:
        self.console.print(f"  {kind}: {text}", highlight=False, markup=False)


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


@click.command()
@manifest_files
@kubevirt_version
@click.option("--wait", is_flag=True, help="Return once the guest reported its addresses (or fail).")
@click.option("--timeout", type=float, default=None,
              help="Seconds --wait waits for the guest [default: 90; 300 for a guest booted from its disk].")
@click.option("-o", "--output", default="text", type=click.Choice(["text", "json", "quiet"]),
              help="text: phases as they finish; json: the result (VMI, phases, substitutions);"
                   " quiet: nothing, or one line on failure.")
@click.option("--images", "images_file", type=click.Path(dir_okay=False),
              help="Image map YAML (sidecar images, containerDisks, CNI types); default $NETBIND_IMAGES.")
@click.option("--pod-network", "pod_network", type=click.Path(dir_okay=False),
              help="The node's CNI network list (JSON) for the pod network; default bridge + host-local.")
@click.option("--guest", "guest", type=click.Choice(["tiny", "cloud"]), default=None,
              help="What boots for every containerDisk: tiny (busybox initramfs booted directly, seconds) or cloud"
                   " (the reference cloud guest from its disk: cloud-init + systemd-networkd, about a minute under"
                   " TCG; built once). Default $NETBIND_GUEST, else the image map (the user guide's Fedora image:"
                   " cloud; others: tiny), where a containerDisk image in the local podman store boots its own"
                   " /disk/ file unless your --images file maps it.")
@click.option("--guest-arg", "guest_args", multiple=True,
              help="Extra kernel command line word for the tiny guest (e.g. nb.echo=8080); repeatable.")
@click.option("--passt", "passt", type=click.Choice(["auto", "native", "substitute"]), default=None,
              help="passt binding path: native (libvirt >= 11 runs the sidecar's vhost-user + passt backend;"
                   " provisions the stack if missing), substitute (recipe R6a: host passt + -netdev stream), auto"
                   " (native when available, else substitute). Default $NETBIND_PASST, else auto.")
@click.option("--sidecars", "sidecars", type=click.Choice(["auto", "container", "process"]), default=None,
              help="How hook sidecars run: container (their image from the local podman store, or the image the"
                   " image map names), process (the image map's host command), auto (a container when the image is"
                   " there, else a process). Default $NETBIND_SIDECARS, else auto.")
@handles_bad_input
def up(files, version, wait, timeout, output, images_file, pod_network, guest, guest_args, passt, sidecars):
    """Run the VM/VMI of the given manifests on this machine: validate, render the launcher pod,
    wire it with CNI, start its sidecars and a private libvirtd, run the hooks, boot the guest."""
    from netbind.api.versions import profile
    from netbind.node.images import ImageMap, ImageMapError
    from netbind.node.runtime import UpError, UpOptions
    from netbind.node import runtime
    from netbind.node.multus import PodNetworkError, load_pod_network

    manifests = load_manifests(files)
    try:
        images = ImageMap.load(images_file)
        network = load_pod_network(pod_network) if pod_network else None
    except (ImageMapError, PodNetworkError) as exc:
        raise BadInput(str(exc)) from None
    options = UpOptions(images=images, pod_network=network, guest_args=guest_args, wait=wait,
                        wait_timeout=timeout, profile=profile(version), passt=passt, sidecars=sidecars,
                        guest=guest)
    # rich (~50 ms to import) only where it prints: json and quiet output do without it
    console = _console() if output == "text" else None
    progress = _RichProgress(console) if console is not None else None
    try:
        with terminates_like_ctrl_c():
            result = runtime.up(manifests, options, progress)
    except KeyboardInterrupt as exc:
        interrupted(exc, "up stopped; what it had created was torn down (netbind down --all removes any rest)")
    except UpError as exc:
        if output == "json":
            click.echo(json.dumps({"error": exc.message, "phase": exc.phase, "details": exc.details,
                                   "vmi": exc.vmi}, indent=2))
        elif output == "quiet":   # nothing on success, but a failure still says why, in one line
            click.echo(f"error: {exc.phase or 'up'}: {exc.message}", err=True)
        else:
            err = _console(stderr=True)
            err.print(f"[red]✗ {exc.phase or 'up'}[/]: {exc.message}", highlight=False)
            if exc.vmi:
                for cond in exc.vmi.get("status", {}).get("conditions", []):
                    err.print(f"  VMI condition {cond['type']}={cond['status']} reason {cond.get('reason')}:"
                              f" {cond.get('message')}", highlight=False)
            if exc.details:
                err.print(exc.details, highlight=False, markup=False)
            err.print("nothing was left behind (the pod sandbox was torn down)", highlight=False)
        sys.exit(exc.exit_code)
    if output == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    if output == "quiet":
        return
    vmi = result.vmi
    total = sum(p["seconds"] for p in result.phases)
    console.print(f"[bold]{vmi['metadata']['namespace']}/{vmi['metadata']['name']}[/] is "
                  f"{vmi['status']['phase']} in pod {result.pod.netns} ({total:.2f} s)", highlight=False)
    console.print("sidecars:", highlight=False)
    for line in result.sidecars or ["(none)"]:
        console.print(f"  - {line}", highlight=False, markup=False)
    console.print("resource limits:", highlight=False)
    for line in result.limits or ["(none asked)"]:
        console.print(f"  - {line}", highlight=False, markup=False)
    console.print("substituted on this host:", highlight=False)
    for line in result.substitutions:
        console.print(f"  - {line}", highlight=False, markup=False)
    for note in result.host.get("notes", []):
        console.print(f"  - host: {note}", highlight=False, markup=False)
    _print_interfaces(console, vmi)
    console.print(f"next: netbind status {vmi['metadata']['name']} | netbind console {vmi['metadata']['name']}"
                  f" | netbind logs {vmi['metadata']['name']} | netbind down {vmi['metadata']['name']}",
                  highlight=False)


def _print_interfaces(console, vmi: dict) -> None:
    for iface in vmi["status"].get("interfaces", []):
        ips = " ".join(iface.get("ipAddresses") or [iface.get("ipAddress", "-")])
        console.print(f"  interface {iface.get('name', '(guest only)')}: mac {iface.get('mac')} ip {ips}"
                      f" guest {iface.get('interfaceName', '-')} pod {iface.get('podInterfaceName', '-')}"
                      f" ({iface.get('infoSource')})", highlight=False)
    for cond in vmi["status"].get("conditions", []):
        console.print(f"  condition {cond['type']}={cond['status']}"
                      + (f" ({cond.get('reason')}: {cond.get('message')})" if cond.get("reason") else ""),
                      highlight=False)


def _pods(name: str | None):
    from netbind.node import runtime

    pods = runtime.find_running(name)
    if name and not pods:
        raise click.ClickException(f"no VMI {name!r} runs here (netbind status lists them)")
    return pods


def _draw_running(pod, vmi: dict, path: str) -> None:
    from pathlib import Path

    from netbind import _iproute, wiring
    from netbind.node import runtime

    state = runtime.load_state(pod) or {}
    picture = wiring.from_pod_links(vmi, _iproute.links(netns=pod.netns), list(state.get("sidecars", [])))
    try:
        wiring.render(wiring.to_dot(picture), Path(path))
    except wiring.DiagramError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"wiring drawn to {path}", err=True)


@click.command()
@click.argument("name", required=False)
@click.option("-o", "--output", default="text", type=click.Choice(["text", "json"]))
@click.option("--diagram", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also draw the VM's pod wiring from its real links (FILE.svg, .png, .pdf or .dot); needs NAME.")
def status(name, output, diagram):
    """The VMI(s) running here; -o json prints the VMI object as `kubectl get vmi -o json` does."""
    from netbind.node import runtime

    if diagram and not name:
        raise click.UsageError("--diagram draws one VM: give its NAME")
    pods = _pods(name)
    vmis = [runtime.current_vmi(pod) for pod in pods]
    if diagram:
        _draw_running(pods[0], vmis[0], diagram)
    if output == "json":
        doc = vmis[0] if name and len(vmis) == 1 else {"apiVersion": "v1", "kind": "List", "items": vmis,
                                                       "metadata": {"resourceVersion": ""}}
        click.echo(json.dumps(doc, indent=2))
        return
    if not vmis:
        click.echo("no VMIs run here")
        return
    console = _console()
    console.print(f"{'NAMESPACE':<12} {'NAME':<28} {'PHASE':<10} {'IP':<16} {'READY':<6} POD", highlight=False)
    for pod, vmi in zip(pods, vmis):
        st = vmi["status"]
        ip = next((i.get("ipAddress") for i in st.get("interfaces", []) if i.get("ipAddress")), "")
        ready = next((c["status"] for c in st.get("conditions", []) if c["type"] == "Ready"), "False")
        console.print(f"{vmi['metadata']['namespace']:<12} {vmi['metadata']['name']:<28} {st['phase']:<10}"
                      f" {ip or '-':<16} {ready:<6} {vmi['metadata']['annotations']['netbind.io/pod-netns']}",
                      highlight=False)
        if name:
            _print_interfaces(console, vmi)
            state = runtime.load_state(pod) or {}
            for line in [*state.get("sidecars", []), *state.get("limits", [])]:
                console.print(f"  {line}", highlight=False, markup=False)


@click.command()
@click.argument("name")
def console(name):
    """The guest's serial console (what it printed so far)."""
    from netbind.node import runtime

    for pod in _pods(name):
        state = runtime.load_state(pod)
        path = Path(state["console"]) if state else pod.names.directory / "console.log"
        click.echo(path.read_text(errors="replace") if path.exists() else "(no console output yet)", nl=False)


@click.command()
@click.argument("name")
@click.option("-c", "--container", default="compute", show_default=True,
              help="compute (libvirtd and QEMU), hook-sidecar-N, or passt-<interface>.")
def logs(name, container):
    """Logs of a container of the VMI's launcher pod."""
    from netbind.node import containers

    for pod in _pods(name):
        logs_dir = pod.names.logs_dir
        if container == "compute":
            files = [logs_dir / "libvirtd.log", *sorted((pod.names.directory / "libvirt" / "log" / "qemu").glob("*.log"))]
        else:
            files = [logs_dir / f"{container}.log"]
        files = [f for f in files if f.exists()]
        if not files:
            known = ["compute", *sorted(p.stem for p in logs_dir.glob("*.log") if p.stem != "libvirtd")]
            raise click.ClickException(f"no logs for container {container!r}; choose one of: {', '.join(known)}")
        as_container = {e.attrs.get("container") for e in pod.journal.find("container")}
        for path in files:
            if len(files) > 1:
                click.echo(f"==> {path} <==")
            text = path.read_text(errors="replace")
            click.echo(containers.cri_log_text(text) if path.stem in as_container else text, nl=False)
