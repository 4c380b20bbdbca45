"""`netbind cluster register|list|unregister|check` through the CLI: the bundle of -f and the
options reach the cluster client (a fake API client under the real Cluster, as in
test_cluster_requests); bad input and a bad kubeconfig are one line and exit 2."""
import json

import pytest
from click.testing import CliRunner

import netbind.cluster
from netbind.cli import cli

from test_cluster_requests import FakeApi, kubevirt


@pytest.fixture
def api(monkeypatch):
    fake = FakeApi(kubevirt())
    fake.connected = []

    def connect(kubeconfig=None, context=None):
        fake.connected.append((kubeconfig, context))
        return netbind.cluster.Cluster(fake, fake)

    monkeypatch.setattr(netbind.cluster, "connect", connect)
    return fake


def _cluster(*args):
    return CliRunner().invoke(cli, ["cluster", *args])


def test_register_list_check_and_unregister_send_the_bundle_of_f(api):
    kube = ["--kubeconfig", "/k/config", "--context", "lab"]
    done = _cluster("register", "-f", "examples/passt/", *kube)
    assert done.exit_code == 0, done.output
    assert "NetworkAttachmentDefinition default/netbindingpasst: created" in done.output
    done = _cluster("list", "-f", "examples/passt/", *kube)
    assert done.exit_code == 0 and list(json.loads(done.output)) == ["passt"], done.output
    done = _cluster("check", "-f", "examples/passt/", *kube)
    assert done.exit_code == 0 and done.output == "passt: ok\n", done.output
    done = _cluster("unregister", "-f", "examples/passt/", "--binding", "passt", *kube)
    assert done.exit_code == 0, done.output
    assert done.output.splitlines()[0] == "passt: unregistered"
    assert api.connected == [("/k/config", "lab")] * 4


@pytest.mark.parametrize("command", ["register", "unregister", "list", "check"])
def test_bad_manifests_are_named_before_any_connection(api, command, tmp_path):
    missing = tmp_path / "nowhere.yaml"
    done = _cluster(command, "-f", str(missing))
    assert done.exit_code == 2 and "nowhere.yaml" in done.output, done.output
    assert "Traceback" not in done.output and api.connected == []


@pytest.mark.parametrize("command", ["register", "unregister", "list", "check"])
def test_a_missing_kubeconfig_is_one_line_and_exit_2(command, tmp_path):
    done = _cluster(command, "-f", "examples/passt/", "--kubeconfig", str(tmp_path / "no-config"))
    assert done.exit_code == 2, done.output
    assert done.output.startswith("error: kubeconfig: ") and "--kubeconfig FILE" in done.output, done.output
