"""Hostile input for the protocol boundaries plugins face: CNI stdin and environment, hook sidecar
domain XML and VMI JSON. A corpus of named hostile cases plus hypothesis strategies, and the checks
each boundary must pass (used by ``tests/cni``, ``tests/hooks`` and ``bench/fuzz_protocols.py``).

CNI (``CNIWorld``): the plugins run as processes in a node namespace, as a runtime runs them, against
a pod namespace with a pod interface; every run must end with exit 0, or non-zero with the spec's
error JSON (an integer ``code``, a ``msg``) on stdout, within the timeout, without a traceback or an
unexpected exception, and afterwards (a successful ADD followed by its DEL) the pod, the node and the
host namespaces and the plugin's ``dataDir`` must be as they were.

Hooks: a call must return a domain (or the echoed cloud-init data), or fail with the SDK's
``HookError``/``InvalidInput`` (gRPC ``Unknown``/``INVALID_ARGUMENT`` from a process, the message
naming what is wrong), never read a file or URL named by an entity or DTD, and stay within bounded
memory.
"""
from __future__ import annotations

import json
import os
import resource
import secrets
import select
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

from netbind import _iproute
from netbind.testing.cni import plugin_path

CNI_COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS")
CNI_ENV = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")
SYSCTLS = ("net.ipv4.ip_unprivileged_port_start", "net.ipv4.ping_group_range", "net.ipv4.conf.all.arp_ignore",
           "net.ipv4.ip_forward")
TRACEBACK = "Traceback (most recent call last)"
UNEXPECTED = "internal error in "      # the framework's log line for an exception that is not a CNIError
CANARY = "NETBIND-FUZZ-CANARY"


# --- running a plugin process -----------------------------------------------------------------

@dataclass
class Run:
    """One plugin process: exit code (negative: killed by that signal), output, peak RSS."""
    exit_code: int
    stdout: str
    stderr: str
    max_rss_kb: int
    hung: bool = False


def run_process(argv: list[str], env: dict[str, str], stdin: bytes, timeout: float) -> Run:
    """Run ``argv`` feeding ``stdin``; a run past ``timeout`` is killed and marked ``hung``.
    The peak RSS comes from wait4(2), so it is this process's own, not the harness's."""
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    out, err, pending = bytearray(), bytearray(), bytes(stdin)
    streams = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    writer = proc.stdin.fileno()
    os.set_blocking(writer, False)
    deadline, hung = time.monotonic() + timeout, False
    while streams or pending is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            hung = True
            os.killpg(proc.pid, signal.SIGKILL)
            break
        readable, writable, _ = select.select(list(streams), [writer] if pending is not None else [], [], left)
        for fd in readable:
            chunk = os.read(fd, 1 << 16)
            if chunk:
                streams[fd] += chunk
            else:
                del streams[fd]
        if writable:
            try:
                sent = os.write(writer, pending[:1 << 16])
                pending = pending[sent:]
            except BrokenPipeError:   # the plugin stopped reading: fine, it answers on stdout
                pending = b""
            if not pending:
                proc.stdin.close()
                pending = None
    if pending is not None and not proc.stdin.closed:
        proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    proc.stderr.close()
    return Run(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"), usage.ru_maxrss, hung)


# --- the CNI world --------------------------------------------------------------------------

def _netns_path(name: str) -> str:
    return str(_iproute.NETNS_DIR / name)


def namespace_snapshot(netns: str | None) -> dict:
    """What a plugin could have changed in a namespace (None: the caller's): links with their
    kind, master, MAC, MTU, flags and addresses, routes, and the sysctls the plugins touch."""
    def j(*args):
        return json.loads(_iproute.ip("-j", *args, netns=netns) or "[]")

    links = sorted((l["ifname"], l.get("address"), l.get("mtu"), l.get("master"), l.get("ifalias"),
                    tuple(sorted(f for f in l.get("flags", ()) if f != "LOWER_UP")),
                    _iproute.link_kind(l), tuple(sorted(f"{a.get('local')}/{a.get('prefixlen')}"
                                                        for a in l.get("addr_info", ())
                                                        if not str(a.get("local")).startswith("fe80"))))
                   for l in j("-d", "addr", "show"))
    # IPv6 link-local addresses and their routes come and go with the kernel's DAD: not ours
    routes = sorted(json.dumps(r, sort_keys=True) for v in ("-4", "-6")
                    for r in json.loads(_iproute.ip(v, "-j", "route", "show", "table", "all", netns=netns) or "[]")
                    if not str(r.get("dst", "")).startswith(("fe80", "ff00", "fd00::/8", "multicast")))
    sysctls = {key: _iproute.sysctl(key, netns=netns) for key in SYSCTLS}
    return {"links": links, "routes": routes, "sysctls": sysctls}


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if not p.is_dir()) \
        if directory.exists() else []


