#!/usr/bin/env bash
# Builds and runs local-kms, an emulator of the AWS KMS JSON API (github.com/nsmithuk/local-kms,
# pinned in tests/kms/go.mod), for the tests of crates/kms (docs/security.md, "Tier 2").
#
#   tests/kms/local-kms.sh build       build (or reuse) the binary; prints LOCAL_KMS=<path>
#   tests/kms/local-kms.sh start DIR   start one server with its own seed and database in DIR;
#                                      prints KEY=value lines: the endpoint, key ID, alias, region
#   tests/kms/local-kms.sh stop DIR    stop the server started in DIR (and wait until it is gone)
#
# The build is stamped (Go version, go.mod, go.sum): a second build is instant. The seed
# creates one symmetric (AES-256) key with a random backing key and the alias
# alias/sealed-secrets. local-kms listens on every interface (it takes only a port); it gets a
# port the kernel picks (PORT=0), which it logs, so parallel tests never race for a port.
# stdout carries only KEY=value lines; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out="${SEALED_SECRETS_KMS_BIN_DIR:-$repo/target/kms-bin}"
bin="$out/local-kms"
KEY_ID=6b3c2d3e-5a1f-4c8e-9d7b-0f1e2d3c4b5a
ALIAS=alias/sealed-secrets
REGION=eu-west-2

log() { printf 'local-kms.sh: %s\n' "$*" >&2; }

build() {
  command -v go >/dev/null || { log "go not found on PATH (Go 1.25+ is needed)"; exit 1; }
  local want
  want=$( { go version; cat "$here/go.mod" "$here/go.sum"; } | sha256sum | cut -d' ' -f1)
  if [ -x "$bin" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  mkdir -p "$out"
  # Parallel tests may all call this: one builds, the others wait and then find the stamp.
  exec 9>"$out/.lock"
  flock 9
  if [ -x "$bin" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$want" ]; then
    flock -u 9
    return 0
  fi
  local start=$SECONDS tmp
  tmp=$(mktemp -d "$out/.build.XXXXXX")
  (cd "$here" && go build -trimpath -o "$tmp/local-kms" github.com/nsmithuk/local-kms) >&2
  mv "$tmp/local-kms" "$bin"
  rmdir "$tmp"
  echo "$want" >"$out/.stamp"
  log "built $bin in $((SECONDS - start))s"
  flock -u 9
}

start() {
  local dir="$1"
  build
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    log "a server already runs for $dir (pid $(cat "$dir/pid"))"
    exit 1
  fi
  # A fresh database per start: the seed never overwrites keys that already exist.
  rm -rf "$dir/data"
  cat >"$dir/seed.yaml" <<YAML
Keys:
  Symmetric:
    Aes:
      - Metadata:
          KeyId: $KEY_ID
          Description: sealed-secrets-rs test wrapping key
        BackingKeys:
          - $(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
Aliases:
  - AliasName: $ALIAS
    TargetKeyId: $KEY_ID
YAML
  : >"$dir/local-kms.log"
  # Its own session, detached from the caller's pipes, so the caller can read this script's
  # output to the end while the server keeps running.
  KMS_REGION=$REGION KMS_ACCOUNT_ID=111122223333 KMS_DATA_PATH="$dir/data" \
    KMS_SEED_PATH="$dir/seed.yaml" PORT=0 \
    setsid "$bin" </dev/null >>"$dir/local-kms.log" 2>&1 &
  local pid=$! port=""
  echo "$pid" >"$dir/pid"
  for _ in $(seq 1 200); do
    port=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/local-kms.log" | sed -n 's/.*started on [0-9.]*:\([0-9][0-9]*\).*/\1/p' | head -n1)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/local-kms.log" >&2; log "local-kms exited"; exit 1; }
    sleep 0.05
  done
  [ -n "$port" ] || { cat "$dir/local-kms.log" >&2; log "local-kms did not start within 10s"; stop "$dir"; exit 1; }
  printf 'SEALED_SECRETS_KMS_ENDPOINT=http://127.0.0.1:%s\n' "$port"
  printf 'SEALED_SECRETS_KMS_KEY_ID=%s\n' "$KEY_ID"
  printf 'SEALED_SECRETS_KMS_KEY_ALIAS=%s\n' "$ALIAS"
  printf 'AWS_REGION=%s\n' "$REGION"
  printf 'LOCAL_KMS_PID=%s\n' "$pid"
}

stop() {
  local dir="$1" pid
  [ -f "$dir/pid" ] || return 0
  pid=$(cat "$dir/pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
}

case "${1:-}" in
  build) build; printf 'LOCAL_KMS=%s\n' "$bin" ;;
  start) [ -n "${2:-}" ] || { log "usage: local-kms.sh start DIR"; exit 2; }; start "$2" ;;
  stop) [ -n "${2:-}" ] || { log "usage: local-kms.sh stop DIR"; exit 2; }; stop "$2" ;;
  *) log "usage: local-kms.sh build | start DIR | stop DIR"; exit 2 ;;
esac
