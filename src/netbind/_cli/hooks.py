"""``netbind hooks``: talk to hook sidecars the way virt-launcher does."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from netbind.launcher.hooks import (
    DEFAULT_COLLECT_TIMEOUT,
    CollectTimeoutError,
    HookClientError,
    HookManager,
    RPCError,
    discover_sockets,
    query_info,
)

EXIT_HOOK_FAILED = 1
EXIT_BAD_INPUT = 2


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _sockets_dir(path: str) -> Path:
    directory = Path(path)
    if not directory.is_dir():
        _fail(f"--sockets-dir {path}: not a directory (point it at the hook sockets directory, "
              "e.g. /var/run/kubevirt-hooks)", EXIT_BAD_INPUT)
    return directory


def _read(path: str, option: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        _fail(f"{option} {path}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    raise AssertionError  # unreachable


@click.group()
def hooks() -> None:
    """Call KubeVirt hook sidecars (Info, OnDefineDomain) as virt-launcher would."""


@hooks.command()
@click.option("--sockets-dir", required=True, metavar="DIR",
              help="Directory with the sidecars' sockets (and per-container subdirectories).")
@click.option("--domain", "domain_file", default=None, metavar="FILE",
              help="Domain XML to send (default with -f: the domain `netbind render domain` draws).")
@click.option("--vmi", "vmi_file", default=None, metavar="FILE", help="VMI as JSON (or use -f).")
@click.option("-f", "--filename", "files", multiple=True, type=click.Path(),
              help="Manifests (KubeVirt CR, NADs, VM or VMI) to take the VMI from, as `render` does.")
@click.option("--kubevirt-version", "version", default="latest", show_default=True,
              type=click.Choice(["latest", "1.4"]), help="KubeVirt behaviour, with -f.")
@click.option("-n", "--expected", type=click.IntRange(min=0), default=None,
              help="Number of sidecar sockets to wait for (default: the socket files present now).")
@click.option("--timeout", type=click.FloatRange(min=0), default=DEFAULT_COLLECT_TIMEOUT, show_default=True,
              help="Seconds to wait for all sockets (virt-launcher's --qemu-timeout).")
@click.option("-o", "--output", type=click.Choice(["xml", "json"]), default="xml", show_default=True)
def call(sockets_dir: str, domain_file: str | None, vmi_file: str | None, files: tuple[str, ...], version: str,
         expected: int | None, timeout: float, output: str) -> None:
    """Collect the sidecars and run the OnDefineDomain chain; prints the resulting domain XML."""
    directory = _sockets_dir(sockets_dir)
    if bool(vmi_file) == bool(files):
        _fail("give the VMI either as --vmi FILE (JSON) or as manifests with -f DIR, not both or neither",
              EXIT_BAD_INPUT)
    if files:
        vmi_raw, rendered = _from_manifests(files, version, want_domain=domain_file is None)
        domain_xml = _read(domain_file, "--domain") if domain_file else rendered
    else:
        if domain_file is None:
            _fail("--domain FILE is needed with --vmi (or give -f DIR to render the domain)", EXIT_BAD_INPUT)
        domain_xml = _read(domain_file, "--domain")
        vmi_raw = _read(vmi_file, "--vmi")
        try:
            json.loads(vmi_raw)
        except ValueError as exc:
            _fail(f"--vmi {vmi_file}: not valid JSON: {exc}", EXIT_BAD_INPUT)
    if expected is None:
        expected = len({p.name for p in discover_sockets(directory)})
    trace: list[dict] = []
    with HookManager(directory) as manager:
        try:
            manager.collect(expected, timeout=timeout)
            result = manager.on_define_domain(domain_xml, vmi_raw, trace=trace)
        except CollectTimeoutError as exc:
            _fail(f"{exc}\n{exc.explain()}", EXIT_HOOK_FAILED)
        except HookClientError as exc:
            _fail(str(exc), EXIT_HOOK_FAILED)
        sidecars = [s.as_dict() for s in manager.sidecars]
    if output == "xml":
        sys.stdout.buffer.write(result if result.endswith(b"\n") else result + b"\n")
    else:
        click.echo(json.dumps({"sidecars": sidecars, "calls": trace,
                               "domainXML": result.decode("utf-8", "replace")}, indent=2))


def _from_manifests(files: tuple[str, ...], version: str, want_domain: bool) -> tuple[bytes, bytes]:
    """The VMI JSON virt-launcher sends (as stored, with the interface status virt-controller fills) and the
    domain virt-launcher would hand to the first sidecar, from manifests; bad input exits 2."""
    from netbind.api.loading import ManifestError
    from netbind.api.versions import profile
    from netbind.launcher.domain import DomainAttachmentError, build_domain, derive_pod_links
    from netbind.review import configuration

    from .common import load_manifests

    try:
        manifests = load_manifests(files)
        prof = profile(version)
        vmi = manifests.vmi
    except ManifestError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    doc = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance"}
    doc.update({k: v for k, v in vmi.to_json().items() if k not in ("apiVersion", "kind", "status")})
    # the pod interface names virt-controller reports once the pod runs (sidecars look them up)
    from netbind import naming
    from netbind.node.status import INFO_MULTUS

    pod_interfaces = {n.name: naming.hashed_pod_interface_name(n) for n in vmi.spec.network_list}
    doc["status"] = {"phase": "Scheduled", "interfaces": [
        {"name": i.name, "podInterfaceName": pod_interfaces[i.name], "infoSource": INFO_MULTUS}
        for i in vmi.spec.interfaces if i.name in pod_interfaces]}
    domain = b""
    if want_domain:
        config = configuration(manifests)
        try:
            domain = build_domain(vmi, config, derive_pod_links(vmi, config, profile=prof), profile=prof).domain_xml
        except DomainAttachmentError as exc:
            _fail(f"virt-launcher would fail: {exc}", EXIT_HOOK_FAILED)
        domain = domain.encode() if isinstance(domain, str) else domain
    return json.dumps(doc).encode(), domain


@hooks.command()
@click.option("--sockets-dir", required=True, metavar="DIR",
              help="Directory with the sidecars' sockets (and per-container subdirectories).")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def info(sockets_dir: str, output: str) -> None:
    """Ask every socket found for its Info (name, versions, hook points)."""
    directory = _sockets_dir(sockets_dir)
    rows = []
    seen: set[str] = set()
    for path in discover_sockets(directory):
        row: dict = {"socket": str(path)}
        if path.name in seen:
            row["warning"] = "duplicate socket file name: virt-launcher counts it once and waits forever"
        seen.add(path.name)
        try:
            row.update(query_info(path))
            row["hookPoints"] = [{"name": n, "priority": p} for n, p in row["hookPoints"]]
        except RPCError as exc:
            row["error"] = str(exc)
        rows.append(row)
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table("socket", "name", "versions", "hook points", "problem")
        for row in rows:
            points = ", ".join(p["name"] for p in row.get("hookPoints", []))
            table.add_row(row["socket"], row.get("name", ""), ", ".join(row.get("versions", [])), points,
                          row.get("error", row.get("warning", "")))
        Console().print(table)
    if any("error" in row for row in rows):
        sys.exit(EXIT_HOOK_FAILED)
