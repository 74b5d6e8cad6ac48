#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need (idempotently),
# then runs cargo. `.ci/run` calls this same script.
#
#   scripts/test.sh            # everything
#   scripts/test.sh sim        # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then sudo=sudo; else sudo=; fi
updated=
apt_install() {
  if [[ -z $updated ]]; then
    $sudo apt-get update -qq >/dev/null
    updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# Debian packages the tests drive: openssl (interop checks), scep (micromdm's scepserver and
# scepclient for the SCEP path), shellcheck (the shipped scripts), libnss3-tools (certutil and
# pk12util: the NSS database Chrome and Chromium read client certificates from on Linux),
# faketime (libfaketime: the journey tests run the agent days and years ahead), systemd
# (systemd-analyze checks the renewal job's units), strace (the no-secret-in-argv tests trace
# every program the agent starts; the plan test proves `plan` opens nothing for writing and
# connects nowhere).
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v scepserver >/dev/null || need+=(scep)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v certutil >/dev/null || need+=(libnss3-tools)
command -v faketime >/dev/null || need+=(faketime)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v strace >/dev/null || need+=(strace)
if ((${#need[@]})); then
  echo "test.sh: installing ${need[*]}" >&2
  apt_install "${need[@]}"
fi

# Chromium, for the real-browser test (tests/browser.rs) only, and large: if it cannot be
# installed, that test says so and skips (under CI it fails instead).
if ! command -v chromium >/dev/null; then
  echo "test.sh: installing chromium" >&2
  apt_install chromium || echo "test.sh: chromium could not be installed; tests/browser.rs will skip" >&2
fi

# A real unprivileged account for the trust-boundary tests (tests/trust_boundary.rs): a user
# who edits their own files to steer root's runs. No password, no login shell, no home made
# here (the tests make one under their own root).
if [[ $(id -u) -eq 0 ]] && ! getent passwd devicetrust-user >/dev/null; then
  useradd --system --no-create-home --home-dir /home/devicetrust-user \
    --shell /usr/sbin/nologin devicetrust-user
fi

if command -v shellcheck >/dev/null; then
  shellcheck scripts/*.sh pki-fixtures/*.sh pkg/jamf/*.sh pkg/build-pkg.sh pkg/scripts/* .ci/run
fi

# Besides the unit and integration tests, this runs the docs tests (tests/docs.rs): the README's
# and the admin guide's command examples against the simulator, and every TOML example.
cargo test --locked "$@"

# The file-safety rules differ for root and for everyone else (root refuses a configuration file
# that is not root's alone, and hands what it makes in a home to the home's owner). Run as root,
# the suite checks root's side only; the unit tests run again as the unprivileged account for
# the other. CI is unset for this run: the tests that need root then skip, as they do for a
# developer, instead of failing because CI promises root.
if [[ $# -eq 0 && $(id -u) -eq 0 ]]; then
  unit_tests=$(cargo test --locked --lib --no-run 2>&1 | sed -n 's/.*Executable unittests src\/lib.rs (\(.*\))$/\1/p')
  [[ -n $unit_tests ]] || { echo "test.sh: the unit test binary was not found" >&2; exit 1; }
  [[ $unit_tests == /* ]] || unit_tests=$PWD/$unit_tests
  echo "test.sh: the unit tests again, as devicetrust-user" >&2
  (cd /tmp && runuser -u devicetrust-user -- env -u CI HOME=/tmp "$unit_tests" --quiet)
fi
