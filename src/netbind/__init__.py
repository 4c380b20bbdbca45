"""netbind: KubeVirt network binding plugins in Python.

The public surface is small: the ``netbind`` command, ``netbind.hooks`` (sidecar SDK),
``netbind.cni`` (CNI plugin framework and executor), ``netbind.api`` (KubeVirt models) and
``netbind.testing`` (fixtures for plugin authors). Everything else is private layering.
"""

__version__ = "0.1.0"
