"""``netbind new``: scaffold a network binding plugin project."""
from __future__ import annotations

import click

from netbind._cli.common import fail


@click.command()
@click.argument("name")
@click.option("--shape", required=True, type=click.Choice(["zero-code", "sidecar", "cni-sidecar"]),
              help="zero-code: a domainAttachmentType: tap binding, no code; sidecar: a hook sidecar;"
                   " cni-sidecar: a binding CNI plus a hook sidecar.")
@click.option("--dir", "directory", type=click.Path(file_okay=True), default=None,
              help="Where to write the project (absent or empty); default ./NAME.")
def new(name: str, shape: str, directory: str | None) -> None:
    """Scaffold the plugin project NAME: its Python package (netbind's SDK), tests (netbind's pytest
    fixtures), Containerfile(s) for `netbind image build --project`, and example/ (KubeVirt CR, NAD,
    VM) that `netbind up -f example/ --wait` runs locally."""
    from netbind import scaffold

    try:
        target = scaffold.create(name, shape, directory)
    except scaffold.ScaffoldError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"--dir {directory or name}: {exc.strerror or exc}", 1)
    click.echo(f"created {shape} plugin {name} in {target}/; next:")
    click.echo(f"  cd {target}")
    for line in scaffold.values(name, shape)["steps"].splitlines():
        click.echo(f"  {line}")
