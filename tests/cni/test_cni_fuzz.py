"""Every binding CNI plugin's stdin and environment fuzzed (root): the plugins run as processes in
a node namespace against a real pod namespace. Each call answers with exit 0 or the spec's error
JSON, without a traceback or hang, and leaves the pod, the node, the host and the dataDir as they
were (a successful ADD is DELeted). ``bench/fuzz_protocols.py`` runs the same at scale."""
from __future__ import annotations

import io
import json

import pytest
from hypothesis import HealthCheck, given, settings

from netbind.cni import Plugin
from netbind.plugins.cni_bundle import PLUGINS
from netbind.testing import require_root
from netbind.testing.fuzz import CNIWorld, check_cni, cni_cases, cni_corpus


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    require_root()
    w = CNIWorld(tmp_path_factory.mktemp("nb-fz"))
    try:
        yield w
    finally:
        w.close()


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_hostile_corpus(world, plugin):
    failures = {}
    for case in cni_corpus(world, plugin):
        verdict = check_cni(world, plugin, case)
        if verdict.problems:
            failures[case.name] = verdict.problems
    assert failures == {}


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_random_calls(world, plugin):
    @settings(max_examples=15, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(cni_cases(world, plugin))
    def one(case):
        assert check_cni(world, plugin, case).problems == []

    one()


@pytest.mark.parametrize("path", ["/proc/self/ns/net", "/proc/thread-self/ns/net"])
@pytest.mark.parametrize("command", ["ADD", "CHECK", "DEL"])
def test_the_plugins_own_namespace_never_reaches_a_handler(path, command):
    plugin, called = Plugin("p"), []
    for register in (plugin.add, plugin.check, plugin.delete):
        register(lambda args: called.append(args))
    out = io.StringIO()
    rc = plugin.run(env={"CNI_COMMAND": command, "CNI_CONTAINERID": "c", "CNI_NETNS": path, "CNI_IFNAME": "eth0",
                         "CNI_PATH": "/x"},
                    stdin=b'{"cniVersion": "1.0.0", "name": "n"}', stdout=out, stderr=io.StringIO())
    error = json.loads(out.getvalue())
    assert (rc, error["code"], called) == (1, 4, [])
    assert "plugin's own network namespace" in error["msg"] and "CNI_NETNS" in error["msg"]


@pytest.mark.parametrize("stdin,fragment", [
    (b"[" * 50000 + b"]" * 50000, "nested too deeply"),
    (b'{"cniVersion": {}, "name": "n"}', "cniVersion must be a string"),
    (b'{"cniVersion": ["1.0.0"], "name": "n"}', "cniVersion must be a string"),
])
def test_undecodable_netconf_is_a_decoding_error(stdin, fragment):
    out = io.StringIO()
    rc = Plugin("p").run(env={"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0", "CNI_PATH": "/x"},
                         stdin=stdin, stdout=out, stderr=io.StringIO())
    error = json.loads(out.getvalue())
    assert rc == 1 and error["code"] == 6 and fragment in error["msg"]
