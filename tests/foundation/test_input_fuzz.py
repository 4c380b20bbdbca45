"""Every input file boundary against hostile input: manifests (validate/explain/render through the
CLI), the image map and ``netbind up --pod-network``. Each case ends as exit 0/1, or exit 2 with one
line naming the file; never a traceback. ``NETBIND_FUZZ_EXAMPLES=2000`` runs a larger search;
``bench/fuzz.py`` runs the same at scale and reports counts and peak RSS."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netbind.cli import cli
from netbind.node.images import ImageMap, ImageMapError
from netbind.node.multus import PodNetworkError, load_pod_network

EXAMPLES = int(os.environ.get("NETBIND_FUZZ_EXAMPLES", "60"))
PASST = Path(__file__).parents[2] / "examples" / "passt"
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def _bomb(levels: int = 9) -> str:
    text = 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        text += f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n"
    return text


KV = "apiVersion: kubevirt.io/v1\nkind: KubeVirt\nmetadata: {name: kubevirt}\n"
HOSTILE: dict[str, tuple[bytes, str]] = {
    "alias-bomb": (_bomb().encode(), "excessive aliasing"),
    "ansi-escape": ((KV + "spec: {x: \"\x1b[31m\"}\n").encode(), "control character"),
    "nul-byte": (KV.encode() + b"\0", "NUL byte"),
    "binary": (bytes(range(256)) * 4, "not a text file"),
    "invalid-utf8": (KV.encode() + b"x: \xc3\x28\n", "not UTF-8"),
    "deep-yaml-900": (("a: " + "[" * 900 + "]" * 900 + "\n").encode(), "nested deeper than 100"),
    "deep-json-900": (("[" * 900 + "]" * 900).encode(), "nested deeper than 100"),
    "deep-json-100k": (("{\"a\":" * 100_000 + "1" + "}" * 100_000).encode(), "nested deeper than 100"),
    "object-over-3MiB": ((KV + "spec: {x: '" + "x" * (3 * 2**20) + "'}\n").encode(), "at most 3145728 bytes"),
    "file-over-16MiB": (b"# " + b"x" * (16 * 2**20) + b"\n", "larger than 16.0 MiB"),
    "duplicate-key": ((KV + "metadata: {name: b}\n").encode(), 'duplicate field "metadata"'),
    "bad-quantity": ((KV + "spec: {configuration: {network: {binding: {p: {computeResourceOverhead: "
                      "{requests: {memory: 1GB}}}}}}}\n").encode(), "unable to parse quantity"),
    "bad-name": (KV.replace("kubevirt}", "VM_Net}").encode(), "RFC 1123 subdomain"),
    "list-for-map": (b"apiVersion: kubevirt.io/v1\nkind: KubeVirt\nmetadata: [a]\n", "metadata"),
    "huge-int": ((KV + "spec: {x: " + "9" * 5000 + "}\n").encode(), "4300 digits"),
}


def _run(args: list[str]):
    result = CliRunner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"traceback: {result.exception!r}"
    return result


def _one_line_naming(result, name: str) -> str:
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and name in errors[0], result.stderr
    return errors[0]


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("command", [["validate"], ["explain"], ["render", "pod"], ["render", "domain"]])
def test_hostile_manifest_is_one_line_exit_2(tmp_path, case, command):
    content, expected = HOSTILE[case]
    path = tmp_path / f"{case}.json" if case.startswith("deep-json") else tmp_path / f"{case}.yaml"
    path.write_bytes(content)
    result = _run([*command, "-f", str(path), "-f", str(PASST)])
    assert result.exit_code == 2, result.output
    assert expected in _one_line_naming(result, path.name)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_image_map_and_pod_network(tmp_path, case):
    content, _ = HOSTILE[case]
    path = tmp_path / f"{case}.json"
    path.write_bytes(content)
    with pytest.raises(ImageMapError, match=f"image map {path}"):
        ImageMap.load(path)
    with pytest.raises(PodNetworkError, match=f"--pod-network {path}"):
        load_pod_network(path)


def test_unknown_field_is_a_warning_naming_path_and_fix(tmp_path):
    shutil.copytree(PASST, tmp_path / "m")
    kv = next(p for p in (tmp_path / "m").iterdir() if "kind: KubeVirt" in p.read_text())
    kv.write_text(kv.read_text().replace("sidecarImage", "sidecarimage"))
    result = _run(["validate", "-f", str(tmp_path / "m")])
    assert 'unknown field "spec.configuration.network.binding.passt.sidecarimage"' in result.stderr
    assert "did you mean sidecarImage?" in result.stderr and result.stderr.startswith("warning: ")


# --- generated: every value of the passt example replaced by values of every type ----------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=30) | st.sampled_from(["", "1GB", "VM_Net", "-1", "tap", "managedTap", "pod"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, path + (index,))


def _replace(doc, path, value):
    if not path:
        return value
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return doc


def _documents() -> list:
    return [d for p in sorted(PASST.iterdir()) for d in yaml.safe_load_all(p.read_text()) if d]


@st.composite
def mutated_manifests(draw):
    docs = _documents()
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(docs) - 1))
        path = draw(st.sampled_from(list(_paths(docs[index]))))
        docs[index] = _replace(docs[index], path, draw(JSON_VALUES))
    return docs


@FUZZ
@given(docs=mutated_manifests(), command=st.sampled_from(
    [["validate"], ["explain"], ["render", "pod"], ["render", "domain"], ["validate", "--kubevirt-version", "1.4"]]))
def test_generated_manifests_never_traceback(tmp_path_factory, docs, command):
    path = tmp_path_factory.mktemp("m") / "m.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    result = _run([*command, "-f", str(path)])
    assert result.exit_code in (0, 1, 2), result.output
    if result.exit_code == 2:
        _one_line_naming(result, "m.yaml")


@FUZZ
@given(data=JSON_VALUES | st.fixed_dictionaries({}, optional={
    "sidecars": JSON_VALUES, "containerDisks": JSON_VALUES, "cni": JSON_VALUES}))
def test_generated_image_maps_load_or_say_why(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("i") / "images.json"
    path.write_text(json.dumps(data))
    try:
        ImageMap.load(path)
    except ImageMapError as exc:
        assert str(exc).startswith("image map ") and "\n" not in str(exc)


@FUZZ
@given(data=JSON_VALUES | st.fixed_dictionaries({"name": JSON_VALUES}, optional={
    "cniVersion": JSON_VALUES, "plugins": JSON_VALUES | st.lists(st.fixed_dictionaries({"type": JSON_VALUES})),
    "type": JSON_VALUES}))
def test_generated_pod_networks_load_or_say_why(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("p") / "pod-network.json"
    path.write_text(json.dumps(data))
    try:
        conf = load_pod_network(path)
    except PodNetworkError as exc:
        assert str(exc).startswith(f"--pod-network {path}") and "\n" not in str(exc)
    else:
        assert isinstance(conf["name"], str) and all(isinstance(p["type"], str) for p in conf["plugins"])


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_pod_links_file(tmp_path, case):
    content, _ = HOSTILE[case]
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(content)
    result = _run(["render", "domain", "-f", str(PASST), "--pod-links", str(path)])
    assert result.exit_code == 2, result.output
    assert _one_line_naming(result, path.name).startswith(f"error: --pod-links {path}")
