#!/usr/bin/env bash
# The project's single test command: formatting, lints, proto lint, tests.
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
command -v grpcurl >/dev/null && command -v buf >/dev/null

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets --locked -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "buf lint"
buf lint

step "cargo test --locked"
cargo test --locked
# No trailing output: cargo test's own summary stays the last thing printed.
step_name=""
