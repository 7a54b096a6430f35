#!/usr/bin/env bash
# Builds the kryoptic PKCS#11 soft token and initialises tokens for the tests of
# crates/pkcs11 (docs/security.md "Tier 1: keys held in a PKCS#11 token").
#
#   tests/hsm/token.sh build          build (or reuse) the module; prints MODULE=<path>
#   tests/hsm/token.sh init DIR LABEL initialise token LABEL in DIR (PINs in DIR/*.pin);
#                                     prints env lines (KEY=value) on stdout
#
# Why kryoptic and not Debian's SoftHSM2: SoftHSM 2.6.1 (bookworm) rejects CKM_RSA_PKCS_OAEP
# with any hash but SHA-1 and with a non-empty label (source data), and sealed values use
# SHA-256 and the scope as label (crates/crypto/FORMAT.md). crates/pkcs11's
# `softhsm2_refuses_sha256_oaep` test re-checks that finding on every run.
#
# Both steps are stamped: a second run is instant. Everything lands under
# $SEALED_SECRETS_HSM_DIR (default: <repo>/target/hsm). stdout carries only KEY=value lines;
# progress goes to stderr.
set -euo pipefail

KRYOPTIC_VERSION=1.5.4
# RSA, the hashes OAEP needs and the sqlite store. Debian bookworm's OpenSSL is 3.0, so the
# default feature set (EdDSA needs OpenSSL 3.2) is not used; "dynamic" links the system
# libcrypto instead of building OpenSSL from source.
KRYOPTIC_FEATURES="kryoptic-lib/dynamic,kryoptic-lib/rsa,kryoptic-lib/hash_all,kryoptic-lib/sqlitedb"
DEB_PACKAGES=(libssl-dev libclang-dev libsqlite3-dev pkg-config opensc python3-pykcs11 softhsm2)

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
hsm_dir="${SEALED_SECRETS_HSM_DIR:-$repo/target/hsm}"
module="$hsm_dir/lib/libkryoptic_pkcs11.so"
stamp="$hsm_dir/lib/.stamp"
want_stamp="kryoptic=$KRYOPTIC_VERSION features=$KRYOPTIC_FEATURES"

log() { printf 'token.sh: %s\n' "$*" >&2; }

missing_packages() {
  for p in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}

packages_present() { [ -z "$(missing_packages)" ]; }

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
    || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
}

build() {
  if [ -f "$module" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want_stamp" ] && packages_present; then
    return 0
  fi
  # Tests run in parallel and each may call this script: one builds, the others wait.
  mkdir -p "$hsm_dir"
  exec 9>"$hsm_dir/.lock"
  flock 9
  install_packages
  if [ -f "$module" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want_stamp" ]; then
    flock -u 9
    return 0
  fi
  local work="$hsm_dir/build"
  mkdir -p "$work/fetch/src" "$hsm_dir/lib"
  # Cargo installs no cdylib, so fetch the published crate through a throw-away package and
  # build it from the registry copy, with the Cargo.lock the crate ships (--locked).
  cat >"$work/fetch/Cargo.toml" <<TOML
[package]
name = "kryoptic-fetch"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
kryoptic = { version = "=$KRYOPTIC_VERSION", default-features = false }
[workspace]
TOML
  : >"$work/fetch/src/lib.rs"
  local manifest
  manifest="$(cargo metadata --format-version 1 --manifest-path "$work/fetch/Cargo.toml" \
    | python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(p["manifest_path"] for p in m["packages"] if p["name"]=="kryoptic"))')"
  log "building kryoptic $KRYOPTIC_VERSION (one time, a few minutes)"
  local start=$SECONDS
  # The token's cryptography is OpenSSL's (C, already optimised); the Rust glue needs no -O3,
  # and opt-level 1 roughly halves the build.
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_INCREMENTAL=false \
    cargo build --release --locked --lib --manifest-path "$manifest" \
      --no-default-features --features "$KRYOPTIC_FEATURES" \
      --target-dir "$work/target" >&2
  cp "$work/target/release/libkryoptic_pkcs11.so" "$module.tmp"
  mv "$module.tmp" "$module"
  printf '%s' "$want_stamp" >"$stamp"
  log "kryoptic built in $((SECONDS - start))s"
  # The object files are not needed again; keep only the module (the disk is shared).
  rm -rf "$work/target"
  flock -u 9
}

init() {
  local dir="$1" label="$2"
  [ -n "$label" ] || { log "usage: token.sh init DIR LABEL"; exit 2; }
  build
  mkdir -p "$dir"
  chmod 700 "$dir"
  local conf="$dir/kryoptic.conf"
  if [ ! -f "$dir/.initialised" ]; then
    # Test PINs, random per token; files are owner-only. pkcs11-tool only takes PINs as
    # arguments, acceptable for a throw-away test token (our crate reads them from files).
    (umask 077
     od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$dir/so.pin"
     od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$dir/user.pin")
    cat >"$conf" <<TOML
[[slots]]
slot = 1
description = "sealed-secrets-rs test token"
dbtype = "sqlite"
dbargs = "$dir/token.sqlite"
TOML
    KRYOPTIC_CONF="$conf" pkcs11-tool --module "$module" --slot 1 --init-token \
      --label "$label" --so-pin "$(cat "$dir/so.pin")" >&2
    KRYOPTIC_CONF="$conf" pkcs11-tool --module "$module" --slot 1 --login --login-type so \
      --so-pin "$(cat "$dir/so.pin")" --init-pin --new-pin "$(cat "$dir/user.pin")" >&2
    printf '%s' "$label" >"$dir/.initialised"
  fi
  printf 'SEALED_SECRETS_PKCS11_MODULE=%s\n' "$module"
  printf 'KRYOPTIC_CONF=%s\n' "$conf"
  printf 'SEALED_SECRETS_PKCS11_TOKEN=%s\n' "$(cat "$dir/.initialised")"
  printf 'SEALED_SECRETS_PKCS11_PIN_FILE=%s\n' "$dir/user.pin"
  printf 'SEALED_SECRETS_PKCS11_SO_PIN_FILE=%s\n' "$dir/so.pin"
}

case "${1:-}" in
  build) build; printf 'MODULE=%s\n' "$module" ;;
  init) init "${2:-}" "${3:-}" ;;
  *) log "usage: token.sh build | init DIR LABEL"; exit 2 ;;
esac
