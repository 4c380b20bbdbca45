"""Plugin (plugin.kubevirt.io/v1alpha1) admission, Go semantics it relies on, and the hook plan."""
from __future__ import annotations

import pytest

from netbind.admission.plugin import (GATE_DISABLED, SOCKET_PATH_POLICY, UNCLEAN_SOCKET_PATH, VALIDATION_POLICY,
                                      WARNING_POLICY, WEBHOOK, PluginNotServed, validate_plugin)
from netbind.api.models import KubeVirtConfiguration, Plugin
from netbind.api.versions import LATEST, V1_4
from netbind.gocompat import GoDurationError, go_clean_path, parse_go_duration
from netbind.launcher.plugin_hooks import (CEL_NOT_EVALUATED, domain_hook_plan,
                                           socket_path_outside_plugin_dir)

GATED = KubeVirtConfiguration.model_validate({"developerConfiguration": {"featureGates": ["Plugins"]}})
SOCK = "/var/run/kubevirt-plugin/p/hook.sock"


def plugin(name="p", **spec) -> Plugin:
    return Plugin.model_validate({"apiVersion": "plugin.kubevirt.io/v1alpha1", "kind": "Plugin",
                                  "metadata": {"name": name}, "spec": spec})


def sidecar(path=SOCK, **extra):
    return {"sidecar": {"socketPath": path}, **extra}


def causes(p: Plugin):
    return [c.to_json() for c in validate_plugin(p, GATED, LATEST).causes]


# --- Go semantics ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "clean"), [
    ("/var/run/kubevirt-plugin/my-plugin/../other/hook.sock", "/var/run/kubevirt-plugin/other/hook.sock"),
    ("/var/run/kubevirt-plugin/my-plugin/./hook.sock", "/var/run/kubevirt-plugin/my-plugin/hook.sock"),
    ("/var/run/kubevirt-plugin/my-plugin//hook.sock", "/var/run/kubevirt-plugin/my-plugin/hook.sock"),
    ("/var/run/kubevirt-plugin/my-plugin/hook.sock/", "/var/run/kubevirt-plugin/my-plugin/hook.sock"),
    ("", "."), ("/..", "/"), ("a/../..", ".."), ("//a", "/a"), ("./a/", "a"), ("/", "/"),
])
def test_go_clean_path(path, clean):
    assert go_clean_path(path) == clean


@pytest.mark.parametrize(("text", "ns"), [
    ("30s", 30 * 10**9), ("1m30s", 90 * 10**9), ("1h2m3.5s", 3723_500_000_000), ("300ms", 300_000_000),
    ("1.5h", 5400 * 10**9), ("0", 0), ("-1.5h", -5400 * 10**9), ("+2s", 2 * 10**9), ("1µs", 1000),
    ("1μs", 1000), ("1us", 1000), ("7ns", 7), (".5s", 500_000_000), ("1.s", 10**9),
])
def test_go_parse_duration(text, ns):
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize(("text", "message"), [
    ("", 'time: invalid duration ""'), ("x", 'time: invalid duration "x"'),
    ("1", 'time: missing unit in duration "1"'), ("1d", 'time: unknown unit "d" in duration "1d"'),
    (".", 'time: invalid duration "."'), ("3000000h", 'time: invalid duration "3000000h"'),
])
def test_go_parse_duration_errors(text, message):
    with pytest.raises(GoDurationError) as info:
        parse_go_duration(text)
    assert str(info.value) == message


# --- admission ------------------------------------------------------------------------------------

def test_valid_plugin_is_admitted_silently():
    review = validate_plugin(plugin(domainHooks=[sidecar()]), GATED, LATEST)
    assert review.allowed and review.causes == [] and review.warnings == [] and review.message == ""
    assert not review.uses_cel


def test_gate_off_denies_everything_and_no_policy_runs():
    p = plugin(failureStrategy="Maybe")  # would also fail a policy, but policies need the gate
    review = validate_plugin(p, KubeVirtConfiguration(), LATEST)
    assert [c.to_json() for c in review.causes] == [
        {"source": WEBHOOK, "type": "", "field": "", "message": GATE_DISABLED}]
    assert review.warnings == []
    assert review.message == f'admission webhook "{WEBHOOK}" denied the request: {GATE_DISABLED}'
    # Alpha: off unless listed in featureGates
    disabled = KubeVirtConfiguration.model_validate({"developerConfiguration": {"disabledFeatureGates": ["Plugins"]}})
    assert validate_plugin(plugin(domainHooks=[sidecar()]), disabled, LATEST).causes[0].message == GATE_DISABLED


