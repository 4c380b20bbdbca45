"""The ``netbind`` command.

Sub-commands live in the modules that own them and are imported only when invoked, so that
``netbind --help`` and light commands stay fast (no grpc/lxml import unless needed).
"""
from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command or group
_COMMANDS: dict[str, str] = {
    "validate": "netbind._cli.kubevirt:validate",
    "render": "netbind._cli.kubevirt:render",
    "explain": "netbind._cli.kubevirt:explain",
    "hooks": "netbind._cli.hooks:hooks",
    "cni": "netbind._cli.cni:cni",
    "down": "netbind._cli.node:down",
    "dhcp": "netbind._cli.dhcp:dhcp",
    "up": "netbind._cli.runtime:up",
    "status": "netbind._cli.runtime:status",
    "console": "netbind._cli.runtime:console",
    "logs": "netbind._cli.runtime:logs",
    "migrate": "netbind._cli.migrate:migrate",
    "image": "netbind._cli.images:image",
    "new": "netbind._cli.new:new",
    "bundle": "netbind._cli.bundle:bundle",
    "cluster": "netbind._cli.cluster:cluster",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _COMMANDS:
            module, attr = _COMMANDS[name].split(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except ModuleNotFoundError as exc:  # a sub-command whose module is not built yet
                if exc.name and exc.name.startswith("netbind"):
                    return None
                raise
        return super().get_command(ctx, name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netbind")
def cli() -> None:
    """KubeVirt network binding plugins: validate, render, run and debug them locally."""


def main() -> None:
    cli(prog_name="netbind")


if __name__ == "__main__":
    main()
