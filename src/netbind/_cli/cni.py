"""``netbind cni add|del|check``: run a CNI network configuration (list) by hand, like cnitool."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from netbind.cni import CNIError
from netbind.cni.exec import (
    DEFAULT_CACHE_DIR,
    CNIExecutor,
    RuntimeConf,
    default_cni_path,
    normalize_conflist,
)


class BadInput(click.ClickException):
    exit_code = 2


def _netns_path(value: str) -> str:
    path = value if "/" in value else f"/run/netns/{value}"
    if not os.path.exists(path):
        raise BadInput(f"--netns: {path} does not exist (give a name under /run/netns or a path)")
    return path


def _load(config: str) -> dict:
    try:
        text = Path(config).read_text()
    except OSError as exc:
        raise BadInput(f"--config: cannot read {config}: {exc.strerror or exc}") from None
    try:
        return normalize_conflist(text)
    except CNIError as exc:
        raise BadInput(f"--config {config}: {exc.msg}") from None


def _args(values: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for value in values:
        for item in filter(None, value.split(";")):
            key, sep, val = item.partition("=")
            if not sep or not key:
                raise BadInput(f"--args: {item!r} is not KEY=VALUE")
            out.append((key, val))
    return out


def _options(func):
    for option in reversed([
        click.option("--netns", required=True, help="network namespace: name under /run/netns or a path"),
        click.option("--ifname", default="eth0", show_default=True, help="interface name in the namespace"),
        click.option("--config", "config", required=True, type=click.Path(dir_okay=False),
                     help="network configuration (list) JSON file"),
        click.option("--container-id", default=None, help="default: derived from the netns name"),
        click.option("--args", "cni_args", multiple=True, help="CNI_ARGS entries, KEY=VALUE[;...]"),
        click.option("--runtime-config", default=None,
                     help='capability args as JSON, e.g. \'{"mac": "02:00:00:00:00:01"}\''),
        click.option("--cni-path", default=None, help="plugin directories, ':'-separated (default $CNI_PATH "
                                                      "or /opt/cni/bin:/usr/lib/cni)"),
        click.option("--cache-dir", default=DEFAULT_CACHE_DIR, show_default=True),
        click.option("--timeout", default=60.0, show_default=True, help="seconds per plugin"),
    ]):
        func = option(func)
    return func


def _run(command: str, netns, ifname, config, container_id, cni_args, runtime_config, cni_path,
         cache_dir, timeout) -> None:
    conf = _load(config)
    path = _netns_path(netns)
    caps = {}
    if runtime_config:
        try:
            caps = json.loads(runtime_config)
        except ValueError as exc:
            raise BadInput(f"--runtime-config is not JSON: {exc}") from None
        if not isinstance(caps, dict):
            raise BadInput("--runtime-config must be a JSON object")
    cid = container_id or "netbind-" + os.path.basename(path).replace("/", "-")
    rt = RuntimeConf(cid, path, ifname, _args(cni_args), caps)
    dirs = cni_path.split(os.pathsep) if cni_path else default_cni_path()
    executor = CNIExecutor(dirs, cache_dir, timeout=timeout)
    try:
        if command == "ADD":
            click.echo(json.dumps(executor.add_network_list(conf, rt), indent=2))
        elif command == "DEL":
            executor.del_network_list(conf, rt)
        else:
            executor.check_network_list(conf, rt)
    except CNIError as exc:
        click.echo(f"Error: {command} of network {conf['name']!r} failed: {exc}", err=True)
        for note in getattr(exc, "__notes__", ()):
            click.echo(f"  {note}", err=True)
        sys.exit(1)


@click.group()
def cni() -> None:
    """Run CNI plugins (a network configuration list) against a network namespace."""


@cni.command("add")
@_options
def add(**kwargs) -> None:
    """ADD the network; prints the result."""
    _run("ADD", **kwargs)


@cni.command("del")
@_options
def delete(**kwargs) -> None:
    """DEL the network (idempotent)."""
    _run("DEL", **kwargs)


@cni.command("check")
@_options
def check(**kwargs) -> None:
    """CHECK the network against the cached ADD result."""
    _run("CHECK", **kwargs)
