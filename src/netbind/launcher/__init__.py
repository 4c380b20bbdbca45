"""virt-launcher's part: domain building, pod network attachment, hook client.

``netbind.launcher.hooks`` is the hook manager (discover sidecar sockets, Info, chained calls).
"""
