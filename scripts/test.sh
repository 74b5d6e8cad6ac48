#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need (idempotently),
# then runs cargo. `.ci/run` calls this same script.
#
#   scripts/test.sh            # everything
#   scripts/test.sh sim        # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests drive: openssl (interop checks), scep (micromdm's scepserver and
# scepclient for the SCEP path), shellcheck (the shipped scripts).
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v scepserver >/dev/null || need+=(scep)
command -v shellcheck >/dev/null || need+=(shellcheck)
if ((${#need[@]})); then
  echo "test.sh: installing ${need[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

if command -v shellcheck >/dev/null; then
  shellcheck scripts/*.sh pki-fixtures/*.sh pkg/jamf/*.sh pkg/build-pkg.sh pkg/scripts/* .ci/run
fi

cargo test --locked "$@"
