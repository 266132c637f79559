#!/usr/bin/env bash
# Offline checks of the AWS deployment (template.yaml), for CI and before `sam deploy`:
#
#   1. cfn-lint template.yaml          (the SAM template, against SAM and CloudFormation schemas)
#   2. sam validate                    (the SAM transform itself)
#   3. sam validate --lint             (the SAM CLI's own cfn-lint pass)
#   4. cfn-lint on the transformed template (the generated Lambda functions, IAM roles, API
#      stage... as CloudFormation will get them: cfn-lint 1.x lints SAM resources with SAM's
#      schemas and does not transform, so e.g. a Globals Timeout over 900 s or an unused
#      parameter only shows here)
#   5. tests/template/                 (least privilege, DLQ, TTL, batch failures, secrets;
#      the KMS grants, domain resources and outputs of every parameter combination)
#   6. each parameter combination of tests/template/combinations.py (custom domain off/on/on
#      with a hosted zone, KMS key off/on, concurrency caps and alarm e-mail unset/set; and
#      Ingress HttpApi/FunctionUrl x Capacity OnDemand/Provisioned without a domain), rendered
#      as the template with those values as defaults: cfn-lint, `sam validate --lint`, and
#      checkov (the IaC scanner reviewers run), which must report no failed check: every finding
#      is fixed, or skipped in template.yaml with a `checkov:skip` comment giving the reason
#   7. sam build                       (the three functions, release, with cargo-lambda)
#
# Zero errors and zero warnings: every tool's non-zero exit fails the script.
#
# Nothing here talks to AWS. The tools that insist on credentials and a region get dummy ones,
# and the real ones (profiles, SSO, instance metadata) are hidden from them.
#
# The SAM CLI, cfn-lint and cargo-lambda are installed when missing, all into ONE Python
# environment ($PYTHON, default python3): cargo-lambda cross-compiles with zig, which it finds
# as `python3 -m ziglang` (the `ziglang` wheel the cargo-lambda wheel depends on).
# checkov gets a virtualenv of its own ($HOOKHUB_CHECKOV_VENV, default
# ~/.cache/hookhub/checkov-venv): it pins boto3 far below the SAM CLI's pin, so installing it
# next to the SAM CLI would break one or the other.
#
# Architecture: arm64, the template's default. If the aarch64 Rust target cannot be installed,
# the script says so and builds x86_64 instead (Architecture=x86_64), never silently.
# SAM_CHECK_ARCH=x86_64 picks x86_64 on purpose.
#
# Builds go to $CARGO_TARGET_DIR when the caller sets it (CI caches it): the SAM CLI's cargo-lambda
# workflow passes it through to cargo, and otherwise uses the workspace's target/. `sam build`'s
# own output (the artifacts and the built template) goes under that target directory too
# (sam-check/), not into the work tree.
#
# Usage: scripts/sam-check.sh [--no-build]   (--no-build: steps 1-6 only, and says so)
set -euo pipefail
cd "$(dirname "$0")/.."

build=true
for arg in "$@"; do
  case "$arg" in
    --no-build) build=false ;;
    -h | --help)
      sed -n '2,42p' "$0"
      exit 0
      ;;
    *)
      echo "sam-check: unknown argument $arg (see --help)" >&2
      exit 2
      ;;
  esac
done

python=${PYTHON:-python3}

step() { echo "sam-check: == $* =="; }
fail() {
  echo "sam-check: FAIL: $*" >&2
  exit 1
}

# --- Tools, in one Python environment --------------------------------------------------------

pip_install() {
  "$python" -m pip install --quiet --disable-pip-version-check "$@"
  # pyenv only creates shims for new executables on rehash.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
}

# That environment's executables first, so `sam`, `cfn-lint` and `cargo-lambda` are the ones
# installed next to the Python that has ziglang.
scripts_dir=$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
export PATH="$scripts_dir:$PATH"

missing=()
"$python" -c 'import samcli' 2>/dev/null || missing+=("aws-sam-cli>=1.170,<2")
"$python" -c 'import cfnlint' 2>/dev/null || missing+=("cfn-lint>=1.58,<2")
if ! cargo lambda --version >/dev/null 2>&1 || ! "$python" -m ziglang version >/dev/null 2>&1; then
  missing+=("cargo-lambda>=1.9,<2")
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "sam-check: installing ${missing[*]} into $("$python" -c 'import sys; print(sys.prefix)')"
  pip_install "${missing[@]}"
fi
checkov_venv=${HOOKHUB_CHECKOV_VENV:-$HOME/.cache/hookhub/checkov-venv}
checkov="$checkov_venv/bin/checkov"
if ! "$checkov" --version >/dev/null 2>&1; then
  echo "sam-check: installing checkov>=3.2,<4 into $checkov_venv"
  rm -rf "$checkov_venv"
  "$python" -m venv "$checkov_venv"
  "$checkov_venv/bin/python" -m pip install --quiet --disable-pip-version-check "checkov>=3.2,<4"
fi
echo "sam-check: $(sam --version); cfn-lint $(cfn-lint --version | awk '{print $NF}');" \
  "$(cargo lambda --version | awk '{print $1, $2}'); zig $("$python" -m ziglang version);" \
  "checkov $("$checkov" --version)"

# --- Offline AWS settings --------------------------------------------------------------------

export SAM_CLI_TELEMETRY=0
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE AWS_ENDPOINT_URL
# rust-cargolambda is a SAM CLI beta build method; this opts in without a prompt.
export SAM_CLI_BETA_RUST_CARGO_LAMBDA=1

# --- Lint, validate, test --------------------------------------------------------------------

step "cfn-lint template.yaml"
cfn-lint template.yaml
echo "sam-check: cfn-lint: no errors, no warnings"

step "sam validate"
sam validate --template-file template.yaml