class CNIWorld:
    """A node namespace (the plugins run there), a pod namespace whose ``eth0`` is a veth to the
    node with an address and a default route, hostile namespace paths, and a private ``dataDir``.
    ``close()`` removes all of it."""

    def __init__(self, workdir: Path) -> None:
        tag = secrets.token_hex(3)
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "state"
        self.node, self.pod = f"nb-fzn-{tag}", f"nb-fzp-{tag}"
        self.node_veth = f"nb-fzv-{tag}"
        _iproute.add_netns(self.node)
        try:
            _iproute.add_netns(self.pod)
            _iproute.ip("link", "add", self.node_veth, "netns", self.node, "type", "veth", "peer", "name", "eth0",
                        "netns", self.pod)
            _iproute.ip("link", "set", self.node_veth, "up", netns=self.node)
            for args in (("link", "set", "eth0", "up"), ("addr", "add", "10.99.0.7/24", "dev", "eth0"),
                         ("route", "add", "default", "via", "10.99.0.1")):
                _iproute.ip(*args, netns=self.pod)
            self.hostile = self._hostile_paths()
        except BaseException:
            self.close()
            raise
        self.baseline = self.snapshot()

    @property
    def pod_path(self) -> str:
        return _netns_path(self.pod)

    def _hostile_paths(self) -> dict[str, str]:
        d = self.workdir / "paths"
        d.mkdir(parents=True, exist_ok=True)
        (d / "regular").write_text("not a namespace\n")
        os.mkfifo(d / "fifo")
        os.symlink(d / "loop-b", d / "loop-a")
        os.symlink(d / "loop-a", d / "loop-b")
        os.symlink("/proc/self/ns/net", d / "own-link")
        return {
            "nonexistent": _netns_path(f"nb-fz-none-{secrets.token_hex(3)}"),
            "regular file": str(d / "regular"),
            "fifo": str(d / "fifo"),
            "directory": str(d),
            "symlink loop": str(d / "loop-a"),
            "plugin's own namespace": "/proc/self/ns/net",
            "link to the plugin's own namespace": str(d / "own-link"),
            "mount namespace": "/proc/self/ns/mnt",
            "character device": "/dev/null",
            "relative": "netns",
            "very long": "/" + "n" * 5000,
            "trailing slash": self.pod_path + "/",
            "dot-dot": "/run/netns/../netns/" + self.pod,   # the pod, by a roundabout path: valid
        }

    def snapshot(self) -> dict:
        return {"pod": namespace_snapshot(self.pod), "node": namespace_snapshot(self.node),
                "host": namespace_snapshot(None), "dataDir": files_under(self.data_dir)}

    def netconf(self, plugin: str, version: str = "1.0.0") -> dict:
        conf = {"cniVersion": version, "name": "nb-fuzz", "type": plugin, "dataDir": str(self.data_dir),
                "args": {"cni": {"logicNetworkName": "default"}}}
        if plugin.endswith("macvtap"):
            conf["master"] = self.node_veth
        return conf

    def env(self, command: str, **overrides: str | None) -> dict[str, str]:
        """The CNI variables of a good call (``None`` in overrides: leave that variable out)."""
        values = {"CNI_COMMAND": command, "CNI_CONTAINERID": "nb-fuzz-c1", "CNI_NETNS": self.pod_path,
                  "CNI_IFNAME": "net1", "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=virt-launcher-x",
                  "CNI_PATH": "/opt/cni/bin"}
        values.update(overrides)
        return {k: v for k, v in values.items() if v is not None}

    def run(self, plugin: str, env: dict[str, str], stdin: bytes, timeout: float = 20.0) -> Run:
        full = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
        full.update(env)
        argv = _iproute.command("ip", "netns", "exec", self.node, plugin_path(plugin))
        return run_process(argv, full, stdin, timeout)

    def close(self) -> None:
        for name in (self.pod, self.node):
            _iproute.run("ip", "netns", "del", name, check=False)


