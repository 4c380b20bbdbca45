"""The native passt path: which path `up` takes and why, and the stack's pure parts (no root)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from netbind.node import libvirt as lv
from netbind.node import native, stack
from netbind.node.stack import NativeStack, StackError, StackInputs

from .test_libvirt_units import PRIVATE, qemu_settings

HOST = NativeStack("host", "/usr/sbin/libvirtd", Path("/etc/libvirt"), "/usr/bin/passt",
                   {"libvirt": "11.3.0", "qemu": "10.0.2", "passt": "/usr/bin/passt"})


def _provisioned(root: Path) -> NativeStack:
    return NativeStack("provisioned", str(root / "root/usr/sbin/libvirtd"), root / "root/etc/libvirt",
                       str(root / "bin/passt"), {"libvirt": "11.3.0-2~bpo12+1"}, root=root, seconds=18.5)


class Provisioner:
    def __init__(self, result: NativeStack | Exception) -> None:
        self.result, self.calls = result, 0

    def __call__(self) -> NativeStack:
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def test_substitute_is_taken_when_forced_even_if_native_is_available():
    provision = Provisioner(HOST)
    path = native.choose("substitute", HOST, HOST, provision)
    assert not path.native and "forced" in path.reason and provision.calls == 0
    assert "recipe R6a" in path.describe()


def test_auto_prefers_the_hosts_own_packages_then_the_cached_stack(tmp_path):
    cached = _provisioned(tmp_path / "abc")
    provision = Provisioner(StackError("must not be called"))
    on_host = native.choose("auto", HOST, cached, provision)
    assert on_host.native and on_host.stack is HOST and "this host's packages" in on_host.reason
    from_cache = native.choose("auto", None, cached, provision)
    assert from_cache.native and from_cache.stack is cached and str(tmp_path / "abc") in from_cache.reason
    assert provision.calls == 0


def test_auto_without_a_stack_substitutes_says_what_is_missing_and_downloads_nothing():
    provision = Provisioner(HOST)
    path = native.choose("auto", None, None, provision)
    assert not path.native and provision.calls == 0
    assert "libvirt >= 11" in path.reason and "--vhost-user" in path.reason and "make stack" in path.reason


def test_forced_native_provisions_the_stack_when_missing(tmp_path):
    provision = Provisioner(_provisioned(tmp_path / "k"))
    path = native.choose("native", None, None, provision)
    assert path.native and provision.calls == 1 and "provisioned now in 18.5 s" in path.reason
    assert path.to_json()["path"] == "native"


def test_forced_native_fails_with_the_provisioning_error():
    with pytest.raises(StackError, match="mirror"):
        native.choose("native", None, None, Provisioner(StackError("the Debian mirror refused")))


def test_mode_comes_from_the_option_then_the_environment(monkeypatch):
    monkeypatch.setenv(native.ENV, "substitute")
    assert native.requested_mode(None) == "substitute"
    assert native.requested_mode("native") == "native"
    monkeypatch.delenv(native.ENV)
    assert native.requested_mode(None) == "auto"
    monkeypatch.setenv(native.ENV, "fast")
    with pytest.raises(ValueError, match="NETBIND_PASST.*auto, native, substitute"):
        native.requested_mode(None)


def test_inputs_key_changes_with_every_version_and_the_recipe():
    base = StackInputs("11.3.0-2~bpo12+1", "1:10.0.2", "1.16.3", "0.0~git20250503")
    keys = {base.key(), StackInputs("11.3.0-3~bpo12+1", "1:10.0.2", "1.16.3", "0.0~git20250503").key(),
            StackInputs("11.3.0-2~bpo12+1", "1:10.0.3", "1.16.3", "0.0~git20250503").key(),
            StackInputs("11.3.0-2~bpo12+1", "1:10.0.2", "1.16.3", "0.0~git20250801").key(),
            StackInputs("11.3.0-2~bpo12+1", "1:10.0.2", "1.16.3", "0.0~git20250503", recipe=99).key()}
    assert len(keys) == 5 and base.key() == StackInputs(**json.loads(json.dumps(base.__dict__))).key()


def test_private_apt_never_reads_the_systems_sources_or_dpkg_status(tmp_path):
    apt = stack.PrivateApt(tmp_path / "apt")
    apt.prepare()
    options = apt.options()
    pairs = dict(o.split("=", 1) for o in options if "=" in o)
    assert pairs["Dir::Etc::SourceList"] == "/dev/null"
    for key in ("Dir::Etc::SourceParts", "Dir::State::Lists", "Dir::Cache", "Dir::State::status",
                "Dir::Etc::PreferencesParts"):
        assert pairs[key].startswith(str(tmp_path)), key
    sources = (tmp_path / "apt/sources.list.d/netbind.sources").read_text()
    assert "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports" in sources
    assert "Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: trixie" in sources
    assert sources.count("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg") == 2
    assert (tmp_path / "apt/status").read_text() == ""


def test_newest_source_takes_the_highest_version_with_its_checksums():
    text = ("Package: passt\nVersion: 0.0~git20250503.587980c-2\nChecksums-Sha256:\n aa 1 passt_a.dsc\n"
            " bb 2 passt_a.orig.tar.xz\n\n"
            "Package: passt\nVersion: 0.0~git20250503.587980c-2+deb13u1\nChecksums-Sha256:\n"
            " cc 3 passt_b.dsc\n dd 4 passt_b.orig.tar.xz\n ee 5 passt_b.debian.tar.xz\nHomepage: https://passt.top/\n")
    assert stack.newest_source(text) == {"version": "0.0~git20250503.587980c-2+deb13u1", "files": {
        "passt_b.dsc": "cc", "passt_b.orig.tar.xz": "dd", "passt_b.debian.tar.xz": "ee"}}
    assert stack.newest_source("W: no source\n") is None


def test_cached_stack_needs_a_complete_build_named_by_current_json(tmp_path):
    base = tmp_path / "stack"
    assert stack.cached_stack(tmp_path) is None
    (base / "0123456789abcdef").mkdir(parents=True)
    (base / "current.json").write_text(json.dumps({"key": "0123456789abcdef"}))
    assert stack.cached_stack(tmp_path) is None        # interrupted build: no manifest
    (base / "0123456789abcdef/manifest.json").write_text(json.dumps({"versions": {"libvirt": "11.3.0"}}))
    found = stack.cached_stack(tmp_path)
    assert found is not None and found.key == "0123456789abcdef" and found.origin == "provisioned"
    assert found.passt == str(base / "0123456789abcdef/bin/passt")
    assert found.lib_dir == base / "0123456789abcdef/root/usr/lib/x86_64-linux-gnu"
    bound = {host: src for src, host in found.binds}
    assert bound["/usr/bin/qemu-system-x86_64"] == base / "0123456789abcdef/root/usr/bin/qemu-system-x86_64"
    assert set(bound) == set(stack.STACK_BINDS)


def test_versions_are_parsed_from_tool_output():
    assert stack.parse_version("libvirtd (libvirt) 11.3.0") == (11, 3, 0)
    assert stack.parse_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)") == (7, 2, 22)
    assert stack.parse_version("passt unknown version") is None



def test_the_native_libvirtd_gets_the_same_private_settings_and_its_default_qemu_user(tmp_path):
    etc = tmp_path / "stack-etc"
    (etc / "qemu").mkdir(parents=True)
    (etc / "qemu.conf").write_text('#user = "libvirt-qemu"\n')
    stack_ = NativeStack("provisioned", "/nonexistent/libvirtd", etc, "/nonexistent/passt", {}, root=tmp_path / "k")
    layout = lv.Layout(tmp_path / "libvirt")
    native._prepare(layout, stack_, os.getuid(), os.getgid())
    settings = qemu_settings(layout.dir("/etc/libvirt") / "qemu.conf")
    # no user/group: QEMU runs as the build's libvirt-qemu, which passt (started by libvirt) needs
    assert settings == PRIVATE
