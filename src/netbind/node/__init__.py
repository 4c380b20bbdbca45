"""The local node runtime: a pod sandbox per VMI, a private libvirtd in it, and a tiny guest.

Layers, bottom up: ``paths`` (where state lives), ``journal`` (what was created, on disk),
``procs`` (supervised processes in a pod's namespaces), ``sandbox`` (pod and node namespaces: a
plan, then its apply), ``libvirt`` (the private libvirtd and pure domain XML rewrites), ``guest``
and ``seed`` (the tiny guest image and its NoCloud seed). Links and namespaces go through ``netbind._iproute``, the one link adapter.
"""
