"""The host's shared cache of QEMU capabilities, offered by many pods' libvirtds at once; the
qemu.conf a private libvirtd gets."""
from __future__ import annotations

import multiprocessing
from pathlib import Path

from netbind.node import libvirt as lv
from netbind.node.libvirt import offer_capabilities

NAME = "926803a9.xml"
# what every private libvirtd's qemu.conf sets, whichever libvirt it is
PRIVATE = {"stdio_handler": '"file"', "security_driver": '"none"', "remember_owner": "0",
           "namespaces": "[ ]", "cgroup_controllers": "[ ]"}


def qemu_settings(path: Path) -> dict[str, str]:
    """The settings of a qemu.conf (the last one of a name, comments left out)."""
    settings = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            settings[name.strip()] = value.strip()
    return settings


def _offer_repeatedly(probed: Path, shared: Path, rounds: int, failures) -> None:
    try:
        for _ in range(rounds):
            offer_capabilities(probed, shared)
    except Exception as exc:   # what would fail a pod's `up`
        failures.put(repr(exc))


def test_pods_offering_their_probed_capabilities_at_once_never_fail_and_leave_a_whole_file(tmp_path):
    shared = tmp_path / "shared"
    contents = []
    for n in range(6):
        probed = tmp_path / f"pod{n}"
        probed.mkdir()
        # Different bytes per pod, so every offer finds the shared file stale and writes it again.
        text = f"<qemuCaps pod='{n}'>" + "x" * 200_000 + "</qemuCaps>"
        (probed / NAME).write_text(text)
        contents.append(text)
    ctx = multiprocessing.get_context("fork")
    failures = ctx.Queue()
    workers = [ctx.Process(target=_offer_repeatedly, args=(tmp_path / f"pod{n}", shared, 150, failures))
               for n in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    errors = []
    while not failures.empty():
        errors.append(failures.get())
    assert errors == []
    assert (shared / NAME).read_text() in contents
    assert [p.name for p in shared.iterdir()] == [NAME]   # no temporary file left


def test_an_unwritable_shared_cache_costs_a_probe_not_the_pod(tmp_path):
    probed = tmp_path / "pod"
    probed.mkdir()
    (probed / NAME).write_text("<qemuCaps/>")
    blocker = tmp_path / "shared"
    blocker.write_text("a file where the cache directory should be")
    offer_capabilities(probed, blocker)   # no exception
    assert blocker.read_text().startswith("a file")


def test_the_private_libvirtd_runs_qemu_as_root_without_virtlogd_cgroups_or_namespaces(tmp_path):
    layout = lv.Layout(tmp_path / "libvirt")
    lv._prepare(layout)   # the host's /etc/libvirt, copied, then netbind's lines appended
    settings = qemu_settings(layout.dir("/etc/libvirt") / "qemu.conf")
    assert settings.items() >= {**PRIVATE, "user": '"root"', "group": '"root"'}.items(), settings
