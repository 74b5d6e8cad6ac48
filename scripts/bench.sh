#!/usr/bin/env bash
# Benchmarks, written to docs/benchmarks.md: the agent against scepclient and openssl in
# interleaved pairs (benches/ratios.rs), and the agent's own wall times (benches/wall_time.rs).
# Builds the packaged binary (no simulator) first, for its size.
#
#   scripts/bench.sh            # 21 pairs each
#   PAIRS=41 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v scepclient >/dev/null || need+=(scep)
command -v strip >/dev/null || need+=(binutils)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# What the package ships: the agent without the simulator.
cargo build --release --locked --no-default-features --target-dir target/nosim
cargo bench --locked --bench ratios
cargo bench --locked --bench wall_time
