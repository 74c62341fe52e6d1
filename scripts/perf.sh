#!/usr/bin/env bash
# Reproduces the figures in PERFORMANCE.md: builds release binaries, then runs
# the load tool (direct HTTP, the floor and the gateway against the same
# emulator, side by side) at concurrency 1, 64 and 1000, a 60 s sustained run
# for memory, the same measured with wrk and h2load (the `loadgen` scenario),
# and the translation benchmarks. Prints everything; takes about 9 minutes
# after the build. Usage: scripts/perf.sh [output-file]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-/dev/stdout}
cargo build --release --locked --bins
load=target/release/graph-grpc-gateway-load
# wrk and h2load, for the loadgen scenario (scripts/tools.sh installs them).
export PATH="$PWD/.cache/tools/bin:$PATH"
if ! command -v wrk >/dev/null || ! command -v h2load >/dev/null; then
  bash scripts/tools.sh
fi
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "## added latency: concurrency 1"
  "$load" --floor --concurrency 1 --duration 10s --warmup 2000
  echo "## CPU per call and throughput: concurrency 64"
  "$load" --floor --concurrency 64 --duration 10s --warmup 5000
  echo "## what TLS on the gRPC port costs: concurrency 64 and 1"
  "$load" --tls --floor --skip-direct --concurrency 64 --duration 10s --warmup 5000
  "$load" --tls --floor --concurrency 1 --duration 10s --warmup 2000
  echo "## the same with the gateway on one worker thread"
  "$load" --gateway-threads 1 --concurrency 64 --duration 10s --warmup 5000
  echo "## Get at concurrency 64"
  "$load" --floor --rpc get --concurrency 64 --duration 10s --warmup 5000
  echo "## memory with 1,000 calls in flight (the default 256 of them at Graph)"
  "$load" --concurrency 1000 --tasks 1000 --duration 10s --warmup 5000
  echo "## memory with 1,000 calls in flight, all of them at Graph"
  "$load" --skip-direct --graph-max-in-flight 2000 --concurrency 1000 --tasks 1000 --duration 10s --warmup 5000
  echo "## memory over a 60 s sustained run"
  "$load" --skip-direct --concurrency 64 --duration 60s --warmup 5000 --sample-every 10s
  echo "## a second opinion: wrk to the emulator, h2load through the gateway, concurrency 64 and 1"
  "$load" loadgen --concurrency 64,1 --duration 10s --warmup 2000
  echo "## translation benchmarks"
  cargo bench --locked --bench translate 2>&1 | grep -E "^(encode|decode)/|time:"
} | tee "$out"
