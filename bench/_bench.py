"""What every benchmark under bench/ shares: the checkout, the CLI, and the guest they time.

The default image map boots the user guide's Fedora containerDisk as the cloud guest (a Debian
disk, tens of seconds under TCG). The benchmarks time netbind, not a distribution's boot, so they
run the tiny guest unless the caller chose (NETBIND_GUEST=cloud, or bench/up.py --cloud).

A script's directory comes first on sys.path, so no file here may take a standard module's name
(a bench/concurrent.py hid concurrent.futures, and with it asyncio, from every benchmark).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("NETBIND_GUEST", "tiny")

ROOT = Path(__file__).resolve().parent.parent
NETBIND = Path(sys.executable).parent / "netbind"
