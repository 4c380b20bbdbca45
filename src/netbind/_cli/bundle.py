"""``netbind bundle``: what a cluster needs for the bindings of -f (netbind.bundle)."""
from __future__ import annotations

import click

from .common import BadInput, dump, handles_bad_input, kubevirt_version, load_manifests, manifest_files


def bundle_options(func):
    for option in reversed([
        manifest_files, kubevirt_version,
        click.option("--target", type=click.Choice(["kubevirt", "hco"]), default="kubevirt", show_default=True,
                     help="Register in the KubeVirt CR, or in the HyperConverged CR (spec.networkBinding)."),
        click.option("--vm-namespace", "vm_namespaces", multiple=True,
                     help="Namespace of the VMs using the bindings: a NAD copy goes there (repeatable; default: "
                          "the namespaces of the VMs in -f, else default)."),
        click.option("--nad-namespace", default=None,
                     help="Share one NAD from this namespace instead (the registration names it)."),
        click.option("--cni-image", "cni_images", multiple=True, metavar="TYPE=IMAGE:/PATH",
                     help="A CNI plugin that is not netbind's: the image holding its binary, and the path "
                          "there; the installer DaemonSet copies it to the node (repeatable)."),
    ]):
        func = option(func)
    return func


def build_bundle(files, version, target, vm_namespaces, nad_namespace, cni_images):
    """The validated bundle of the options above (BadInput on every refusal)."""
    from netbind.api.versions import profile
    from netbind.bundle import BundleError, compose_bundle, parse_cni_image, validate_bundle

    manifests = load_manifests(files)
    try:
        bundle = compose_bundle(manifests, profile(version), target=target, vm_namespaces=list(vm_namespaces),
                                nad_namespace=nad_namespace, cni_images=[parse_cni_image(c) for c in cni_images])
        if target == "hco":
            current = manifests.hyperconverged
        else:
            current = manifests.kubevirt.to_json() if manifests.kubevirt and not manifests.hyperconverged else None
        validate_bundle(bundle, version, current)
    except BundleError as exc:
        raise BadInput(str(exc)) from None
    return bundle


@click.command()
@bundle_options
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@handles_bad_input
def bundle(files, version, target, vm_namespaces, nad_namespace, cni_images, output):
    """Print the NADs, the CNI installer DaemonSet and the registration patches for the bindings of -f,
    each validated against the OpenAPI schemas of Kubernetes, KubeVirt and HCO."""
    result = build_bundle(files, version, target, vm_namespaces, nad_namespace, cni_images)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    dump(result.to_json(), output)