@dataclass
class CNICase:
    name: str
    env: dict[str, str]
    stdin: bytes


@dataclass
class CNIVerdict:
    case: CNICase
    run: Run
    problems: list[str] = field(default_factory=list)

    @property
    def traceback(self) -> bool:
        return TRACEBACK in self.run.stderr or UNEXPECTED in self.run.stderr


def check_cni(world: CNIWorld, plugin: str, case: CNICase, timeout: float = 20.0) -> CNIVerdict:
    """Run one case (and DEL after a successful ADD); the verdict lists every broken rule."""
    run = world.run(plugin, case.env, case.stdin, timeout)
    verdict = CNIVerdict(case, run)
    problems = verdict.problems
    if run.hung:
        problems.append(f"no answer within {timeout:g} s")
    if TRACEBACK in run.stderr:
        problems.append("traceback on stderr: " + run.stderr[-400:])
    if UNEXPECTED in run.stderr:
        problems.append("unexpected exception: " + run.stderr.strip()[-300:])
    if run.exit_code < 0:
        problems.append(f"killed by signal {-run.exit_code}")
    elif run.exit_code != 0:
        problems.extend(_error_json_problems(run.stdout))
    elif case.env.get("CNI_COMMAND") == "ADD":
        cleanup = world.run(plugin, {**case.env, "CNI_COMMAND": "DEL"}, case.stdin, timeout)
        if cleanup.exit_code != 0:
            problems.append(f"DEL after a successful ADD failed: {cleanup.stdout or cleanup.stderr}")
    after = world.snapshot()
    for part in ("host", "node", "pod", "dataDir"):
        if after[part] != world.baseline[part]:
            problems.append(f"the {part} {'namespace ' if part != 'dataDir' else ''}changed: "
                            f"{_diff(world.baseline[part], after[part])}")
            world.baseline[part] = after[part]   # judge later cases on their own
    return verdict


def _error_json_problems(stdout: str) -> list[str]:
    try:
        error = json.loads(stdout)
    except ValueError:
        return [f"exit non-zero without the spec's error JSON on stdout: {stdout[:200]!r}"]
    if not isinstance(error, dict) or not isinstance(error.get("code"), int) or isinstance(error.get("code"), bool) \
            or not isinstance(error.get("msg"), str) or not error["msg"]:
        return [f"error JSON without an integer code and a message: {stdout[:200]!r}"]
    if set(error) - {"cniVersion", "code", "msg", "details"}:
        return [f"error JSON with unknown keys: {sorted(error)}"]
    return []


def _diff(before, after) -> str:
    if isinstance(before, dict):
        return "; ".join(f"{k}: {_diff(before.get(k), after.get(k))}" for k in sorted(set(before) | set(after))
                         if before.get(k) != after.get(k))
    if isinstance(before, list):
        gone = [x for x in before if x not in after]
        new = [x for x in after if x not in before]
        return f"-{gone} +{new}"
    return f"{before!r} -> {after!r}"


