"""``netbind cluster register|unregister|list|check``: the bundle through the user's kubeconfig."""
from __future__ import annotations

import json

import click

from .bundle import build_bundle, bundle_options
from .common import EXIT_DENIED, BadInput, handles_bad_input

kube_options = [
    click.option("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)."),
    click.option("--context", default=None, help="kubeconfig context (default: the current one)."),
]


def _with_kube(func):
    for option in reversed(kube_options):
        func = option(func)
    return func


def _connect(kubeconfig, context):
    from netbind.cluster import connect

    try:
        return connect(kubeconfig, context)
    except Exception as exc:  # kubeconfig missing or broken: the client's own sentence names it
        raise BadInput(f"kubeconfig: {exc}; give --kubeconfig FILE or set KUBECONFIG") from None


def _run(call):
    from netbind.cluster import ClusterError

    try:
        return call()
    except ClusterError as exc:
        raise BadInput(str(exc)) from None
    except Exception as exc:
        if hasattr(exc, "status") and hasattr(exc, "reason"):  # kubernetes.client.ApiException
            raise BadInput(f"API server answered {exc.status} {exc.reason}: "
                           f"{(getattr(exc, 'body', '') or '').strip()[:300]}") from None
        raise


@click.group()
def cluster():
    """Apply or inspect the bundle (netbind bundle) on a cluster, through the kubernetes client.
    Not yet run against a live cluster (see README)."""


def _bundle_and_cluster(kubeconfig, context, **bundle_args):
    """The validated bundle of the bundle options (first: bad input is named before any connection)
    and a client of the cluster the kube options name."""
    bundle = build_bundle(**bundle_args)
    return bundle, _connect(kubeconfig, context)


@cluster.command()
@bundle_options
@_with_kube
@handles_bad_input
def register(kubeconfig, context, **bundle_args):
    """Create the NADs and the CNI installer DaemonSet, and register the bindings."""
    bundle, api = _bundle_and_cluster(kubeconfig, context, **bundle_args)
    for line in _run(lambda: api.register(bundle)):
        click.echo(line)


@cluster.command()
@bundle_options
@_with_kube
@click.option("--binding", "names", multiple=True, help="Only this binding (repeatable; default: all of -f).")
@handles_bad_input
def unregister(kubeconfig, context, names, **bundle_args):
    """Remove the bindings' registration and their NADs (the feature gate and the DaemonSet stay:
    other bindings may use them)."""
    bundle, api = _bundle_and_cluster(kubeconfig, context, **bundle_args)
    for line in _run(lambda: api.unregister(bundle, list(names) or None)):
        click.echo(line)


@cluster.command("list")
@bundle_options
@_with_kube
@handles_bad_input
def list_(kubeconfig, context, **bundle_args):
    """The bindings registered in the cluster's CR, as JSON."""
    bundle, api = _bundle_and_cluster(kubeconfig, context, **bundle_args)
    click.echo(json.dumps(_run(lambda: api.list(bundle.registration.target)), indent=2))


@cluster.command()
@bundle_options
@_with_kube
@handles_bad_input
def check(kubeconfig, context, **bundle_args):
    """Per binding of -f: registered, NAD where its VMs see it, feature gate, CNI installer ready.
    Exit 1 when something is missing."""
    from netbind.api.versions import profile

    bundle, api = _bundle_and_cluster(kubeconfig, context, **bundle_args)
    by_default = profile(bundle_args["version"]).gate_enabled(None, "NetworkBindingPlugins")
    results = _run(lambda: api.check(bundle, by_default))
    for r in results:
        problems = [p for p in (r.nad, r.gate, r.installer) if p]
        click.echo(f"{r.binding}: {'ok' if r.ok else '; '.join(problems)}")
    if not all(r.ok for r in results):
        raise SystemExit(EXIT_DENIED)