def test_profile_1_4_has_no_plugin_resource():
    with pytest.raises(PluginNotServed) as info:
        validate_plugin(plugin(domainHooks=[sidecar()]), GATED, V1_4)
    assert str(info.value) == ("the Plugin resource (plugin.kubevirt.io/v1alpha1) needs KubeVirt v1.9+ with the "
                               "Plugins feature gate; --kubevirt-version 1.4 does not have it")


@pytest.mark.parametrize("path", [
    "/var/run/kubevirt-plugin/p/../p/hook.sock", "/var/run/kubevirt-plugin/p/./hook.sock",
    "/var/run/kubevirt-plugin/p//hook.sock", "/var/run/kubevirt-plugin/p/hook.sock/",
])
def test_unclean_socket_path(path):
    found = causes(plugin(domainHooks=[sidecar(SOCK), sidecar(path)]))
    assert found[0] == {"source": WEBHOOK, "type": "FieldValueInvalid", "message": UNCLEAN_SOCKET_PATH,
                        "field": "spec.domainHooks[1].sidecar.socketPath"}


def test_bad_timeout_fails_decoding_with_go_message_and_stops_the_webhook():
    found = causes(plugin(domainHooks=[sidecar("/var/run/kubevirt-plugin/p//x.sock", timeout="5")]))
    assert found == [{"source": WEBHOOK, "type": "", "field": "spec.domainHooks[0].timeout",
                      "message": 'time: missing unit in duration "5"'}]
    found = causes(plugin(nodeHooks=[{"socket": "/s", "permittedHooks": ["PreVMStart"], "timeout": "1d"}]))
    assert found[0]["field"] == "spec.nodeHooks[0].timeout"


def test_validation_policy_messages_in_its_order():
    p = plugin(failureStrategy="", domainHooks=[
        {"cel": {"expression": "x"}, "sidecar": {"socketPath": SOCK}},
        {"failureStrategy": "Sometimes"}],
        nodeHooks=[{"socket": "/s", "permittedHooks": ["PostMigrationSource", "Later"], "failureStrategy": "no"}])
    found = [(c["source"], c["message"], c.get("where")) for c in causes(p)]
    assert found[:5] == [
        (VALIDATION_POLICY, "exactly one of cel or sidecar must be specified for each domain hook",
         ["spec.domainHooks[0]", "spec.domainHooks[1]"]),
        (VALIDATION_POLICY, "failureStrategy must be either 'Fail' or 'Ignore'", ["spec.domainHooks[1].failureStrategy"]),
        (VALIDATION_POLICY, "failureStrategy must be either 'Fail' or 'Ignore'", ["spec.nodeHooks[0].failureStrategy"]),
        # the policy admits PostMigrationSource, which the Go enum lacks
        (VALIDATION_POLICY, "permittedHooks must only contain valid node hook points", ["spec.nodeHooks[0].permittedHooks[1]"]),
        # has() is true for an empty string
        (VALIDATION_POLICY, "failureStrategy must be either 'Fail' or 'Ignore'", ["spec.failureStrategy"]),
    ]
    assert all(c["field"] == "" and c["type"] == "" for c in causes(p))
    review = validate_plugin(p, GATED, LATEST)
    assert review.message == (f"ValidatingAdmissionPolicy '{VALIDATION_POLICY}' with binding "
                              "'kubevirt-plugin-validation-binding' denied request: exactly one of cel or "
                              "sidecar must be specified for each domain hook")


def test_socket_path_policy_messages():
    long = "/var/run/kubevirt-plugin/p/" + "a" * 80 + ".sock"
    p = plugin(domainHooks=[sidecar("/var/run/kubevirt-plugin/p/hook"), sidecar(long),
                            sidecar("/var/run/kubevirt-plugin/other/hook.sock"), sidecar("/var/run/kubevirt-plugin/p")])
    found = [(c["message"], c["where"]) for c in causes(p) if c["source"] == SOCKET_PATH_POLICY]
    assert found == [
        ("sidecar socketPath must end with .sock", ["spec.domainHooks[0].sidecar.socketPath",
                                                    "spec.domainHooks[3].sidecar.socketPath"]),
        ("sidecar socketPath must not exceed 108 characters (Unix socket limit)", ["spec.domainHooks[1].sidecar.socketPath"]),
        ("sidecar socketPath must start with /var/run/kubevirt-plugin/<plugin-name>/",
         ["spec.domainHooks[2].sidecar.socketPath", "spec.domainHooks[3].sidecar.socketPath"]),
    ]
    assert len("/var/run/kubevirt-plugin/p/" + "a" * 76 + ".sock") == 108
    assert causes(plugin(domainHooks=[sidecar("/var/run/kubevirt-plugin/p/" + "a" * 76 + ".sock")])) == []


