"""``netbind-cni-passt-binding``: the passt binding's CNI plugin (spec 7.3).

ADD sets, inside the pod network namespace, the two sysctls passt needs when qemu runs as
virt-launcher's uid 107: ``net.ipv4.ip_unprivileged_port_start=0`` (passt binds the pod's ports)
and ``net.ipv4.ping_group_range="107 107"`` (ICMP through ping sockets). It prints the previous
result unchanged when chained, else a result with only ``cniVersion`` (no interfaces: a Multus
default ifname such as ``net1`` in network-status would flip KubeVirt's naming scheme).

Unlike KubeVirt's plugin, DEL restores what ADD changed and CHECK verifies it. ADD records the
values it found in a small state file (``<dataDir>/<network>/<containerID>-<ifname>.json``,
``dataDir`` default ``/var/lib/cni/netbind/passt-binding``), together with the namespace's inode,
so a DEL or GC never writes into a different namespace that reuses the path.

A repeated ADD for the same container and ifname into the same live namespace (compared by device
and inode, not path) succeeds as KubeVirt's does: it sets the sysctls again and keeps the values the
first ADD found, so DEL still restores those. A state file whose namespace is gone, whose path names
another namespace now, or that records another namespace than this ADD's (the runtime never sent
DEL) is stale: its namespace is restored if it still lives, and ADD proceeds.

Differences from KubeVirt's plugin (whose behaviour the oracle vectors record): the error for a
missing namespace says ``failed to open netns "<path>": ...`` where KubeVirt prints
``failed to open netns %!q(<nil>): failed to Statfs "<path>": ...`` (a Go format bug); the
plugin's own (the node's) namespace is refused (code 4) where KubeVirt's would set the node's
sysctls; CHECK without a prevResult (no ADD to compare with) is a no-op as in KubeVirt, CHECK with
one verifies.
"""
from __future__ import annotations

import os

from netbind.cni import CNIError, NetNS, Plugin
from netbind.cni._state import (
    attachment_state_path,
    load_attachment_state,
    recorded_netns,
    records_netns,
    save_attachment_state,
    state_for_add,
)
from netbind.cni._types import ERR_IO_FAILURE

# Plugin error codes (>= 100, as the spec reserves lower ones).
ERR_NOT_SET_UP = 101
ERR_SYSCTL_MISMATCH = 102

QEMU_UID = "107"
SYSCTLS = (
    ("net.ipv4.ip_unprivileged_port_start", "0"),
    ("net.ipv4.ping_group_range", f"{QEMU_UID} {QEMU_UID}"),
)
DEFAULT_DATA_DIR = "/var/lib/cni/netbind/passt-binding"

plugin = Plugin(
    "netbind-passt-binding",
    about="netbind passt binding CNI plugin: prepares the pod network namespace for passt",
)


def _sysctl_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def _read_sysctl(key: str) -> str:
    with open(_sysctl_path(key), encoding="ascii") as fh:
        return fh.read().rstrip("\n")


def _write_sysctl(key: str, value: str) -> None:
    with open(_sysctl_path(key), "w", encoding="ascii") as fh:
        fh.write(value)


def _same(current: str, wanted: str) -> bool:
    return current.split() == wanted.split()  # the kernel prints ping_group_range tab-separated


def _state_path(args) -> str:
    return attachment_state_path(args, DEFAULT_DATA_DIR)


def _restore(state: dict) -> None:
    """Put back the values ADD found, where they still hold what ADD wrote."""
    netns = recorded_netns(state)
    if netns is None:
        return  # the namespace is gone or the path now names another one
    with netns:
        for key, before in (state.get("before") or {}).items():
            applied = dict(SYSCTLS).get(key)
            if applied is not None and _same(_read_sysctl(key), applied):
                _write_sysctl(key, before)


@plugin.add
def add(args):
    state_path = _state_path(args)
    prev = args.prev_result            # read (and refused if broken) before anything changes
    netns = NetNS(args.netns)
    netns.open()  # a missing namespace fails here, before any state is touched
    earlier = state_for_add(state_path, netns, _restore, args.log)
    first = (earlier or {}).get("before")
    first = first if isinstance(first, dict) else {}  # a repeated ADD: keep what the first one found
    before: dict[str, str] = {}
    with netns:
        try:
            for key, value in SYSCTLS:
                before[key] = _read_sysctl(key)
                _write_sysctl(key, value)
        except OSError as exc:
            for key, value in before.items():  # undo: leave the namespace as we found it
                try:
                    _write_sysctl(key, value)
                except OSError:
                    pass
            raise CNIError(ERR_IO_FAILURE, f"cannot set sysctl in {args.netns}: {exc}") from None
        inode = netns.inode()
    state = {"netns": args.netns, "netnsInode": list(inode),
             "before": {key: first.get(key, value) for key, value in before.items()}}
    try:
        save_attachment_state(state_path, state)
    except CNIError:
        _restore(state)
        raise
    logic_network = args.cni_args.get("logicNetworkName", "")
    args.log(f"setup for logical network {logic_network} completed successfully")
    return prev


@plugin.delete
def delete(args):
    state_path = _state_path(args)
    state = load_attachment_state(state_path)
    if state is None:
        return  # never added, or already deleted: DEL is idempotent
    _restore(state)
    os.unlink(state_path)


@plugin.check
def check(args):
    if args.prev_result is None:
        return  # nothing was added to compare with (KubeVirt's plugin: CHECK is a no-op)
    state = load_attachment_state(_state_path(args))
    netns = NetNS(args.netns)
    if not records_netns(state, netns):
        raise CNIError(ERR_NOT_SET_UP, f"passt binding is not set up for container "
                                       f"{args.container_id} ifname {args.ifname} in {args.netns}")
    with netns:
        for key, wanted in SYSCTLS:
            current = _read_sysctl(key)
            if not _same(current, wanted):
                raise CNIError(ERR_SYSCTL_MISMATCH,
                               f"sysctl {key} is {current!r} in {args.netns}, expected {wanted!r}")


@plugin.gc
def gc(args):
    valid = args.valid_attachments
    if valid is None:
        return  # no list given: nothing is known to be stale
    keep = {f"{a.get('containerID')}-{a.get('ifname')}.json" for a in valid}
    directory = os.path.dirname(_state_path(args))
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        if name.endswith(".json") and name not in keep:
            path = os.path.join(directory, name)
            state = load_attachment_state(path)
            if state is not None:
                _restore(state)
            os.unlink(path)


main = plugin.main

if __name__ == "__main__":
    main()
