#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, into one Python environment:
# moto_server (AWS wire-protocol server for the DynamoDB/SQS tests), cargo-lambda (local
# Lambda runtime for the smoke test; it brings zig), openapi-spec-validator with pytest
# (tests/openapi) and Playwright (drives the web console's browser test); plus Debian's
# `chromium` package, the browser that test runs (Playwright's own browser download is never
# used). Idempotent; fast when already installed.
set -euo pipefail

python=${PYTHON:-python3}
pip_install() {
  "$python" -m pip install --quiet --disable-pip-version-check "$@"
  # pyenv only creates shims for new executables on rehash.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
}

if ! moto_server --help >/dev/null 2>&1; then
  echo "installing moto[server]"
  # Exactly the version tests/moto_server.py's patches were written and profiled against.
  pip_install "moto[server]==5.2.1"
fi
if ! cargo lambda --version >/dev/null 2>&1; then
  echo "installing cargo-lambda"
  pip_install "cargo-lambda>=1.9,<2"
fi
# The OpenAPI document's validation (tests/openapi, pytest + openapi-spec-validator).
if ! "$python" -c "import openapi_spec_validator, pytest" >/dev/null 2>&1; then
  echo "installing openapi-spec-validator and pytest"
  pip_install "openapi-spec-validator>=0.7,<1" "pytest>=8"
fi
if ! "$python" -c "import playwright" >/dev/null 2>&1; then
  echo "installing playwright (Python)"
  pip_install "playwright>=1.40,<2"
fi
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian package)"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
  $sudo apt-get install -y chromium || { $sudo apt-get update && $sudo apt-get install -y chromium; }
fi
echo "moto_server: $(command -v moto_server)"
echo "cargo-lambda: $(cargo lambda --version)"
echo "chromium: $(command -v chromium)"
