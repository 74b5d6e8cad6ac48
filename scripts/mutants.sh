#!/usr/bin/env bash
# Mutation testing (cargo-mutants) of the modules where a missed check is a security hole: each
# mutant is a small change to the code (a condition negated, a function returning a default),
# and a mutant no test notices is a check nothing guards. Slow, so not part of .ci/run; the
# last results are in docs/testing.md.
#
#   scripts/mutants.sh                       # every module below, in this order
#   scripts/mutants.sh pki http              # only these modules
#   scripts/mutants.sh scep --shard 2/4      # other arguments go to cargo mutants
#   scripts/mutants.sh --list                # list the mutants, run nothing
#   scripts/mutants.sh chain --iterate       # after a run: only what it did not catch or build
#   FULL=1 scripts/mutants.sh renewal        # then the whole suite on what the unit tests missed
#
# Made for two shared cores: one job at a time (the jobs share one target directory, so a
# second job only waits on the first's lock: JOBS=2 turns every test run into a timeout) under
# `nice -n 19`; only these files; the unit
# tests (`cargo test --lib`, about 3 s) decide first; a test run over three times the clean run
# (at least 20 s) counts as caught by timeout, which is how a mutant that loops forever ends;
# no debug info; the dependencies are built once into
# target/mutants and reused by every later run. Results per module: target/mutants-out/<module>/mutants.out/
# (caught.txt, missed.txt, timeout.txt, unviable.txt, outcomes.json).
set -euo pipefail
cd "$(dirname "$0")/.."

modules=(pki scep securefs http secret renewal chain store chrome)
declare -A files=(
  [pki]='src/pki/*.rs'
  [scep]='src/scep/message.rs src/scep/client.rs src/scep/cacert.rs src/scep/envelope.rs'
  [securefs]='src/securefs/*.rs'
  [http]='src/http/mod.rs src/http/client.rs src/http/retry.rs src/http/answer.rs src/http/failure.rs src/http/text.rs src/http/clock.rs'
  [secret]='src/secret.rs'
  [renewal]='src/renewal.rs'
  [chain]='src/chain/*.rs'
  [store]='src/store/file.rs'
  [chrome]='src/integrations/chrome.rs'
)

chosen=()
passed=()
for arg in "$@"; do
  if [[ -n ${files[$arg]+set} ]]; then chosen+=("$arg"); else passed+=("$arg"); fi
done
((${#chosen[@]})) || chosen=("${modules[@]}")

if ! command -v cargo-mutants >/dev/null; then
  echo "mutants.sh: installing cargo-mutants" >&2
  cargo install --locked cargo-mutants
fi

# A target directory of its own: the scratch copies cargo-mutants builds in share the built
# dependencies, and a developer's own builds in target/ are not blocked by its lock.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/mutants}
# No debug info: each mutant is a rebuild and a relink of the test binary, and nobody debugs it.
export CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-0}

for module in "${chosen[@]}"; do
  # The agent's own artifacts go before each run (the dependencies stay): a build left from an
  # earlier run's mutant has been served as a later run's baseline.
  [[ " ${passed[*]} " == *" --list "* ]] || cargo clean --quiet -p devicetrust
  selection=()
  for glob in ${files[$module]}; do selection+=(--file "$glob"); done
  out=target/mutants-out/$module
  mkdir -p "$out"
  started=$(date +%s)
  echo "mutants.sh: $module (${files[$module]})" >&2
  # cargo mutants exits 2 when a mutant survived and 3 on a timeout: that is a result, not a
  # failure of this script.
  status=0
  nice -n 19 cargo mutants --jobs "${JOBS:-1}" --timeout-multiplier 3 --minimum-test-timeout 20 \
    --build-timeout-multiplier 4 --output "$out" "${selection[@]}" "${passed[@]}" \
    -- --lib || status=$?
  if [[ ${FULL:-} == 1 && -s $out/mutants.out/missed.txt ]]; then
    # The survivors again, against every test (the built binary and the scripts included).
    nice -n 19 cargo mutants --jobs 1 --timeout-multiplier 3 --minimum-test-timeout 120 \
      --build-timeout-multiplier 4 --iterate --output "$out" "${selection[@]}" \
      "${passed[@]}" || status=$?
  fi
  case $status in 0 | 2 | 3) ;; *) exit "$status" ;; esac
  [[ " ${passed[*]} " == *" --list "* || ! -d $out/mutants.out ]] && continue
  count() {
    if [[ -f $out/mutants.out/$1.txt ]]; then grep -c . "$out/mutants.out/$1.txt" || true; else echo 0; fi
  }
  echo "mutants.sh: $module: caught $(count caught), timeout $(count timeout)," \
    "missed $(count missed), unviable $(count unviable) in $(($(date +%s) - started)) s" >&2
done
