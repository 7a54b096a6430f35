"""The kubesealpy side of tests/bench/cli.sh: seals every Secret of a multi-document YAML file
with kubesealpy's Python API, in one process.

kubesealpy 1.0.1's own CLI (`kubesealpy seal`) prints "not yet implemented", so its API is
the only way to use it: one Sealer for the run, `seal_secret` per Secret. Two ways to drive it:
  documented: PyYAML's `safe_load_all` and the package's own `SealedSecret.to_yaml()` (what its
              docstring shows), a YAML stream out;
  tuned:      the C YAML loader when PyYAML has it and `json.dumps` of the model instead of its
              pure-Python `to_yaml`, one JSON document per line out: the fastest honest way we
              found, so the one the goals are checked against.

Usage: python kubesealpy_seal.py documented|tuned CERT.pem SCOPE INPUT.yaml OUTPUT
"""

import json
import sys

import yaml
from kubesealpy import Sealer, SealingScope, Secret


def main() -> int:
    if len(sys.argv) != 6 or sys.argv[1] not in ("documented", "tuned"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, cert, scope_name, input_path, output_path = sys.argv[1:]
    scope = {
        "strict": SealingScope.STRICT,
        "namespace-wide": SealingScope.NAMESPACE_WIDE,
        "cluster-wide": SealingScope.CLUSTER_WIDE,
    }[scope_name]
    sealer = Sealer.from_certificate_file(cert)
    with open(input_path, encoding="utf-8") as f:
        if mode == "documented":
            docs = [d for d in yaml.safe_load_all(f) if d]
        else:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            docs = [d for d in yaml.load_all(f, Loader=loader) if d]
    with open(output_path, "w", encoding="utf-8") as out:
        for i, doc in enumerate(docs):
            sealed = sealer.seal_secret(Secret.model_validate(doc), scope=scope)
            if mode == "documented":
                out.write(("---\n" if i else "") + sealed.to_yaml())
            else:
                out.write(json.dumps(sealed.model_dump(by_alias=True, exclude_none=True)))
                out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
