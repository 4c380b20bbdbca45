"""Soak, reduced for CI (root): 5 `up --wait`/`down --all` cycles of the passt example and 4
migrations back and forth through the real CLI (netbind.testing.soak); every step succeeds, every
`down` leaves nothing (netbind.testing.leaks), and the VM's processes and their open descriptors do
not grow from one cycle or migration to the next. bench/soak.py is the full run (50 and 30)."""
from __future__ import annotations

from netbind.testing.soak import Soak

from .test_up import EXAMPLES, require_node_binaries

NAME = "vm-net-binding-passt"


def _failed(steps) -> str:
    return "\n".join(f"{s.command} {s.index}: exit {s.exit}: {s.tail} leaks: {s.leaks}" for s in steps if not s.ok)


def _no_growth(steps, command: str) -> None:
    chosen = [s for s in steps if s.command == command]
    first, last = chosen[0], chosen[-1]
    assert last.vm_processes == first.vm_processes, [s.vm_processes for s in chosen]
    # a descriptor or two come and go (libvirtd's client connections); a leak of one per step
    # shows as more than that over the run
    grown = {name: (first.vm_fds.get(name), count) for name, count in last.vm_fds.items()
             if count > first.vm_fds.get(name, 0) + 2}
    assert not grown, f"{command}: open descriptors grew (first, last) by process: {grown}"


def test_five_up_down_cycles_and_four_migrations_succeed_leave_nothing_and_do_not_grow(guest_image, runtime):
    require_node_binaries()
    soak = Soak(runtime, EXAMPLES / "passt", NAME)
    cycles = soak.cycles(5)
    moves = soak.migrations(4)
    steps = cycles + moves
    assert all(s.ok for s in steps), _failed(steps)
    assert [s.command for s in moves] == ["up", "migrate", "migrate", "migrate", "migrate", "down"]
    for step in steps:
        if step.command == "down":
            assert step.vm_processes == 0 and not step.vm_fds, step
    assert all(s.vm_processes >= 3 for s in steps if s.command != "down")   # libvirtd, QEMU, passt at least
    _no_growth(cycles, "up")
    _no_growth(moves, "migrate")
