#!/usr/bin/env bash
# The project's single test command: formatting, lints, proto lint and
# breaking-change check, the Helm chart harness (tests/helm), tests.
# Installs the pinned grpcurl and buf first (scripts/tools.sh, into
# .cache/tools) and puts them on PATH, which the end-to-end tests rely on.
# Stops at the first failing step, naming it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step_name=""
on_exit() {
  local rc=$?
  if [[ $rc -ne 0 && -n "$step_name" ]]; then
    echo "scripts/test.sh: FAILED at step '$step_name' (exit $rc)" >&2
  fi
}
trap on_exit EXIT

step() {
  step_name="$1"
  echo "==> $step_name" >&2
}

step "install tools (scripts/tools.sh)"
# shellcheck source=scripts/tools.sh
source scripts/tools.sh
command -v grpcurl >/dev/null && command -v buf >/dev/null && command -v promtool >/dev/null && command -v wrk >/dev/null && command -v h2load >/dev/null

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets --locked -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "fuzz targets compile (cargo check fuzz/)"
# Running them needs nightly and minutes of build (scripts/fuzz.sh); checking
# them on stable keeps them in step with the translation code.
cargo check --locked --quiet --manifest-path fuzz/Cargo.toml

step "buf lint"
buf lint

step "buf breaking (scripts/proto-breaking.sh)"
# The proto against main before this change, read from git: a change that
# breaks existing clients fails here unless it moves to a new package version.
scripts/proto-breaking.sh

step "helm chart (lint, render, validate)"
# tests/helm: real Helm v4 (helm-python-sdk) lints and renders the chart for
# each value file in tests/helm/values; kubernetes-validate --strict and the
# vendored ServiceMonitor and PrometheusRule CRDs check every object; promtool
# checks the alert rules and runs their unit tests (venv and promtool from
# scripts/tools.sh).
helm_log=$(mktemp)
.cache/tools/helm-test/venv/bin/python -m pytest -q --color=no tests/helm 2>&1 | tee "$helm_log"

step "cargo test --locked --all-targets"
# --all-targets: unit, integration and bench targets (the crate has no doc
# tests). --nocapture lets the chaos soak report its counts. The output is kept to print one closing total for every binary.
test_log=$(mktemp)
# Property tests explore new cases on every local run; a CI run uses one
# fixed seed so that its verdict depends on the code alone (cases that ever
# failed are replayed from tests/proptest-regressions either way).
if [ -n "${CI:-}" ]; then
  export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261128}"
fi
cargo test --locked --all-targets -- --nocapture 2>&1 | tee "$test_log"
# The chaos soak prints its counts; show them.
grep -ho "chaos soak:.*" "$test_log" >&2 || true
step_name=""
# The total adds cargo's `test result:` lines and pytest's closing summary
# ("N failed, M passed in Ts").
awk -v helm_log="$helm_log" '
  function count() { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
  FILENAME == helm_log && /^=* *[0-9]+ [a-z]+/ && / in [0-9.]+s/ { count() }
  FILENAME != helm_log && /^test result:/ { count() }
  END { printf "tests: %d passed, %d failed\n", p, f }' "$helm_log" "$test_log"
rm -f "$test_log" "$helm_log"
