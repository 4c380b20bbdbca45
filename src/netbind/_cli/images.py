"""``netbind image``: build netbind's images offline with podman, and list them."""
from __future__ import annotations

import json
from pathlib import Path

import click

from netbind._cli.common import fail


def _size(size: int) -> str:
    return f"{size / 1e6:.0f} MB" if size else "-"


@click.group()
def image() -> None:
    """The container images of deploy/ (sidecars, CNI installer, the cloud guest as a containerDisk),
    built offline with podman."""


@image.command()
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Build every image (the default when no NAME is given).")
@click.option("--force", is_flag=True, help="Rebuild even if the image with these inputs exists.")
@click.option("--project", type=click.Path(file_okay=False), default=None,
              help="Build the images a plugin project (netbind new) lists in its netbind-plugin.yaml.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def build(names: tuple[str, ...], all_: bool, force: bool, project: str | None, output: str) -> None:
    """Build the images NAMES (passt, bridge, cni, cloud-guest) as they would be built for a
    registry: bases from Debian packages (debootstrap, cached under /var/cache/netbind),
    substituted for each Containerfile's FROM through its BASE_IMAGE/BUILD_IMAGE arguments, no
    network during the build. cloud-guest is FROM scratch with the reference cloud guest's qcow2 at
    /disk/ (the guest is built first if it is not cached). An image whose inputs did not change is kept."""
    from netbind import images

    if all_ and names:
        raise click.UsageError("give image NAMES or --all, not both")
    if project and (all_ or names):
        raise click.UsageError("--project builds the project's images: give no NAMES or --all with it")
    say = (lambda text: click.echo(text, err=True)) if output == "text" else (lambda t: None)
    try:
        images.project_specs(Path(project)) if project else images.select(names, all_)
    except images.ImageBuildError as exc:
        fail(str(exc))                      # bad input: exit 2
    try:
        built = images.ensure_project(project, force=force, say=say) if project else \
            images.ensure(names, all_=all_, force=force, say=say)
    except (images.ImageBuildError, images.BaseImageError) as exc:
        fail(str(exc), 1)
    if output == "json":
        click.echo(json.dumps([b.to_json() for b in built], indent=2))
        return
    for b in built:
        state = f"built in {b.seconds:.1f} s" if b.built else "up to date"
        click.echo(f"{b.tag}  {_size(b.size)}  {state}")


@image.command("list")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_(output: str) -> None:
    """netbind's images and bases in the local store, with their sizes."""
    from netbind import _podman, images

    if _podman.unavailable():
        fail(_podman.unavailable() or "", 1)
    rows = [{"name": "(base)", "tag": t, "size": _podman.image_size(t) or 0} for t in (images.BASE_TAG,
                                                                                     images.BUILD_TAG)]
    rows += [{"name": s.name, "tag": s.tag, "size": _podman.image_size(s.tag) or 0, "about": s.about}
             for s in images.IMAGES.values()]
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['name']:8} {row['tag']:45} {_size(row['size']) if row['size'] else 'not built'}")