step "sam validate --lint"
sam validate --lint --template-file template.yaml

step "cfn-lint on the SAM-transformed template"
work=$(mktemp -d "${TMPDIR:-/tmp}/hookhub-sam-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The same offline transform the template test uses (SAM translator, no AWS calls).
"$python" - "$work/transformed.json" <<'PY'
import json, sys
sys.path.insert(0, "tests/template")
import test_template
with open(sys.argv[1], "w") as out:
    json.dump(test_template.transform(test_template.load_template()), out, indent=1)
PY
cfn-lint "$work/transformed.json"
echo "sam-check: cfn-lint (transformed): no errors, no warnings"

step "template test (tests/template)"
"$python" -m unittest discover --start-directory tests/template --top-level-directory tests/template

step "every parameter combination: cfn-lint, sam validate --lint, checkov"
"$python" tests/template/combinations.py "$work/combinations" >"$work/combinations.txt"
mapfile -t renders <"$work/combinations.txt"
[ "${#renders[@]}" -gt 1 ] || fail "no parameter combinations rendered"
cfn-lint "${renders[@]}"
echo "sam-check: cfn-lint: ${#renders[@]} combinations, no errors, no warnings"
for render in "${renders[@]}"; do
  sam validate --lint --template-file "$render" >/dev/null ||
    fail "sam validate --lint: $(basename "$render" .yaml)"
done
echo "sam-check: sam validate --lint: ${#renders[@]} combinations valid"
# --skip-download: offline (no guideline links from the vendor's API); the checks are local.
# The raw template too: its defaults are the first combination, and its skips must hold there.
checkov_files=(-f template.yaml)
for render in "${renders[@]}"; do checkov_files+=(-f "$render"); done
if ! "$checkov" --framework cloudformation --compact --quiet --skip-download \
  "${checkov_files[@]}" >"$work/checkov.txt" 2>&1; then
  cat "$work/checkov.txt" >&2
  fail "checkov: a finding is neither fixed nor skipped with a reason in template.yaml"
fi
grep -E "^(Passed|cloudformation)" "$work/checkov.txt" | sed 's/^/sam-check: checkov: /'

if ! $build; then
  echo "sam-check: NOT BUILT: sam build skipped (--no-build); lint, validate and the template test passed"
  exit 0
fi

# --- Build -----------------------------------------------------------------------------------

arch=${SAM_CHECK_ARCH:-arm64}
fell_back=false
rust_target() {
  case "$1" in
    arm64) echo aarch64-unknown-linux-gnu ;;
    x86_64) echo x86_64-unknown-linux-gnu ;;
    *) fail "SAM_CHECK_ARCH must be arm64 or x86_64, not $1" ;;
  esac
}
# Whether the Rust standard library for target $1 is installed (works with or without rustup).
has_target() {
  local libdir
  libdir=$(rustc --print target-libdir --target "$1" 2>/dev/null) && [ -d "$libdir" ] &&
    compgen -G "$libdir/libstd-*" >/dev/null
}
ensure_target() {
  has_target "$1" && return 0
  command -v rustup >/dev/null 2>&1 || return 1
  echo "sam-check: rustup target add $1"
  rustup target add "$1" && has_target "$1"
}
if ! ensure_target "$(rust_target "$arch")"; then
  if [ "$arch" = arm64 ]; then
    echo "sam-check: WARNING: the arm64 Rust target (aarch64-unknown-linux-gnu) cannot be" \
      "installed here: building x86_64 instead (Architecture=x86_64). The arm64 build, the" \
      "template's default, is NOT checked on this machine." >&2
    arch=x86_64
    fell_back=true
    ensure_target "$(rust_target "$arch")" || fail "no x86_64-unknown-linux-gnu Rust target either"
  else
    fail "the $arch Rust target ($(rust_target "$arch")) cannot be installed"
  fi
fi

target_dir=${CARGO_TARGET_DIR:-target}
build_dir="$target_dir/sam-check/build"
rm -rf "$build_dir"
mkdir -p "$build_dir"

step "sam build ($arch, release, CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-<workspace target/>})"
started=$SECONDS
sam build --beta-features --template-file template.yaml --build-dir "$build_dir" \
  --parameter-overrides "Architecture=$arch"
elapsed=$((SECONDS - started))

# Each function's artifact: an ELF executable named bootstrap, for the architecture asked for.
"$python" - "$build_dir" "$arch" <<'PY'
import os, struct, sys
build_dir, arch = sys.argv[1:3]
machines = {183: "arm64", 62: "x86_64"}  # ELF e_machine: EM_AARCH64, EM_X86_64
for function in ("ReceiverFunction", "DispatcherFunction", "AdminFunction"):
    path = os.path.join(build_dir, function, "bootstrap")
    if not os.path.isfile(path):
        sys.exit(f"sam-check: FAIL: {path} is missing")
    with open(path, "rb") as f:
        header = f.read(20)
    if header[:4] != b"\x7fELF":
        sys.exit(f"sam-check: FAIL: {path} is not an ELF executable")
    machine = machines.get(struct.unpack_from("<H", header, 18)[0], "unknown")
    if machine != arch:
        sys.exit(f"sam-check: FAIL: {path} is built for {machine}, expected {arch}")
    if not os.access(path, os.X_OK):
        sys.exit(f"sam-check: FAIL: {path} is not executable")
    print(f"sam-check: {function}/bootstrap: {machine}, {os.path.getsize(path) / 1e6:.1f} MB")
PY
echo "sam-check: sam build ($arch) took ${elapsed}s; artifacts in $build_dir"
if $fell_back; then
  echo "sam-check: PASS for x86_64 only: the arm64 build was NOT checked (no aarch64 Rust target)"
else
  echo "sam-check: PASS"
fi
