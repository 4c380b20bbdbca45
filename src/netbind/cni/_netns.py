"""Enter a network namespace for a block of code (the calling thread only)."""
from __future__ import annotations

import os

from netbind._setns import setns_net
from netbind.cni._types import ERR_INTERNAL, CNIError

def netns_error(path: str, exc: OSError) -> CNIError:
    reason = exc.strerror or str(exc)
    if exc.errno == 22:  # EINVAL from setns: the file is not a network namespace
        reason = "not a network namespace"
    reason = reason[:1].lower() + reason[1:]  # Go-style lower-case errno text
    return CNIError(ERR_INTERNAL, f'failed to open netns "{path}": {reason}')


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
                self._target = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise netns_error(self.path, exc) from None
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
