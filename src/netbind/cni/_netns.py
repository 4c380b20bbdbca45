"""Enter a network namespace for a block of code (the calling thread only).

Python 3.12 has ``os.setns``; on 3.11 ``setns(2)`` is called through ``_ctypes`` directly, because
the ``ctypes`` package costs ~2.5 ms of import on the plugin exec path.
"""
from __future__ import annotations

import os

from netbind.cni._types import ERR_INTERNAL, CNIError

CLONE_NEWNET = 0x40000000
_setns_func = None


def _setns(fd: int) -> None:
    global _setns_func
    native = getattr(os, "setns", None)
    if native is not None:  # pragma: no cover - Python >= 3.12
        native(fd, CLONE_NEWNET)
        return
    if _setns_func is None:
        import _ctypes

        class _CInt(_ctypes._SimpleCData):
            _type_ = "i"

        class _CFunc(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = _CInt

        libc = _ctypes.dlopen(None, os.RTLD_NOW)
        _setns_func = (_CFunc(_ctypes.dlsym(libc, "setns")), _ctypes.get_errno)
    func, get_errno = _setns_func
    if func(fd, CLONE_NEWNET) != 0:
        errno = get_errno()
        raise OSError(errno, os.strerror(errno))


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
            _setns(target)
        except OSError as exc:
            self._close()
            raise netns_error(self.path, exc) from None
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            if self._origin >= 0:
                _setns(self._origin)  # failing here would leave the thread in the pod: let it raise
        finally:
            self._close()

    def _close(self) -> None:
        for fd in (self._origin, self._target):
            if fd >= 0:
                os.close(fd)
        self._origin = self._target = -1
