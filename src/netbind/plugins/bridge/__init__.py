"""A bridge binding plugin: KubeVirt's core bridge binding rebuilt as a network binding plugin.

``cni`` (``netbind-cni-bridge-binding``) does the privileged rewiring in the pod namespace;
``sidecar`` (``netbind-bridge-sidecar``) writes the domain interface and serves DHCP to the guest.
"""
