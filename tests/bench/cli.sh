#!/usr/bin/env bash
# The kubeseal CLI benchmark, side by side with the two sealing tools users
# would otherwise pick, in the same run:
#   - kubesealpy (PyPI), a Python library;
#   - @linode/kubeseal-encrypt (npm), a JavaScript library.
# Both are installed from their registries into target/bench/ (pinned, idempotent: nothing is
# installed again when the pinned version is there) and driven by a small script each
# (tests/bench/kubesealpy_seal.py, tests/bench/kubeseal_encrypt_seal.mjs) that seals the whole
# file in one process through the package's API (neither ships a CLI that can seal).
# Then builds our kubeseal in release, seals a 1,000-Secret x 3-value file with each tool
# (namespace-wide scope, an RSA-4096 certificate generated for the run), checks every output
# by unsealing it with `kubeseal --recovery-unseal`, times `kubeseal --version`, and prints a
# table with the ratios and goals (tests/bench/cli_bench.py).
#
# Usage: bash tests/bench/cli.sh [SECRETS [REPS]]   (defaults: 1000 Secrets, 5 rounds)
# Needs: cargo, python3 (with venv), node >= 18 and npm, openssl.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

KUBESEALPY_VERSION=1.0.1
NODE_PEER=@linode/kubeseal-encrypt
NODE_PEER_VERSION=1.0.1

secrets=${1:-1000}
reps=${2:-5}
if [[ $# -gt 2 || ! $secrets =~ ^[1-9][0-9]*$ || ! $reps =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: bash tests/bench/cli.sh [SECRETS [REPS]]  (positive integers; got: ${*:-nothing})" >&2
    exit 2
fi
for tool in python3 node npm openssl cargo; do
    command -v "$tool" >/dev/null || { echo "error: $tool is needed and not on PATH" >&2; exit 1; }
done

bench=$ROOT/target/bench
mkdir -p "$bench"

venv=$bench/kubesealpy-venv
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys
sys.exit(m.version('kubesealpy') != '$KUBESEALPY_VERSION')" 2>/dev/null; then
    echo "== installing kubesealpy $KUBESEALPY_VERSION (PyPI) into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "kubesealpy==$KUBESEALPY_VERSION" >&2
fi

node_dir=$bench/node-peer
installed=$(node -p "require('$node_dir/node_modules/$NODE_PEER/package.json').version" 2>/dev/null || true)
if [[ $installed != "$NODE_PEER_VERSION" ]]; then
    echo "== installing $NODE_PEER $NODE_PEER_VERSION (npm) into $node_dir" >&2
    mkdir -p "$node_dir"
    npm install --prefix "$node_dir" --no-audit --no-fund --loglevel=error \
        "$NODE_PEER@$NODE_PEER_VERSION" >&2
fi

echo "== cargo build --release -p kubeseal" >&2
cargo build --release --locked -p kubeseal >&2
target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

exec python3 tests/bench/cli_bench.py \
    --kubeseal "$target_dir/release/kubeseal" \
    --python "$venv/bin/python" \
    --node node --node-modules "$node_dir" \
    --work "$bench/cli" --secrets "$secrets" --reps "$reps"
