"""`netbind validate`, `netbind render pod|domain`, `netbind explain`: KubeVirt's view of manifests."""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from .common import (EXIT_DENIED, EXIT_OK, BadInput, dump, handles_bad_input,
                     kubevirt_version, load_manifests, manifest_files)


def escape(value: Any) -> str:
    """``value`` as text that rich's markup prints as it is: a message's own "[name]" stays."""
    from rich.markup import escape as escape_markup

    return escape_markup(str(value))


def _load(files: tuple[str, ...], version: str):
    from netbind.api.versions import profile

    return load_manifests(files), profile(version)


@click.command()
@manifest_files
@kubevirt_version
@click.option("-o", "--output", type=click.Choice(["text", "json", "admission-review"]), default="text",
              show_default=True)
@handles_bad_input
def validate(files: tuple[str, ...], version: str, output: str) -> None:
    """Run KubeVirt's admission rules for the VM/VMI. Exit 0 allowed, 1 denied, 2 bad input."""
    from netbind import review

    manifests, prof = _load(files, version)
    if output == "admission-review":
        answer = review.admission_review(manifests, prof)
        click.echo(json.dumps(answer, indent=2))
        sys.exit(EXIT_OK if answer["response"]["allowed"] else EXIT_DENIED)
    result = review.validate(manifests, prof)
    if output == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        _print_validation(result, manifests)
    sys.exit(EXIT_OK if result.allowed else EXIT_DENIED)


def _print_plugin_review(console: Any, review: Any) -> None:
    if review.allowed:
        console.print(f"[green]allowed[/green]: KubeVirt admits Plugin {escape(review.plugin)}")
    else:
        console.print(f"[red]denied[/red]: KubeVirt rejects Plugin {escape(review.plugin)}"
                      f" ({len(review.causes)} cause(s))")
        console.print(f"  [dim]the API server answers: {escape(review.message)}[/dim]")
    for cause in review.causes:
        where = cause.field or ", ".join(cause.where) or "spec"
        kind = f", {cause.type}" if cause.type else ""
        console.print(f"  {escape(where)}: {escape(cause.message)} [dim]({escape(f'{cause.source}{kind}')})[/dim]")
    for warning in review.warnings:
        console.print(f"[yellow]warning[/yellow]: {escape(warning.api_server_text)}")


def _console() -> Any:
    from rich.console import Console

    # piped output (files, CI logs, tests) is not wrapped at 80 columns
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _print_validation(result: Any, manifests: Any) -> None:
    console = _console()
    for plugin in result.plugins:
        _print_plugin_review(console, plugin)
    if not result.has_workload:
        return
    name = manifests.vmi.metadata.name
    vmi_allowed = not result.causes
    if vmi_allowed:
        console.print(f"[green]allowed[/green]: KubeVirt admits {escape(name)}")
    else:
        console.print(f"[red]denied[/red]: KubeVirt rejects {escape(name)} ({len(result.causes)} cause(s))")
    for cause in result.causes:
        console.print(f"  {escape(cause.field)}: {escape(cause.message)} [dim]({escape(cause.type)})[/dim]")
    for finding in result.findings:
        console.print(f"[yellow]later[/yellow]: {escape(finding.component)} would refuse it"
                      f" ({escape(finding.reason)}): {escape(finding.message)}")
    for note in result.notes:
        console.print(f"[yellow]netbind note[/yellow]: {escape(note)}")


@click.group()
def render() -> None:
    """Render what KubeVirt creates: the virt-launcher pod, or the domain XML."""


@render.command("pod")
@manifest_files
@kubevirt_version
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@handles_bad_input
def render_pod(files: tuple[str, ...], version: str, output: str) -> None:
    """The virt-launcher Pod manifest virt-controller creates for the VM/VMI."""
    manifests, prof = _load(files, version)
    from netbind.controller import RenderError, render_launcher_pod
    from netbind.review import configuration

    try:
        pod = render_launcher_pod(manifests.vmi, configuration(manifests), nads=manifests.nads, profile=prof)
    except RenderError as exc:
        click.echo(f"virt-controller would fail (FailedCreate): {exc}", err=True)
        _echo_registry_notes(manifests, prof)
        sys.exit(EXIT_DENIED)
    # KubeVirt's Go object carries no type meta; a manifest for people and kubectl does
    dump({"apiVersion": "v1", "kind": "Pod", **pod}, output)


def _echo_registry_notes(manifests: Any, prof: Any) -> None:
    from netbind.review import registry_notes

    for note in registry_notes(manifests, prof):
        click.echo(f"netbind note: {note}", err=True)


