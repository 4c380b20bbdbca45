"""The plugin framework in-process (injected env/stdin/stdout): dispatch, errors, versions."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from netbind.cni import (
    SUPPORTED_VERSIONS,
    CNIError,
    Interface,
    IPConfig,
    Plugin,
    Result,
    Route,
)
from netbind.cni import _json

BASE_ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "cid1", "CNI_NETNS": "/run/netns/x",
            "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}


def conf(version="1.0.0", **extra):
    return json.dumps({"cniVersion": version, "name": "net1", "type": "t", **extra})


def make_plugin(calls=None):
    calls = calls if calls is not None else []
    plugin = Plugin("test-plugin", about="a test plugin")

    @plugin.add
    def add(args):
        calls.append(("ADD", args))
        return Result(args.cni_version, [Interface("eth0", "02:00:00:00:00:01", args.netns)],
                      [IPConfig("10.1.0.2/24", "10.1.0.1", 0)], [Route("0.0.0.0/0", "10.1.0.1")])

    @plugin.delete
    def delete(args):
        calls.append(("DEL", args))

    @plugin.check
    def check(args):
        calls.append(("CHECK", args))

    return plugin


def run(plugin, env, stdin):
    out, err = io.StringIO(), io.StringIO()
    code = plugin.run(env=env, stdin=stdin, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("command,missing", [
    ("ADD", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]),
    ("CHECK", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]),
    ("DEL", ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"]),
    ("GC", ["CNI_PATH"]),
    ("STATUS", ["CNI_PATH"]),
    ("VERSION", []),
])
def test_required_env_per_command(command, missing):
    code, out, _ = run(make_plugin(), {"CNI_COMMAND": command}, conf("1.1.0"))
    if not missing:
        assert code == 0 and json.loads(out)["supportedVersions"] == list(SUPPORTED_VERSIONS)
        return
    assert code == 1
    assert json.loads(out) == {"code": 4,
                               "msg": f"required env variables [{','.join(missing)}] missing"}


def test_no_command_prints_about_to_stderr_only():
    code, out, err = run(make_plugin(), {}, b"")
    assert (code, out) == (0, "")
    assert "a test plugin" in err and "1.1.0" in err


@pytest.mark.parametrize("stdin,code,fragment", [
    (b"{not json", 6, "not valid JSON"),
    (b"[1, 2]", 6, "must be a JSON object"),
    (b"", 6, "not valid JSON"),
    (json.dumps({"cniVersion": "1.0.0", "type": "t"}), 7, "missing network name"),
    (json.dumps({"cniVersion": "1.0.0", "name": "a b", "type": "t"}), 7, "invalid characters"),
    (conf("2.0.0"), 1, "incompatible CNI versions"),
    (" " * (4 * 2**20) + conf(), 5, "larger than 4 MiB"),   # valid JSON, but past any real netconf
])
def test_bad_input_gives_spec_error(stdin, code, fragment):
    calls = []
    rc, out, _ = run(make_plugin(calls), BASE_ENV, stdin)
    error = json.loads(out)
    assert rc == 1 and error["code"] == code and fragment in error["msg"]


@pytest.mark.parametrize("prev", [{"cniVersion": "0.3.1", "ips": "nope"}, {"cniVersion": "x"}, []])
def test_malformed_prev_result_is_a_decoding_error(prev):
    plugin = Plugin("p")

    @plugin.add
    def add(args):
        return args.prev_result

    rc, out, _ = run(plugin, BASE_ENV, conf("1.0.0", prevResult=prev))
    assert rc == 1 and json.loads(out)["code"] == 6 and "prevResult" in json.loads(out)["msg"]


def test_bad_ifname_and_container_id():
    for key, value in (("CNI_IFNAME", "a/b"), ("CNI_IFNAME", "x" * 16), ("CNI_CONTAINERID", "-x")):
        rc, out, _ = run(make_plugin(), {**BASE_ENV, key: value}, conf())
        assert rc == 1 and json.loads(out)["code"] == 4, (key, value, out)


def test_incompatible_version_details_match_go_format():
    _, out, _ = run(make_plugin(), BASE_ENV, conf("2.0.0"))
    assert json.loads(out)["details"] == (
        'config is "2.0.0", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]')


@pytest.mark.parametrize("command,too_old", [("CHECK", "0.3.1"), ("GC", "1.0.0"), ("STATUS", "1.0.0")])
def test_commands_need_a_recent_enough_config(command, too_old):
    rc, out, _ = run(make_plugin(), {**BASE_ENV, "CNI_COMMAND": command}, conf(too_old))
    assert rc == 1 and json.loads(out)["code"] == 1
    assert f"does not allow {command}" in json.loads(out)["msg"]


def test_unknown_command():
    rc, out, _ = run(make_plugin(), {**BASE_ENV, "CNI_COMMAND": "FOO"}, conf())
    assert rc == 1 and json.loads(out) == {"code": 4, "msg": "unknown CNI_COMMAND: FOO"}


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_add_prints_result_in_config_version(version):
    rc, out, _ = run(make_plugin(), BASE_ENV, conf(version))
    assert rc == 0
    printed = json.loads(out)
    assert printed["cniVersion"] == version
    if version in ("0.1.0", "0.2.0"):
        assert printed["ip4"] == {"ip": "10.1.0.2/24", "gateway": "10.1.0.1",
                                  "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]}
        assert "interfaces" not in printed
    elif version in ("0.3.0", "0.3.1", "0.4.0"):
        assert printed["ips"] == [{"version": "4", "interface": 0, "address": "10.1.0.2/24",
                                   "gateway": "10.1.0.1"}]
    else:
        assert printed["ips"] == [{"interface": 0, "address": "10.1.0.2/24", "gateway": "10.1.0.1"}]
    assert Result.from_dict(printed).ips[0].address == "10.1.0.2/24"


@pytest.mark.parametrize("prev_version", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("conf_version", ["0.4.0", "1.0.0", "1.1.0"])
def test_prev_result_read_from_any_version(prev_version, conf_version):
    original = Result(prev_version, [Interface("eth0", "02:00:00:00:00:09", "/run/netns/p")],
                      [IPConfig("fd00::5/64", "fd00::1"), IPConfig("10.9.0.5/16", "10.9.0.1")],
                      [Route("10.0.0.0/8", "10.9.0.1")])
    seen = []
    plugin = Plugin("p")

    @plugin.check
    def check(args):
        seen.append(args.prev_result)

    rc, out, _ = run(plugin, {**BASE_ENV, "CNI_COMMAND": "CHECK"},
                     conf(conf_version, prevResult=original.to_dict(prev_version)))
    assert (rc, out) == (0, "")
    prev = seen[0]
    assert {ip.address for ip in prev.ips} == {"fd00::5/64", "10.9.0.5/16"}
    assert prev.routes == [Route("10.0.0.0/8", "10.9.0.1")]
    assert [i.name for i in prev.interfaces] == ([] if prev_version < "0.3.0" else ["eth0"])


def test_handler_cni_error_and_crash():
    plugin = Plugin("p")

    @plugin.add
    def add(args):
        raise CNIError(120, "custom failure", "more")

    @plugin.delete
    def delete(args):
        raise RuntimeError("boom")

    rc, out, _ = run(plugin, BASE_ENV, conf())
    assert rc == 1 and json.loads(out) == {"code": 120, "msg": "custom failure", "details": "more"}
    rc, out, err = run(plugin, {**BASE_ENV, "CNI_COMMAND": "DEL"}, conf())
    assert rc == 1 and json.loads(out) == {"code": 999, "msg": "boom"}
    assert "Traceback" not in err and "RuntimeError: boom" in err


def test_args_helpers_and_log_file(tmp_path):
    seen = {}
    plugin = Plugin("p")

    @plugin.add
    def add(args):
        seen.update(cni=args.cni_args, env=args.env_args, rc=args.runtime_config, path=args.path)
        args.log("hello log")
        return None

    log = tmp_path / "plugin.log"
    env = {**BASE_ENV, "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=p1", "CNI_PATH": "/a:/b"}
    rc, out, err = run(plugin, env, conf("1.1.0", args={"cni": {"logicNetworkName": "blue"}},
                                         runtimeConfig={"mac": "02:00:00:00:00:01"},
                                         logFile=str(log)))
    assert rc == 0 and out == '{\n    "cniVersion": "1.1.0"\n}' and err == ""
    assert seen == {"cni": {"logicNetworkName": "blue"},
                    "env": {"IgnoreUnknown": "1", "K8S_POD_NAME": "p1"},
                    "rc": {"mac": "02:00:00:00:00:01"}, "path": ["/a", "/b"]}
    assert log.read_text().endswith(" hello log\n")


def test_gc_and_status_without_handlers_are_silent_no_ops():
    for command in ("GC", "STATUS"):
        assert run(make_plugin(), {**BASE_ENV, "CNI_COMMAND": command}, conf("1.1.0")) == (0, "", "")


def test_gc_handler_gets_valid_attachments():
    seen = []
    plugin = Plugin("p")

    @plugin.gc
    def gc(args):
        seen.append(args.valid_attachments)

    attachments = [{"containerID": "c1", "ifname": "eth0"}]
    env = {"CNI_COMMAND": "GC", "CNI_PATH": "/x"}
    assert run(plugin, env, conf("1.1.0", **{"cni.dev/valid-attachments": attachments}))[0] == 0
    assert run(plugin, env, conf("1.1.0"))[0] == 0
    assert seen == [attachments, None]


@pytest.mark.parametrize("value", [
    {"a": [1, 2.5, True, False, None], "b": {}, "c": []},
    {"msg": "failed <nil> & co \u2028 é \"q\" \\ \n\t\x01"},
    [], {}, "", 0, -3, 1e100,
])
def test_json_matches_stdlib_semantics(value):
    for indent in (None, 4):
        text = _json.dumps(value, indent=indent)
        assert json.loads(text) == value
        assert _json.loads(text) == value
    assert "<" not in _json.dumps(value) and ">" not in _json.dumps(value)


def test_json_go_layout():
    assert _json.dumps({"cniVersion": "1.0.0"}, indent=4) == '{\n    "cniVersion": "1.0.0"\n}'
    assert _json.dumps({"a": [1, {}]}) == '{"a":[1,{}]}'
    with pytest.raises(_json.JSONError):
        _json.loads("NaN")
    with pytest.raises(_json.JSONError):
        _json.loads('{"a": 1} trailing')


def test_plugin_import_stays_light():
    code = ("import sys, netbind.plugins.passt.cni; "
            "heavy = {'json', 're', 'ctypes', 'pyroute2', 'pydantic', 'grpc', 'lxml', 'click', "
            "'rich', 'dataclasses', 'typing', 'subprocess'} & set(sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
