#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit + contract + end-to-end tests (SQLite and moto),
# and the cargo-lambda smoke test of the three functions.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --all-targets --locked
# docs/openapi.json (kept equal to the generated document by the `openapi` test) validates.
"${PYTHON:-python3}" -m pytest -q tests/openapi
scripts/lambda-smoke.sh
# Benchmarks are not run in CI, only proven to still run: a seconds-long smoke pass.
cargo build --locked -p hookhub -p hookhub-receiver -p hookhub-dispatcher -p hookhub-admin -p hookhub-bench
"${CARGO_TARGET_DIR:-target}/debug/hookhub-bench" all --smoke >/dev/null
echo "benchmark smoke: ok"
