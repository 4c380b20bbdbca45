"""setns(2) for network namespaces, cheap to import (used on the CNI plugin exec path).

Python 3.12 has ``os.setns``; on 3.11 ``setns(2)`` is called through ``_ctypes`` directly, because
the ``ctypes`` package costs ~2.5 ms of import.
"""
from __future__ import annotations

import os

CLONE_NEWNET = 0x40000000
_setns_func = None


def setns_net(fd: int) -> None:
    """Move the calling thread into the network namespace open at ``fd``."""
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