def cni_corpus(world: CNIWorld, plugin: str) -> list[CNICase]:
    """Named hostile cases for one plugin: every command, bad and huge JSON, wrong versions, every
    hostile namespace path, hostile CNI_IFNAME/CNI_CONTAINERID/CNI_ARGS, missing variables."""
    conf = world.netconf(plugin)
    good = json.dumps(conf).encode()
    cases: list[CNICase] = []

    def add(name, env, stdin=good):
        cases.append(CNICase(name, env, stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()))

    for command in CNI_COMMANDS:
        version = "1.1.0" if command in ("GC", "STATUS") else "1.0.0"
        add(f"{command} good", world.env(command), {**conf, "cniVersion": version})
        for var in CNI_ENV:
            add(f"{command} without {var}", world.env(command, **{var: None}), {**conf, "cniVersion": version})
    for command in ("add", "ADD ", "", "DELETE", "x" * 10000):
        add(f"CNI_COMMAND {command[:12]!r}", world.env(command))
    stdins = {
        "empty stdin": b"", "whitespace": b" \n\t", "not JSON": b"{not json", "truncated": good[:-1],
        "a JSON list": b"[]", "a JSON string": b'"x"', "null": b"null", "NUL byte": b"\x00",
        "invalid UTF-8": good.replace(b"nb-fuzz", b"nb-\xff\xfe"), "UTF-8 BOM": b"\xef\xbb\xbf" + good,
        "UTF-16": json.dumps(conf).encode("utf-16"), "trailing data": good + b"{}",
        "nested 100,000 deep": b"[" * 100000 + b"]" * 100000,
        "objects nested 5,000 deep": b'{"a":' * 5000 + b"1" + b"}" * 5000,
        "huge (64 MiB)": json.dumps({**conf, "padding": "x" * (64 << 20)}).encode(),
        "many keys": json.dumps({**conf, **{f"k{i}": i for i in range(200000)}}).encode(),
        "a 5,000-digit integer": good[:-1] + b', "mtu": ' + b"9" * 5000 + b"}",
        "NaN": good[:-1] + b', "mtu": NaN}', "duplicate keys": good[:-1] + b', "name": "other"}',
    }
    for name, data in stdins.items():
        add(name, world.env("ADD"), data)
    for value in ("2.0.0", "0.0.1", "1.0", "v1.0.0", "1.0.0 ", "", 1, 1.0, None, [], {}, ["1.0.0"], True):
        add(f"cniVersion {value!r}", world.env("ADD"), {**conf, "cniVersion": value})
    add("CHECK on 0.3.1", world.env("CHECK"), {**conf, "cniVersion": "0.3.1"})
    add("GC on 1.0.0", world.env("GC"), conf)
    for field_name, value in (("name", 5), ("name", ""), ("name", "../etc"), ("name", "a" * 300), ("name", None),
                              ("args", []), ("args", {"cni": "x"}), ("args", {"cni": {"logicNetworkName": 5}}),
                              ("prevResult", {"cniVersion": "1.0.0", "interfaces": "x"}),
                              ("prevResult", {"cniVersion": "1.0.0", "ips": [{"address": 5}]}), ("prevResult", []),
                              ("runtimeConfig", {"mac": ["x"]}), ("runtimeConfig", "x"),
                              ("dataDir", "relative"), ("dataDir", 5), ("dataDir", "/proc/sys/net"),
                              ("dataDir", "/dev/null"), ("dataDir", "/tmp/\x00x"),
                              ("logFile", "/proc/nonexistent/log"), ("logFile", 5), ("logFile", "/tmp/\x00x"),
                              ("master", ["x"]), ("master", "nb-fz-none"), ("mode", "x"), ("mtu", "1500"),
                              ("mtu", 10 ** 30), ("tapOwner", -1), ("queues", True),
                              ("cni.dev/valid-attachments", "x")):
        add(f"{field_name} {value!r}"[:60], world.env("ADD"), {**conf, field_name: value})
    for name, path in world.hostile.items():
        for command in ("ADD", "CHECK", "DEL"):
            add(f"{command} CNI_NETNS {name}", world.env(command, CNI_NETNS=path))
    for value in ("", ".", "..", "a/b", "a:b", "a b", "x" * 16, "é" * 8, "\t", "eth0\n", "lo", "-x"):
        add(f"CNI_IFNAME {value!r}", world.env("ADD", CNI_IFNAME=value))
    for value in ("-x", "_x", "a/../../etc", "a b", "a" * 100000, "é", ".."):
        add(f"CNI_CONTAINERID {value[:12]!r}", world.env("ADD", CNI_CONTAINERID=value))
    for value in ("x", ";;;", "=", "MAC=zz", "MAC=01:00:00:00:00:01", "K=" + "v" * 100000, "a=b=c", "\x01=\x02"):
        add(f"CNI_ARGS {value[:12]!r}", world.env("ADD", CNI_ARGS=value))
    add("CNI_PATH huge", world.env("ADD", CNI_PATH=":" * 100000))
    return cases