def _read_pod_links(path: str) -> list[Any]:
    from netbind.api.loading import ManifestError, read_data_file
    from netbind.launcher.domain import PodLink

    try:
        data = read_data_file(path)
    except ManifestError as exc:
        raise BadInput(f"--pod-links {exc}") from None
    if not isinstance(data, list):
        raise BadInput(f"--pod-links {path}: expected a list of {{name, mac, mtu}}, got {type(data).__name__}")
    links = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise BadInput(f"--pod-links {path}: item {i}: needs a non-empty 'name'")
        mtu = item.get("mtu", 1500)
        if not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 65535:
            raise BadInput(f"--pod-links {path}: item {i} ({item['name']}): 'mtu' must be an integer 68..65535")
        mac = item.get("mac", "")
        if not isinstance(mac, str):
            raise BadInput(f"--pod-links {path}: item {i} ({item['name']}): 'mac' must be a string like 02:00:00:00:00:01")
        links.append(PodLink(name=item["name"], mac=mac, mtu=mtu))
    return links


@render.command("domain")
@manifest_files
@kubevirt_version
@click.option("--pod-links", type=click.Path(), default=None,
              help="JSON/YAML list of {name, mac, mtu}: the links in the launcher pod. "
                   "Default: the links a CNI would create (hashed names, derived MAC, MTU 1500).")
@click.option("-o", "--output", type=click.Choice(["xml", "json"]), default="xml", show_default=True)
@handles_bad_input
def render_domain(files: tuple[str, ...], version: str, pod_links: str | None, output: str) -> None:
    """The domain XML virt-launcher hands to the first sidecar (interfaces filled from pod links)."""
    manifests, prof = _load(files, version)
    from netbind.launcher.domain import DomainAttachmentError, build_domain, derive_pod_links
    from netbind.review import configuration, controller_findings

    # no launcher pod, no domain: virt-controller stops first (e.g. an unregistered binding name)
    for finding in controller_findings(manifests, prof):
        click.echo(f"virt-controller would fail ({finding.reason}): {finding.message}", err=True)
        _echo_registry_notes(manifests, prof)
        sys.exit(EXIT_DENIED)
    config = configuration(manifests)
    vmi = manifests.vmi
    links = _read_pod_links(pod_links) if pod_links else derive_pod_links(vmi, config, profile=prof)
    from netbind.launcher.disks import DiskError

    try:
        result = build_domain(vmi, config, links, profile=prof)
    except DiskError as exc:
        raise BadInput(str(exc)) from None
    except DomainAttachmentError as exc:
        click.echo(f"virt-launcher would fail: {exc}", err=True)
        sys.exit(EXIT_DENIED)
    if output == "json":
        click.echo(json.dumps({"interfaces": result.interfaces_xml, "domain": result.domain_xml}, indent=2))
    else:
        click.echo(result.domain_xml)


@click.command()
@manifest_files
@kubevirt_version
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--diagram", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also draw the launcher pod's wiring with Graphviz (FILE.svg, .png, .pdf or .dot).")
@handles_bad_input
def explain(files: tuple[str, ...], version: str, output: str, diagram: str | None) -> None:
    """For people: what each interface gets (CNI, sidecar, domain, overhead, migration, problems).

    Exit 0 when the VM would run, 1 when admission or virt-controller refuses it, 2 bad input."""
    from netbind import review

    manifests, prof = _load(files, version)
    data = review.explain(manifests, prof)
    if output == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        _print_explanation(data)
    if diagram:
        if "vmi" not in data:
            raise BadInput(f"--diagram {diagram}: the files hold no VM or VMI, so there is no launcher pod to draw")
        _draw(data, manifests, prof, diagram)
    sys.exit(explain_exit_code(data))


def _draw(data: dict[str, Any], manifests: Any, prof: Any, path: str) -> None:
    from pathlib import Path

    from netbind import wiring

    try:
        wiring.render(wiring.to_dot(wiring.from_explanation(data, manifests, prof)), Path(path))
    except wiring.DiagramError as exc:
        raise BadInput(str(exc)) from None
    click.echo(f"wiring drawn to {path}", err=True)


def explain_exit_code(data: dict[str, Any]) -> int:
    """1 when the VM would not run: admission denies it (or a Plugin), or virt-controller refuses it
    later (its problems); 0 otherwise. validate's code is admission's answer alone."""
    plugins = data.get("plugins", {}).get("reviews", [])
    refused = not data["allowed"] or bool(data.get("problems")) or any(not p["admitted"] for p in plugins)
    return EXIT_DENIED if refused else EXIT_OK


