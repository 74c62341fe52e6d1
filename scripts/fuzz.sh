#!/usr/bin/env bash
# Fuzzes the translation with cargo-fuzz (libFuzzer) for a bounded time.
#
#   scripts/fuzz.sh [SECONDS]    run each target for SECONDS (default 20)
#
# Targets (fuzz/fuzz_targets): graph_response (any bytes as a Graph answer:
# task_from_graph, page_from_graph, page tokens from nextLinks) and
# request_path (any bytes as an Update, Get or List request message:
# patch_request, IdSegment, list_query). Each starts from the committed seeds
# in fuzz/seeds/<target> (Graph answers from the emulator, encoded requests)
# and grows its own corpus in .cache/fuzz/corpus/<target>, kept between runs
# and never committed. A crash stops the run with a failure; its input is
# saved under .cache/fuzz/artifacts/<target>/ and replays with
#   cargo +nightly fuzz run <target> <that file>
#
# Needs the nightly toolchain (the targets build with sanitizer flags);
# installs the pinned cargo-fuzz with scripts/tools.sh. FUZZ_SANITIZER picks
# the sanitizer (default address; `none` where its runtime is missing).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS per target, default 20]" >&2
  exit 2
fi
sanitizer="${FUZZ_SANITIZER:-address}"
targets=(graph_response request_path)
work=.cache/fuzz

cargo +nightly --version >/dev/null 2>&1 ||
  { echo "scripts/fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2; exit 1; }
bash scripts/tools.sh cargo-fuzz
export PATH="$PWD/.cache/tools/bin:$PATH"

# The fuzz crate's own target dir: its builds are nightly, instrumented and
# never shared with the main build's.
build_flags=(--sanitizer "$sanitizer" --target-dir "$work/target")

echo "==> cargo +nightly fuzz build (sanitizer: $sanitizer)" >&2
cargo +nightly fuzz build "${build_flags[@]}"

mkdir -p "$work/logs"
for target in "${targets[@]}"; do
  corpus="$work/corpus/$target"
  artifacts="$work/artifacts/$target"
  log="$work/logs/$target.log"
  mkdir -p "$corpus" "$artifacts"
  echo "==> fuzz $target for ${seconds}s (seeds fuzz/seeds/$target, corpus $corpus)" >&2
  if ! cargo +nightly fuzz run "${build_flags[@]}" "$target" "$corpus" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -artifact_prefix="$artifacts/" \
    -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "scripts/fuzz.sh: $target FAILED; the input is in $artifacts/, the whole log in $log" >&2
    exit 1
  fi
  # libFuzzer's closing lines: runs, speed, corpus size.
  grep -E '^(Done [0-9]+ runs|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb))' "$log" >&2 || true
done
echo "scripts/fuzz.sh: ${#targets[@]} targets, ${seconds}s each, no crash" >&2