def cni_cases(world: CNIWorld, plugin: str) -> st.SearchStrategy[CNICase]:
    """Random calls: a command (or junk), each variable good, missing or random, and a netconf
    whose fields are replaced by random JSON (or raw random bytes)."""
    conf = world.netconf(plugin)
    text = st.text(max_size=40)
    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
                               lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
                               max_leaves=12)
    env_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
    paths = st.sampled_from(sorted(world.hostile.values()) + [world.pod_path])

    @st.composite
    def case(draw):
        command = draw(st.sampled_from(CNI_COMMANDS) | env_text)
        env = world.env(command)
        for var in CNI_ENV[1:]:
            choice = draw(st.sampled_from(("good", "good", "missing", "random")))
            if choice == "missing":
                env.pop(var)
            elif choice == "random":
                env[var] = draw(paths if var == "CNI_NETNS" else env_text)
        if draw(st.integers(0, 9)) == 0:
            stdin = draw(st.binary(max_size=200))
        else:
            netconf = dict(conf, cniVersion=draw(st.sampled_from(("0.3.1", "0.4.0", "1.0.0", "1.1.0"))))
            for key in draw(st.lists(st.sampled_from(sorted(conf) + ["prevResult", "runtimeConfig", "mtu", "mode",
                                                                     "cni.dev/valid-attachments"]), max_size=3)):
                netconf[key] = draw(json_values)
            stdin = json.dumps(netconf).encode()
        return CNICase(f"random {command[:10]!r}", env, stdin)

    return case()


# --- hook sidecars: domain XML and VMI JSON ---------------------------------------------------

