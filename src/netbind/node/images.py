"""The image map: local stand-ins for the images (and CNI plugin types) a manifest names.

Sidecar images resolve to a local container image (``image:``, run with podman when it is in the
local store) and/or a command (``command:``, an executable on PATH, next to the running
``netbind``, or an absolute path: the host-process fallback); containerDisk images to a guest (by default the tiny guest), a disk file,
or the image itself when it is in the local podman store (``netbind.node.oci_disks``); CNI types to
executables, exposed to the CNI executor as a directory of symlinks. The default map ships with
the package (``images.yaml``); a user file (``--images FILE`` or ``$NETBIND_IMAGES``) overrides it
entry by entry.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

ENV_VAR = "NETBIND_IMAGES"
# Installed plugin projects (``netbind new``) add their own entries: an entry point in this group
# names a package whose ``images.yaml`` is merged after the default map and before a user's file.
ENTRY_POINT_GROUP = "netbind.image_maps"


class ImageMapError(ValueError):
    """An image cannot be resolved or the map file is wrong; the message names the fix."""


def _untagged(ref: str) -> str:
    ref = ref.split("@", 1)[0]
    name, _, tag = ref.rpartition(":")
    return name if name and "/" not in tag else ref


def _which(word: str) -> str | None:
    if os.path.isabs(word):
        return word if os.access(word, os.X_OK) else None
    beside = Path(sys.executable).parent / word   # console scripts of the same venv
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(word)


def plugin_image_maps() -> list[tuple[str, Any]]:
    """(where, data) of the image maps installed plugin packages register, sorted by entry point name."""
    from importlib.metadata import entry_points

    found = []
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        where = f"plugin {entry.name} ({entry.value}/images.yaml)"
        try:
            text = resources.files(entry.value).joinpath("images.yaml").read_text()
        except (ModuleNotFoundError, OSError) as exc:
            raise ImageMapError(f"{where}: cannot be read ({exc}); reinstall the plugin (pip install -e DIR)"
                                " or uninstall it") from None
        try:
            found.append((where, yaml.safe_load(text)))
        except yaml.YAMLError as exc:
            raise ImageMapError(f"{where}: not YAML: {str(exc).splitlines()[0]}") from None
    return found


@dataclass(frozen=True)
class SidecarImage:
    image: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    source: str = ""            # which map entry (and file) matched


GUESTS = ("tiny", "cloud")


@dataclass(frozen=True)
class DiskImage:
    image: str
    guest: str = "tiny"         # tiny: the busybox initramfs booted directly; cloud: the reference cloud guest
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str = ""
    source: str = ""
    disk: str | None = None     # the user's own disk file (qcow2 or raw), booted through an overlay
    local_image: str | None = None   # the ID of the image in the local podman store, whose /disk/ file boots

    @property
    def boots_disk(self) -> bool:
        """Booted from its disk by the firmware, as in KubeVirt (else the kernel is booted directly)."""
        return self.disk is not None or self.local_image is not None or (self.guest == "cloud" and self.kernel is None)


@dataclass
class ImageMap:
    sidecars: dict[str, dict[str, Any]] = field(default_factory=dict)
    disks: dict[str, dict[str, Any]] = field(default_factory=dict)
    cni: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, user_file: str | os.PathLike | None = None) -> "ImageMap":
        mapping = cls()
        default = resources.files("netbind.node").joinpath("images.yaml")
        mapping._merge(yaml.safe_load(default.read_text()), "netbind default image map")
        for where, data in plugin_image_maps():
            mapping._merge(data, where)
        user_file = user_file or os.environ.get(ENV_VAR)
        if user_file:
            from netbind.api.loading import ManifestError, read_data_file

            try:
                data = read_data_file(user_file)
            except ManifestError as exc:
                raise ImageMapError(f"image map {exc}") from None
            try:
                mapping._merge(data, str(user_file), user=True)
            except ImageMapError as exc:
                raise ImageMapError(f"image map {exc}") from None
        return mapping

    def _merge(self, data: Any, where: str, user: bool = False) -> None:
        if data is None:
            return
        if not isinstance(data, Mapping) or set(data) - {"sidecars", "containerDisks", "cni"}:
            unknown = sorted(map(repr, set(data) - {"sidecars", "containerDisks", "cni"})) \
                if isinstance(data, Mapping) else []
            raise ImageMapError(f"{where}: expected a mapping with sidecars, containerDisks and/or cni"
                                + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
        for section in ("sidecars", "containerDisks", "cni"):
            table = data.get(section)
            if table is not None and (not isinstance(table, Mapping)
                                      or not all(isinstance(k, str) and k and k.isprintable() for k in table)):
                raise ImageMapError(f"{where}: {section}: expected a mapping of image references (or CNI "
                                    "types) to entries")
        for ref, entry in (data.get("sidecars") or {}).items():
            if isinstance(entry, str):
                entry = {"command": [entry]}
            if not isinstance(entry, Mapping) or not ({"command", "image"} & set(entry)):
                raise ImageMapError(f"{where}: sidecars.{ref}: give image: (a local image) and/or command:"
                                    " (a host process), e.g. command: [my-sidecar, --verbose]")
            command = entry.get("command", ["(none)"])
            if not isinstance(command, list) or not command or not all(isinstance(w, str) and w for w in command):
                raise ImageMapError(f"{where}: sidecars.{ref}.command: give a list of words,"
                                    " e.g. command: [my-sidecar, --verbose]")
            if "image" in entry and (not isinstance(entry["image"], str) or not entry["image"]):
                raise ImageMapError(f"{where}: sidecars.{ref}.image: give a local image reference,"
                                    " e.g. image: localhost/my-sidecar:latest")
            env = entry.get("env")
            if env is not None and (not isinstance(env, Mapping) or not all(
                    isinstance(k, str) and k and isinstance(v, (str, int, float, bool)) for k, v in env.items())):
                raise ImageMapError(f"{where}: sidecars.{ref}.env: give a mapping of names to values,"
                                    " e.g. env: {LOG_LEVEL: debug}")
            self.sidecars[ref] = {**entry, "_source": where}
        for ref, entry in (data.get("containerDisks") or {}).items():
            if not isinstance(entry, Mapping):
                raise ImageMapError(f"{where}: containerDisks.{ref}: expected a mapping (guest: tiny|cloud,"
                                    " disk: FILE, or kernel/initrd/cmdline)")
            for member in ("guest", "kernel", "initrd", "cmdline", "disk"):
                if member in entry and not isinstance(entry[member], str):
                    raise ImageMapError(f"{where}: containerDisks.{ref}.{member}: expected a string"
                                        + (" (a file path)" if member in ("kernel", "initrd", "disk") else ""))
            if entry.get("guest", "tiny") not in GUESTS:
                raise ImageMapError(f"{where}: containerDisks.{ref}.guest: {entry['guest']!r} is not a guest;"
                                    f" expected one of {', '.join(GUESTS)}")
            if "disk" in entry and ({"kernel", "initrd", "guest"} & set(entry)):
                raise ImageMapError(f"{where}: containerDisks.{ref}: disk: boots the file itself; drop"
                                    " guest/kernel/initrd from this entry")
            self.disks[ref] = {**entry, "_source": where, "_user": user}
        for plugin_type, executable in (data.get("cni") or {}).items():
            if not isinstance(executable, str) or not executable:
                raise ImageMapError(f"{where}: cni.{plugin_type}: expected an executable name or path")
            self.cni[plugin_type] = executable
        self.files.append(where)

    @staticmethod
    def _lookup(table: Mapping[str, Any], ref: str) -> tuple[str, Any] | None:
        for key in (ref, _untagged(ref)):
            if key in table:
                return key, table[key]
        return None

    def sidecar_image(self, image: str) -> tuple[str, str] | None:
        """The local image the map names for a sidecar image, with the entry that says so."""
        found = self._lookup(self.sidecars, image)
        if found is None or "image" not in found[1]:
            return None
        key, entry = found
        return entry["image"], f"{key} ({entry['_source']})"

    def sidecar(self, image: str) -> SidecarImage:
        found = self._lookup(self.sidecars, image)
        if found is not None and "command" not in found[1]:
            raise ImageMapError(f"sidecar image {image!r} maps only to the image {found[1]['image']!r}"
                                f" ({found[1]['_source']}), no command to run it as a host process")
        if found is None:
            raise ImageMapError(
                f"sidecar image {image!r} is not in the image map ({', '.join(self.files)}); add it to a"
                f" file given with --images or ${ENV_VAR}:\n  sidecars:\n    {_untagged(image)}:\n"
                "      command: [/path/to/your-sidecar]")
        key, entry = found
        argv = list(entry["command"])
        resolved = _which(argv[0])
        if resolved is None:
            raise ImageMapError(f"sidecar image {image!r} maps to {argv[0]!r} ({entry['_source']}), which is"
                                " not an executable on PATH")
        env = {str(k): str(v) for k, v in (entry.get("env") or {}).items()}
        return SidecarImage(image, (resolved, *argv[1:]), env, f"{key} ({entry['_source']})")

    def disk(self, image: str, guest: str | None = None,
             local_image: Callable[[str], str | None] | None = None) -> DiskImage:
        """What boots for a containerDisk image. In order: ``guest`` (``up --guest``) for every image;
        the user's own entry for this reference (``--images``/``$NETBIND_IMAGES``, not its ``*``); the
        image itself when ``local_image(ref)`` finds it in the local podman store (its ID); the other
        entries (plugins' maps, the default map, then ``*``)."""
        if guest is not None:
            if guest not in GUESTS:
                raise ImageMapError(f"--guest {guest!r}: expected one of {', '.join(GUESTS)}")
            return DiskImage(image, guest, source=f"--guest {guest}")
        found = self._lookup(self.disks, image)
        if local_image is not None and image and not (found is not None and found[1].get("_user")):
            image_id = local_image(image)
            if image_id:
                return DiskImage(image, source="the image in the local podman store", local_image=image_id)
        found = found or (("*", self.disks["*"]) if "*" in self.disks else None)
        if found is None:
            raise ImageMapError(f"containerDisk image {image!r} is not in the image map and there is no '*' entry")
        key, entry = found
        where = f"{key} ({entry['_source']})"
        disk = entry.get("disk")
        if disk is not None:
            path = Path(disk).expanduser()
            if not path.is_file():
                raise ImageMapError(f"containerDisk image {image!r} maps to the disk file {disk!r} ({where}),"
                                    " which does not exist; give the path of a qcow2 or raw image")
            disk = str(path.resolve())
        return DiskImage(image, str(entry.get("guest", "tiny")), entry.get("kernel"), entry.get("initrd"),
                         str(entry.get("cmdline", "")), where, disk)

    def cni_bin_dir(self, directory: Path) -> Path:
        """A directory of symlinks named after the mapped CNI types (put first on the CNI path)."""
        directory.mkdir(parents=True, exist_ok=True)
        for plugin_type, executable in self.cni.items():
            target = _which(executable)
            link = directory / plugin_type
            if target is None:
                link.unlink(missing_ok=True)
                continue
            if link.is_symlink() and os.readlink(link) == target:
                continue
            tmp = directory / f".{plugin_type}.tmp"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(target)
            tmp.replace(link)
        return directory