def _print_plugins(console: Any, plugins: dict[str, Any]) -> None:
    for item in plugins["reviews"]:
        verdict = "[green]admitted[/green]" if item["admitted"] else "[red]rejected by admission[/red]"
        console.print(f"\n[bold]Plugin {escape(item['name'])}[/bold]: {verdict} ({item['domainHooks']} domain hook(s), "
                      f"{item['nodeHooks']} node hook(s), {item['admissionReferences']} admission reference(s))")
        if not item["admitted"]:
            console.print(f"  {escape(item['message'])}")
        for warning in item["warnings"]:
            console.print(f"  [yellow]warning[/yellow]: {escape(warning)}")
        if "cel" in item:
            console.print(f"  [dim]note: {escape(item['cel'])}[/dim]")
    console.print("\n[bold]domain hooks, in virt-launcher's order[/bold]")
    if not plugins["domainHookOrder"]:
        console.print("  none")
    for position, hook in enumerate(plugins["domainHookOrder"], start=1):
        target = hook.get("socketPath") or f"CEL {hook.get('expression', '')!r} (not applied by netbind)"
        timeout = f", timeout {hook['timeoutSeconds']:g}s" if hook["kind"] == "sidecar" else ""
        when = f", if {' && '.join(hook['conditions'])} (CEL, unknown here)" if hook.get("conditions") else ""
        console.print(escape(f"  {position}. {hook['plugin']} hook {hook['index']}: {hook['kind']} {target}, "
                             f"failureStrategy {hook['failureStrategy']}{timeout}{when}"))
    for note in plugins["notes"]:
        console.print(f"[dim]note: {escape(note)}[/dim]")


def _print_explanation(data: dict[str, Any]) -> None:
    from rich.table import Table

    console = _console()
    if "vmi" not in data:  # Plugins only
        _print_plugins(console, data["plugins"])
        return
    verdict = "[green]admitted[/green]" if data["allowed"] else "[red]rejected by admission[/red]"
    console.print(f"[bold]{escape(data['vmi'])}[/bold] (KubeVirt {data['kubevirtVersion']}): {verdict}")
    for item in data["interfaces"]:
        table = Table(show_header=False, box=None, padding=(0, 1))
        table.add_column(style="dim")
        table.add_column()
        table.add_row("network", escape(item["network"]))
        unregistered = item["registered"] not in (None, True)
        binding = escape(item["binding"]) + (" [red](not registered)[/red]" if unregistered else "")
        table.add_row("binding", binding)
        if item.get("podInterface"):
            table.add_row("pod interface", escape(item["podInterface"]))
        for i, step in enumerate(item["cni"]):
            table.add_row("CNI" if i == 0 else "", escape(step))
        if "sidecar" in item:
            s = item["sidecar"]
            extra = ", mounts /etc/podinfo/network-info" if s["deviceInfo"] else ""
            table.add_row("sidecar", escape(f"{s['container']}: {s['image']}{extra}"))
        if "domain" in item:
            table.add_row("domain", escape(item["domain"]))
        if "migration" in item:
            table.add_row("migration", escape(item["migration"]))
        if item["state"] != "up":
            table.add_row("state", escape(item["state"]))
        for note in item.get("notes", []):
            table.add_row("note", escape(note))
        console.print(f"\n[bold]interface {escape(item['name'])}[/bold]")
        console.print(table)
    console.print()
    if data.get("multusNetworks"):
        console.print(escape(f"Multus annotation: {data['multusNetworks']}"))
    console.print(escape(f"binding sidecars: {data['sidecars']}"))
    for disk in data.get("disks", []):
        console.print(escape(f"disk {disk['name']}: {disk['device']} {disk['target']} <- {disk['source']}"))
    if "networkMemoryOverhead" in data:
        from netbind.api.quantity import Quantity

        total = Quantity.parse(data["memoryOverhead"]).value()  # a quantity: "2k" as well as "785286272"
        console.print(f"compute memory overhead: {total} bytes ({total / 2**20:.1f} MiB; "
                      f"network bindings: {escape(str(data['networkMemoryOverhead']))})")
    cond = data["liveMigratable"]
    if cond["status"] == "True":
        console.print("LiveMigratable: [green]True[/green]")
    else:
        console.print(f"LiveMigratable: [yellow]False[/yellow] ({escape(cond['reason'])}): {escape(cond['message'])}")
    for note in data.get("notes", []):
        console.print(f"[dim]note: {escape(note)}[/dim]")
    if "plugins" in data:
        _print_plugins(console, data["plugins"])
    if data["problems"]:
        console.print("\n[bold red]problems[/bold red]")
        for p in data["problems"]:
            where = p.get("field") or p.get("component")
            console.print(f"  {escape(where)}: {escape(p['message'])}")