class URLTrap:
    """A TCP listener that counts connections: an http:// entity or DTD pointing here must never
    be fetched."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/netbind-fuzz.dtd"

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()


def hostile_domains(domain: bytes, canary_file: Path, url: str) -> dict[str, bytes]:
    """Hostile variants of a valid ``<domain>`` document (``canary_file`` holds ``CANARY``: it must
    never show up in an answer; ``url`` must never be fetched)."""
    head, body = domain.split(b">", 1)        # '<domain type="kvm"' and the rest
    name_rest = body.split(b"</name>", 1)[1] if b"</name>" in body else body
    file_url = canary_file.as_uri().encode()
    net_url = url.encode()

    def with_doctype(doctype: bytes, name: bytes = b"default_testvmi") -> bytes:
        return b'<?xml version="1.0"?>\n' + doctype + b"\n" + head + b"><name>" + name + b"</name>" + name_rest

    laughs = b"".join(b'<!ENTITY l%d "%s">' % (i, (b"&l%d;" % (i - 1)) * 10 if i else b"lol")
                      for i in range(10))
    quadratic = b'<!ENTITY q "' + b"q" * 50000 + b'">'
    return {
        "billion laughs": with_doctype(b"<!DOCTYPE domain [" + laughs + b"]>", b"&l9;"),
        "quadratic blowup": with_doctype(b"<!DOCTYPE domain [" + quadratic + b"]>", b"&q;" * 2000),
        "XXE file://": with_doctype(b'<!DOCTYPE domain [<!ENTITY x SYSTEM "' + file_url + b'">]>', b"&x;"),
        "XXE http://": with_doctype(b'<!DOCTYPE domain [<!ENTITY x SYSTEM "' + net_url + b'">]>', b"&x;"),
        "external DTD file://": with_doctype(b'<!DOCTYPE domain SYSTEM "' + file_url + b'">'),
        "external DTD http://": with_doctype(b'<!DOCTYPE domain SYSTEM "' + net_url + b'">'),
        "parameter entity": with_doctype(b'<!DOCTYPE domain [<!ENTITY % p SYSTEM "' + net_url + b'"> %p;]>'),
        "entity in an attribute": with_doctype(b'<!DOCTYPE domain [<!ENTITY x SYSTEM "' + file_url + b'">]>')
        .replace(b'<domain type="kvm"', b'<domain type="&x;"'),
        "XInclude": domain.replace(b"<devices>", b'<devices><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
                                   b'href="' + file_url + b'" parse="text"/>', 1),
        "stylesheet PI": b'<?xml-stylesheet type="text/xsl" href="' + net_url + b'"?>' + domain,
        "16 MiB": domain.replace(b"</domain>", b"<!--" + b"x" * (16 << 20) + b"--></domain>"),
        "3.5 MiB of elements": domain.replace(b"</domain>", b"<metadata>" + b"<m/>" * 900000 + b"</metadata></domain>"),
        "nested 10,000 deep": head + b">" + b"<x>" * 10000 + b"</x>" * 10000 + b"</domain>",
        "invalid UTF-8": domain.replace(b"default_testvmi", b"default_\xff\xfe\xc0", 1),
        "UTF-16": domain.decode().encode("utf-16"),
        "declared latin-1": b'<?xml version="1.0" encoding="ISO-8859-1"?>' + domain.replace(b"testvmi", b"t\xe9st", 1),
        "NUL byte": domain.replace(b"<name>", b"<name>\x00", 1),
        "default namespace on the root": domain.replace(head, head + b' xmlns="urn:netbind:evil"', 1),
        "libvirt's namespace on the root": domain.replace(head, head + b' xmlns="http://libvirt.org/schemas/domain/1.0"', 1),
        "prefixed root": domain.replace(head, b'<d:domain xmlns:d="urn:x"' + head[len(b"<domain"):], 1)
        .replace(b"</domain>", b"</d:domain>"),
        "default namespace on devices": domain.replace(b"<devices>", b'<devices xmlns="urn:netbind:evil">', 1),
        "prefixed interface": domain.replace(b"<devices>", b'<devices xmlns:i="urn:i"><i:interface type="ethernet"/>', 1),
        "qemu prefix rebound": domain.replace(head, head + b' xmlns:qemu="urn:not-qemu"', 1),
        "other root": b"<network><name>x</name></network>",
        "two roots": domain + domain,
        "empty": b"", "whitespace": b" \n ", "text": b"domain", "binary": bytes(range(256)),
        "truncated": domain[: len(domain) // 2],
    }


def hostile_vmis(vmi: bytes) -> dict[str, bytes]:
    base = json.loads(vmi)
    return {
        "not JSON": b"{", "empty": b"", "a list": b"[]", "a string": b'"vmi"', "a number": b"1",
        "nested 100,000 deep": b"[" * 100000 + b"]" * 100000,
        "objects nested 10,000 deep": b'{"a":' * 10000 + b"1" + b"}" * 10000,
        "spec nested deep": json.dumps({**base, "spec": {"x": []}}).encode().replace(b"[]", b"[" * 5000 + b"]" * 5000),
        "huge (3.5 MiB name)": json.dumps({**base, "metadata": {"name": "n" * (3500 << 10)}}).encode(),
        "invalid UTF-8": vmi.replace(b"testvmi", b"test\xffvmi", 1),
        "NaN": vmi[:-1] + b', "x": NaN}', "Infinity": vmi[:-1] + b', "x": -Infinity}',
        "spec a list": json.dumps({**base, "spec": []}).encode(),
        "networks a string": json.dumps({**base, "spec": {**base.get("spec", {}), "networks": "pod"}}).encode(),
        "interfaces numbers": json.dumps({**base, "spec": {**base.get("spec", {}),
                                                           "domain": {"devices": {"interfaces": [1, 2]}}}}).encode(),
        "ports huge": vmi.replace(b'"interfaces":[{', b'"interfaces":[{"ports":[{"port":1e400}],', 1),
        "name a number": json.dumps({**base, "metadata": {"name": 7}}).encode(),
        "case-folded duplicate keys": vmi[:-1] + b', "SPEC": {"networks": 5}}',
        "null": b"null",
    }


def mutated_bytes(seed: bytes) -> st.SearchStrategy[bytes]:
    """``seed`` with random byte edits, insertions of hostile fragments and truncation."""
    fragments = st.sampled_from([b"<", b">", b"&", b"&x;", b"]]>", b"<!--", b"<![CDATA[", b'"', b"\xff", b"\x00",
                                 b'xmlns="urn:x"', b"<!DOCTYPE d>", b"{", b"}", b"[", b"]", b",", b":", b"null"])

    @st.composite
    def mutate(draw):
        data = bytearray(seed)
        for _ in range(draw(st.integers(1, 6))):
            pos = draw(st.integers(0, max(len(data) - 1, 0)))
            kind = draw(st.integers(0, 2))
            if kind == 0 and data:
                data[pos] = draw(st.integers(0, 255))
            elif kind == 1:
                data[pos:pos] = draw(fragments)
            else:
                del data[pos:pos + draw(st.integers(1, 40))]
        return bytes(data)

    return mutate()


def peak_rss_kb(pid: int | None = None) -> int:
    """Peak resident set (VmHWM) of ``pid``, or of this process."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


__all__ = ["CANARY", "CNICase", "CNIVerdict", "CNIWorld", "Run", "URLTrap", "check_cni", "cni_cases",
           "cni_corpus", "files_under", "hostile_domains", "hostile_vmis", "mutated_bytes",
           "namespace_snapshot", "peak_rss_kb", "run_process"]
