"""The measuring half of tests/bench/cli.sh (which installs the peers and builds `kubeseal`).

Generates an RSA-4096 sealing key and certificate and a multi-document file of N Secrets x 3
values (N=1000 by default, spread over 10 namespaces), seals the whole file with each tool in
the same run, REPS times round-robin (so that load from elsewhere hits every tool alike), and
checks every output of the last round by unsealing it with `kubeseal --recovery-unseal` and
comparing each value with the input. Then times `kubeseal --version` VERSION_RUNS times.
Prints a table (median wall, fastest wall, CPU, our speed-up, the goal) on stdout; exits 1 if
an output is wrong, never because a goal is missed (figures are reported, not asserted).

Standard library only: it runs on the system Python, outside the peer's virtualenv.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

NAMESPACES = 10
SCOPE = "namespace-wide"
PEER_PYTHON = "python3"  # replaced by --python  # the only scope the Node peer can seal with (label = namespace)


@dataclass
class Run:
    wall: float
    cpu: float


@dataclass
class Tool:
    name: str
    how: str
    argv: list[str]
    output: Path
    stdin: Path | None = None
    runs: list[Run] = field(default_factory=list)

    def run_once(self) -> Run:
        """One sealing of the whole file: wall clock and the child's user+system CPU."""
        self.output.unlink(missing_ok=True)
        stdin = open(self.stdin, "rb") if self.stdin else subprocess.DEVNULL
        stdout = open(self.output, "wb") if self.stdin else subprocess.DEVNULL
        try:
            start = time.perf_counter()
            proc = subprocess.Popen(self.argv, stdin=stdin, stdout=stdout)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
        finally:
            if self.stdin:
                stdin.close()
                stdout.close()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            sys.exit(f"error: {self.name} failed with exit code {proc.returncode}: {self.argv}")
        return Run(wall, usage.ru_utime + usage.ru_stime)


def make_keys(work: Path) -> tuple[Path, Path]:
    key, cert = work / "sealing-key.pem", work / "sealing-cert.pem"
    if not (key.exists() and cert.exists()):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:4096", "-nodes", "-days", "3650",
             "-subj", "/O=sealed-secret/CN=sealed-secret", "-keyout", key, "-out", cert],
            check=True, capture_output=True,
        )
    return key, cert


