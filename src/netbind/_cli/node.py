"""``netbind down``: remove pod sandboxes from the runtime dir's on-disk record."""
from __future__ import annotations

import click


@click.command()
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Remove every pod and the node namespace (crash cleanup).")
def down(name: str | None, all_: bool) -> None:
    """Remove the pod sandbox of VMI NAME (or NAMESPACE/NAME, or a pod netns name): its domains,
    libvirtd, processes, links, namespace and files. Idempotent."""
    from netbind.node import paths, sandbox
    from netbind.node.journal import UndoError

    if bool(name) == all_:
        raise click.UsageError("give a VMI NAME or --all")
    try:
        removed = sandbox.down_all() if all_ else sandbox.down(name)
    except (UndoError, sandbox.SandboxError) as exc:
        raise click.ClickException(f"{exc} (the record under {paths.runtime_dir()} is kept; run down again)")
    if all_:
        from netbind.node import oci_disks

        for image in oci_disks.release_stale_mounts():
            click.echo(f"unmounted {image} (a containerDisk extraction was killed while it was mounted)")
    if removed:
        click.echo("removed " + ", ".join(removed))
    else:
        click.echo(f"nothing to remove{'' if all_ else f' for {name}'}")
