"""Enter a network namespace for a block of code (the calling thread only)."""
from __future__ import annotations

import os
import stat

from netbind._setns import setns_net
from netbind.cni._types import ERR_INTERNAL, ERR_INVALID_ENVIRONMENT_VARIABLES, CNIError

_OWN_NETNS = "/proc/thread-self/ns/net"


def netns_error(path: str, exc: OSError) -> CNIError:
    reason = exc.strerror or str(exc)
    if exc.errno == 22:  # EINVAL from setns: the file is not a network namespace
        reason = "not a network namespace"
    reason = reason[:1].lower() + reason[1:]  # Go-style lower-case errno text
    return CNIError(ERR_INTERNAL, f'failed to open netns "{path}": {reason}')


def own_netns_error(path: str) -> CNIError | None:
    """An error when ``path`` names the network namespace the plugin runs in (the host's, for a
    plugin the runtime runs): a container's namespace is always a new one, and wiring the node's
    own would rebuild its links. None when it is another namespace or does not open (the command
    reports that where it needs the namespace)."""
    try:
        target, own = os.stat(path), os.stat(_OWN_NETNS)
    except (OSError, ValueError):
        return None
    if (target.st_dev, target.st_ino) != (own.st_dev, own.st_ino):
        return None
    return CNIError(ERR_INVALID_ENVIRONMENT_VARIABLES,
                    f'CNI_NETNS "{path}" is the plugin\'s own network namespace, not a container\'s: '
                    "pass the pod sandbox's namespace (e.g. /var/run/netns/<name>)")


class NetNS:
    """``with NetNS(path):`` runs the block inside the namespace and always switches back.

    Failing to open or enter the namespace raises ``CNIError`` (code 999, like the reference
    plugins) with the path in the message.
    """

    __slots__ = ("path", "_target", "_origin")

    def __init__(self, path: str) -> None:
        self.path = path
        self._target = -1
        self._origin = -1

    def open(self) -> int:
        if self._target < 0:
            try:
                # namespace files are regular (nsfs); never open a device, FIFO or directory
                if not stat.S_ISREG(os.stat(self.path).st_mode):
                    raise OSError(22, "not a network namespace")
                self._target = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
            except OSError as exc:
                raise netns_error(self.path, exc) from None
            except ValueError:  # a NUL byte in the path
                raise CNIError(ERR_INTERNAL, f"failed to open netns {self.path!r}: the path contains a NUL byte") from None
        return self._target

    def inode(self) -> tuple[int, int]:
        st = os.fstat(self.open())
        return st.st_dev, st.st_ino

    def __enter__(self) -> "NetNS":
        target = self.open()
        self._origin = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns_net(target)
        except OSError as exc:
            self._close()
            raise netns_error(self.path, exc) from None
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            if self._origin >= 0:
                setns_net(self._origin)  # failing here would leave the thread in the pod: let it raise
        finally:
            self._close()

    def _close(self) -> None:
        for fd in (self._origin, self._target):
            if fd >= 0:
                os.close(fd)
        self._origin = self._target = -1
