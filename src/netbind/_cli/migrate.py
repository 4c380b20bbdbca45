"""``netbind migrate``: live-migrate a local VMI to the other "node", as KubeVirt would."""
from __future__ import annotations

import json
import sys

import click

from netbind._cli.common import handles_bad_input, interrupted, terminates_like_ctrl_c
from netbind._cli.runtime import _RichProgress, _console, _print_interfaces


@click.command()
@click.argument("name")
@click.option("--wait", is_flag=True,
              help="Return once the guest has taken its new lease (or, says its guest agent, a new address)"
                   " on the target.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds --wait waits for the new lease.")
@click.option("-o", "--output", default="text", type=click.Choice(["text", "json", "quiet"]),
              help="text: phases as they finish; json: the result (VMI, phases, libvirt's job, link-refresh);"
                   " quiet: nothing, or one line on failure.")
@click.option("--images", "images_file", type=click.Path(dir_okay=False),
              help="The target node's image map (default: the one the VM was started with).")
@handles_bad_input
def migrate(name, wait, timeout, output, images_file):
    """Live-migrate VMI NAME to a second node on this machine: KubeVirt's migratability check, a
    target launcher pod wired by the other node's pod network with its own sidecars and libvirtd,
    a peer-to-peer live migration, link-refresh, Shutdown to the source's sidecars."""
    from netbind.node.images import ImageMap, ImageMapError
    from netbind.node.migrate import MigrateOptions, MigrationError
    from netbind.node import migrate as migration

    images = None
    if images_file:
        try:
            images = ImageMap.load(images_file)
        except ImageMapError as exc:
            from netbind._cli.common import BadInput
            raise BadInput(str(exc)) from None
    console = _console() if output == "text" else None
    progress = _RichProgress(console) if console is not None else None
    try:
        with terminates_like_ctrl_c():
            result = migration.migrate(name, MigrateOptions(images=images, wait=wait, wait_timeout=timeout),
                                       progress)
    except KeyboardInterrupt as exc:
        interrupted(exc, "migrate stopped; before the hand-over the target pod is torn down and the VMI keeps"
                         " running on the source, after it the VMI runs on the target (netbind status;"
                         " netbind down removes what is left)")
    except MigrationError as exc:
        if output == "json":
            click.echo(json.dumps({"error": exc.message, "phase": exc.phase, "details": exc.details,
                                   "vmi": exc.vmi}, indent=2))
        elif output == "quiet":   # nothing on success, but a failure still says why, in one line
            click.echo(f"error: {exc.phase or 'migrate'}: {exc.message}", err=True)
        else:
            err = _console(stderr=True)
            err.print(f"[red]✗ {exc.phase or 'migrate'}[/]: ", end="", highlight=False)
            err.print(exc.message, highlight=False, markup=False)
            if exc.details:
                err.print(exc.details, highlight=False, markup=False)
        sys.exit(1)
    if output == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    if output == "quiet":
        return
    vmi = result.vmi
    state = vmi["status"].get("migrationState", {})
    job = result.job
    console.print(f"[bold]{vmi['metadata']['namespace']}/{vmi['metadata']['name']}[/] migrated"
                  f" {state.get('sourceNode')} -> {state.get('targetNode')}: pod {result.source} -> {result.target.netns};"
                  f" libvirt: downtime {job.get('downtime', '?')} ms, elapsed {job.get('time_elapsed', '?')} ms",
                  highlight=False)
    for line in result.link_refresh:
        console.print(f"  link-refresh {line['interface']}: {line['how']}, {line['ms']} ms", highlight=False)
    for sidecar, what in result.shutdown.items():
        console.print(f"  source {sidecar}: {what}", highlight=False, markup=False)
    if result.lease.get("source") == "guest-agent":
        console.print(f"  guest agent: new address {result.lease['ip']} on {result.lease['iface']}, seen"
                      f" {result.lease['link_refresh_to_address_ms']} ms after link-refresh", highlight=False)
    elif result.lease:
        console.print(f"  guest: new lease {result.lease['ip']} on {result.lease['iface']},"
                      f" {result.lease['link_up_to_lease_ms']} ms after link up", highlight=False)
    _print_interfaces(console, vmi)
