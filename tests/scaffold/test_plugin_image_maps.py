"""Installed plugins add image map entries (entry point group netbind.image_maps): found through
importlib.metadata from a real dist-info on sys.path, merged after the default map, before a user file."""
from __future__ import annotations

import pytest

from netbind.node.images import ImageMap, ImageMapError


def _install(site, name: str, images_yaml: str | None) -> None:
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[netbind.image_maps]\n{name} = {name}_pkg\n")
    package = site / f"{name}_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    if images_yaml is not None:
        (package / "images.yaml").write_text(images_yaml)


def test_an_installed_plugins_map_is_merged_and_a_user_file_wins(tmp_path, monkeypatch):
    _install(tmp_path, "nbmapa", "sidecars:\n  quay.io/x/a:\n    image: localhost/a:latest\n"
                                 "cni:\n  a-cni: /bin/true\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("NETBIND_IMAGES", raising=False)
    mapping = ImageMap.load()
    assert mapping.sidecar_image("quay.io/x/a:v1") == ("localhost/a:latest",
                                                      "quay.io/x/a (plugin nbmapa (nbmapa_pkg/images.yaml))")
    assert mapping.cni["a-cni"] == "/bin/true"
    assert mapping.cni["macvtap"] == "netbind-cni-macvtap"                     # the default map stays
    user = tmp_path / "mine.yaml"
    user.write_text("sidecars:\n  quay.io/x/a:\n    image: localhost/a:dev\n")
    assert ImageMap.load(user).sidecar_image("quay.io/x/a")[0] == "localhost/a:dev"


def test_a_plugin_without_its_map_file_is_a_clear_error(tmp_path, monkeypatch):
    _install(tmp_path, "nbmapb", None)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImageMapError, match=r"plugin nbmapb \(nbmapb_pkg/images.yaml\): cannot be read .*reinstall"):
        ImageMap.load()