def make_secrets(count: int, seed: int) -> list[dict]:
    """`count` Opaque Secrets with a username, a 32-character password and a ~300-byte config,
    deterministic for a given seed."""
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits
    secrets = []
    for i in range(count):
        ns = f"team-{i % NAMESPACES:02d}"
        password = "".join(rng.choice(alphabet) for _ in range(32))
        config = "\n".join(
            f"option{j}={''.join(rng.choice(alphabet) for _ in range(24))}" for j in range(9)
        )
        values = {"username": f"svc-{i:04d}", "password": password, "config.ini": config}
        secrets.append({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"app-{i:04d}", "namespace": ns},
            "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        })
    return secrets


def write_yaml(secrets: list[dict], path: Path) -> None:
    docs = []
    for s in secrets:
        lines = [
            "apiVersion: v1",
            "kind: Secret",
            "metadata:",
            f"  name: {s['metadata']['name']}",
            f"  namespace: {s['metadata']['namespace']}",
            "type: Opaque",
            "data:",
        ]
        lines += [f"  {k}: {v}" for k, v in s["data"].items()]
        docs.append("\n".join(lines) + "\n")
    path.write_text("---\n".join(docs))


def json_stream(text: str) -> list[dict]:
    """Concatenated JSON documents (what kubeseal -o json writes for several objects)."""
    if not text.lstrip().startswith("{"):
        return yaml_stream(text)
    decoder, docs, pos = json.JSONDecoder(), [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return docs
        doc, pos = decoder.raw_decode(text, pos)
        docs.append(doc)


def yaml_stream(text: str) -> list[dict]:
    """The documents of a YAML stream, read by PyYAML in the kubesealpy virtualenv (this
    script itself uses the standard library only)."""
    proc = subprocess.run(
        [PEER_PYTHON, "-c", "import json, sys, yaml; "
         "json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)"],
        input=text.encode(), capture_output=True, check=True,
    )
    return json.loads(proc.stdout)


def check(tool: Tool, kubeseal: str, key: Path, secrets: list[dict]) -> str:
    """Every SealedSecret of the tool's output, unsealed with our --recovery-unseal, must give
    back exactly the input's Secrets and values. Returns a short summary."""
    sealed = json_stream(tool.output.read_text())
    if len(sealed) != len(secrets):
        sys.exit(f"error: {tool.name} wrote {len(sealed)} documents, expected {len(secrets)}")
    for doc in sealed:
        if doc.get("kind") != "SealedSecret" or len(doc["spec"]["encryptedData"]) != 3:
            sys.exit(f"error: {tool.name}: not a SealedSecret with 3 values: {doc['metadata']}")
    proc = subprocess.run(
        [kubeseal, "--recovery-unseal", "--recovery-private-key", str(key), "-o", "json"],
        stdin=open(tool.output, "rb"), capture_output=True, check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"error: kubeseal --recovery-unseal rejected {tool.name}'s output "
                 f"({tool.output}): {proc.stderr.decode(errors='replace').strip()}")
    unsealed = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): d.get("data", {})
        for d in json_stream(proc.stdout.decode())
    }
    values = 0
    for s in secrets:
        ref = (s["metadata"]["namespace"], s["metadata"]["name"])
        got = unsealed.get(ref)
        if got is None:
            sys.exit(f"error: {tool.name}: {ref[0]}/{ref[1]} missing after unsealing")
        for k, v in s["data"].items():
            if base64.b64decode(got.get(k, "")) != base64.b64decode(v):
                sys.exit(f"error: {tool.name}: {ref[0]}/{ref[1]} value {k} differs after unsealing")
            values += 1
    return f"{len(sealed)} SealedSecrets, {values} values unsealed and equal to the input"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kubeseal", required=True)
    p.add_argument("--python", required=True, help="the kubesealpy virtualenv's python")
    p.add_argument("--node", default="node")
    p.add_argument("--node-modules", required=True, help="directory holding node_modules/")
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--secrets", type=int, default=1000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--version-runs", type=int, default=50)
    a = p.parse_args()
    global PEER_PYTHON
    PEER_PYTHON = a.python

    here = Path(__file__).resolve().parent
    a.work.mkdir(parents=True, exist_ok=True)
    key, cert = make_keys(a.work)
    secrets = make_secrets(a.secrets, seed=14)
    yaml_in, json_in = a.work / "secrets.yaml", a.work / "secrets.json"
    write_yaml(secrets, yaml_in)
    json_in.write_text(json.dumps(secrets))

    tools = [
        Tool("kubeseal (ours)",
             "one process, the whole file: --cert --scope namespace-wide -o json",
             [a.kubeseal, "--cert", str(cert), "--scope", SCOPE, "-o", "json"],
             a.work / "out-ours.json", stdin=yaml_in),
        Tool("kubesealpy",
             "one Python process, its API (Sealer.seal_secret per Secret), tuned: C YAML loader, "
             "JSON out; its CLI cannot seal",
             [a.python, str(here / "kubesealpy_seal.py"), "tuned", str(cert), SCOPE,
              str(yaml_in), str(a.work / "out-kubesealpy.json")],
             a.work / "out-kubesealpy.json"),
        Tool("kubesealpy (documented)",
             "the same, as its docstring shows: yaml.safe_load_all, SealedSecret.to_yaml()",
             [a.python, str(here / "kubesealpy_seal.py"), "documented", str(cert), SCOPE,
              str(yaml_in), str(a.work / "out-kubesealpy.yaml")],
             a.work / "out-kubesealpy.yaml"),
        Tool("@linode/kubeseal-encrypt",
             "one Node process, its API (encryptSecretItem per value, all at once); no CLI",
             [a.node, str(here / "kubeseal_encrypt_seal.mjs"), a.node_modules, str(cert),
              str(json_in), str(a.work / "out-node.json")],
             a.work / "out-node.json"),
    ]
    print(f"== sealing {a.secrets} Secrets x 3 values ({SCOPE}, RSA-4096), {a.reps} rounds",
          file=sys.stderr)
    for r in range(a.reps):
        for t in tools:
            t.runs.append(t.run_once())
        print(f"   round {r + 1}: " + ", ".join(f"{t.name} {t.runs[-1].wall:.2f} s" for t in tools),
              file=sys.stderr)
    for t in tools:
        print(f"== check {t.name}: {check(t, a.kubeseal, key, secrets)}", file=sys.stderr)

    version = Tool("kubeseal --version", "", [a.kubeseal, "--version"], a.work / "version.out")
    for _ in range(a.version_runs):
        version.runs.append(version.run_once())

    ours = statistics.median(r.wall for r in tools[0].runs)
    goals = {"kubesealpy": 15.0, "@linode/kubeseal-encrypt": 10.0}
    print(f"\nkubeseal CLI benchmark: {a.secrets} Secrets x 3 values, one process per tool, "
          f"median of {a.reps} (CPU: user+sys of that tool, median)")
    print(f"{'tool':<27} {'median':>9} {'fastest':>9} {'CPU':>8} {'ours is':>9}  goal")
    for t in tools:
        med = statistics.median(r.wall for r in t.runs)
        fastest = min(r.wall for r in t.runs)
        cpu = statistics.median(r.cpu for r in t.runs)
        ratio = "" if t is tools[0] else f"{med / ours:.1f}x"
        goal = ""
        if t.name in goals:
            need = goals[t.name]
            goal = f">= {need:.0f}x: {'met' if med / ours >= need else 'NOT met'}"
        print(f"{t.name:<27} {med:>8.3f}s {fastest:>8.3f}s {cpu:>7.2f}s {ratio:>9}  {goal}")
    vmed = statistics.median(r.wall for r in version.runs) * 1000
    vmin = min(r.wall for r in version.runs) * 1000
    print(f"{'kubeseal --version':<27} {vmed:>7.2f}ms {vmin:>7.2f}ms {'':>8} {'':>9}  "
          f"<= 5 ms: {'met' if vmed <= 5 else 'NOT met'} (median of {a.version_runs})")
    print("\nhow each tool ran:")
    for t in tools:
        print(f"  {t.name}: {t.how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