def test_webhook_causes_come_before_policy_causes_but_the_api_server_answers_with_the_policy():
    review = validate_plugin(plugin(domainHooks=[sidecar("/var/run/kubevirt-plugin/p//x")]), GATED, LATEST)
    assert [c.source for c in review.causes] == [WEBHOOK, SOCKET_PATH_POLICY]
    assert review.message.startswith(f"ValidatingAdmissionPolicy '{SOCKET_PATH_POLICY}' with binding "
                                      "'kubevirt-plugin-socket-path-binding' denied request: sidecar socketPath "
                                      "must end with .sock")


def test_warning_policy():
    review = validate_plugin(plugin(), GATED, LATEST)
    assert review.allowed
    assert [w.to_json() for w in review.warnings] == [{
        "source": WARNING_POLICY,
        "message": "no hooks or admission references are defined; this plugin will have no effect",
        "apiServerText": "Validation failed for ValidatingAdmissionPolicy 'kubevirt-plugin-warning-policy' with "
                         "binding 'kubevirt-plugin-warning-binding': no hooks or admission references are "
                         "defined; this plugin will have no effect"}]
    assert validate_plugin(plugin(mutatingAdmissionWebhooks=[{"name": "w"}]), GATED, LATEST).warnings == []
    assert validate_plugin(plugin(domainHooks=[]), GATED, LATEST).warnings  # size() > 0 is required


def test_cel_adds_no_cause_but_is_flagged():
    review = validate_plugin(plugin(condition="vmi.Name == 'x'", domainHooks=[{"cel": {"expression": "!!"}}]),
                             GATED, LATEST)
    assert review.allowed and review.uses_cel
    assert "CEL is not evaluated by netbind" in CEL_NOT_EVALUATED


# --- the hook plan ----------------------------------------------------------------------------------

def test_domain_hook_plan_order_strategies_and_timeouts():
    b = plugin("b", failureStrategy="Ignore", condition="c1", domainHooks=[
        sidecar("/var/run/kubevirt-plugin/b/1.sock"),
        sidecar("/var/run/kubevirt-plugin/b/2.sock", failureStrategy="Fail", timeout="1m30s", condition="c2"),
        {"condition": "neither: skipped"},
        {"cel": {"expression": "Domain{}"}, "timeout": "2s"}])
    a = plugin("a", domainHooks=[sidecar("/var/run/kubevirt-plugin/a/x.sock", timeout="300ms")])
    upper = plugin("Z", domainHooks=[sidecar("/var/run/kubevirt-plugin/Z/x.sock")])  # byte order: "Z" < "a"
    plan = domain_hook_plan([b, a, upper])
    assert [(h.plugin, h.index, h.kind, h.failure_strategy, h.timeout_seconds) for h in plan] == [
        ("Z", 0, "sidecar", "Fail", 30.0),
        ("a", 0, "sidecar", "Fail", 0.3),
        ("b", 0, "sidecar", "Ignore", 30.0),
        ("b", 1, "sidecar", "Fail", 90.0),
        ("b", 3, "cel", "Ignore", 2.0),
    ]
    assert plan[3].conditions == ["c1", "c2"] and plan[3].has_cel and not plan[1].has_cel
    assert plan[4].to_json() == {"plugin": "b", "index": 3, "kind": "cel", "failureStrategy": "Ignore",
                                 "timeoutSeconds": 2.0, "expression": "Domain{}", "conditions": ["c1"]}


def test_domain_hook_plan_sort_is_stable_and_bad_timeout_names_the_field():
    first, second = plugin("same", domainHooks=[sidecar()]), plugin("same", domainHooks=[{"cel": {"expression": "e"}}])
    assert [h.kind for h in domain_hook_plan([first, second])] == ["sidecar", "cel"]
    with pytest.raises(GoDurationError, match=r"Plugin p: spec.domainHooks\[0\].timeout: time: invalid"):
        domain_hook_plan([plugin(domainHooks=[sidecar(timeout="soon")])])


def test_launcher_socket_path_check_is_on_the_cleaned_path():
    assert socket_path_outside_plugin_dir("/var/run/kubevirt-plugin/p/x.sock", "p") is None
    assert socket_path_outside_plugin_dir("/var/run/kubevirt-plugin/p/../q/x.sock", "p") == (
        'socket path "/var/run/kubevirt-plugin/p/../q/x.sock" is outside /var/run/kubevirt-plugin/p/')
