#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain: moto_server (AWS wire-protocol
# server for the DynamoDB/SQS adapter tests). Idempotent; fast when already installed.
set -euo pipefail

python=${PYTHON:-python3}
if ! command -v moto_server >/dev/null 2>&1 || ! moto_server --help >/dev/null 2>&1; then
  echo "installing moto[server]"
  "$python" -m pip install --quiet --disable-pip-version-check "moto[server]>=5,<6"
  # pyenv only creates the moto_server shim on rehash.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
moto_server --help >/dev/null
echo "moto_server: $(command -v moto_server)"
