"""Shared CLI plumbing: manifest options, version profiles, and bad-input handling (exit 2)."""
from __future__ import annotations

import functools
import json
import signal
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import click

EXIT_OK, EXIT_DENIED, EXIT_BAD_INPUT = 0, 1, 2

manifest_files = click.option(
    "-f", "--filename", "files", multiple=True, required=True, type=click.Path(),
    help="File or folder with the KubeVirt CR, NetworkAttachmentDefinitions and one VM or VMI "
         "(repeatable).")
kubevirt_version = click.option(
    "--kubevirt-version", "version", default="latest", show_default=True,
    type=click.Choice(["latest", "1.4"]),
    help="KubeVirt behaviour to reproduce: 'latest' (main after v1.9) or '1.4' (v1.4.1).")


class BadInput(Exception):
    """A user error with a message that says what to fix."""


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handles_bad_input(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turns our input errors into one clear line on stderr and exit 2, never a traceback."""
    from netbind.api.loading import ManifestError

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ManifestError, BadInput) as exc:
            fail(str(exc))
    return wrapper


def load_manifests(files: tuple[str, ...]) -> Any:
    """The manifests of ``-f``; what the API server would warn about goes to stderr, as kubectl prints it."""
    from netbind.api.loading import load_manifests as load

    manifests = load(files)
    for warning in manifests.warnings:
        click.echo(f"warning: {warning}", err=True)
    return manifests


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is (as Ctrl-C raises KeyboardInterrupt), so that what a
    command started is torn down the same way."""


@contextmanager
def terminates_like_ctrl_c() -> Iterator[None]:
    def terminated(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted(exc: KeyboardInterrupt, what: str) -> None:
    """One line for a Ctrl-C or SIGTERM, and the shell's exit status for it (130, 143)."""
    sigterm = isinstance(exc, Terminated)
    click.echo(f"{'terminated (SIGTERM)' if sigterm else 'interrupted (Ctrl-C)'}: {what}", err=True)
    sys.exit(128 + (signal.SIGTERM if sigterm else signal.SIGINT))


def dump(data: Any, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        import yaml
        click.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=1000), nl=False)
