"""The kubesealpy side of tests/bench/cli.sh: seals every Secret of a multi-document YAML file
with kubesealpy's Python API, in one process, and writes one SealedSecret JSON document per
line.

kubesealpy 1.0.1's own CLI (`kubesealpy seal`) prints "not yet implemented", so its API is
the only way to use it: one Sealer for the run, `seal_secret` per Secret, exactly what a user's
script would do. Kept in the peer's favour: the C YAML loader when PyYAML has it, and JSON
output (json.dumps, C) instead of its pure-Python `to_yaml`.

Usage: python kubesealpy_seal.py CERT.pem SCOPE INPUT.yaml OUTPUT.json
"""

import json
import sys

import yaml
from kubesealpy import Sealer, SealingScope, Secret


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    cert, scope_name, input_path, output_path = sys.argv[1:]
    scope = {
        "strict": SealingScope.STRICT,
        "namespace-wide": SealingScope.NAMESPACE_WIDE,
        "cluster-wide": SealingScope.CLUSTER_WIDE,
    }[scope_name]
    sealer = Sealer.from_certificate_file(cert)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(input_path, encoding="utf-8") as f:
        docs = [d for d in yaml.load_all(f, Loader=loader) if d]
    with open(output_path, "w", encoding="utf-8") as out:
        for doc in docs:
            sealed = sealer.seal_secret(Secret.model_validate(doc), scope=scope)
            out.write(json.dumps(sealed.model_dump(by_alias=True, exclude_none=True)))
            out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
