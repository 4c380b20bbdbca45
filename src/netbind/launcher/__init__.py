"""virt-launcher's side of netbind: what KubeVirt's compute container does with plugins.

``netbind.launcher.hooks`` is the hook manager (discover sidecar sockets, Info, chained calls).
"""
