#!/bin/bash
# Jamf Pro policy script for devicetrust (Scripts > devicetrust; run as root by a policy).
#
# Parameters (Jamf passes $1 mount point, $2 computer name, $3 user name: ignored here; the agent
# finds the console user itself):
#   $4  Okta org URL, e.g. https://acme.okta.com (empty: the configuration profile's org_url)
#   $5  Okta org secret key (empty: the profile's org_token_file). Handed to the agent on stdin,
#       never on its command line. Jamf itself shows script parameters to local admins while
#       the policy runs; a root-only token file named by the configuration profile avoids that.
#   $6  mode: enroll (default), renew, repair, uninstall, reenroll
#   $7  options, space-separated: verbose, force (renew now), scep-url=URL, ca-file=PATH
#
# Exit code: the agent's. 75 means "try again later" (no one logged in, network not ready,
# rate limited): the policy's next run completes it.
set -u

bin=${DEVICETRUST_BIN:-/usr/local/bin/devicetrust}
org_url=${4:-}
org_token=${5:-}
mode=${6:-enroll}
options=${7:-}

if [[ ! -x $bin ]]; then
  echo "ERROR: $bin is not installed; install the devicetrust package first"
  exit 1
fi

# Okta's Python task looked for these words in any parameter; keep that working.
for word in "${@:4}"; do
  case $word in
    uninstall) mode=uninstall ;;
    verbose) [[ " $options " == *" verbose "* ]] || options="$options verbose" ;;
  esac
done

args=()
case $mode in
  enroll) args=(enroll) ;;
  renew) args=(renew) ;;
  repair) args=(repair) ;;
  uninstall) args=(uninstall) ;;
  reenroll) args=(uninstall --reenroll) ;;
  *)
    echo "ERROR: unknown mode '$mode' in parameter 6 (enroll, renew, repair, uninstall, reenroll)"
    exit 2
    ;;
esac

for option in $options; do
  case $option in
    verbose) args+=(--verbose) ;;
    force) [[ $mode == renew ]] && args+=(--force) ;;
    scep-url=*) args+=(--scep-url "${option#scep-url=}") ;;
    ca-file=*) args+=(--ca-file "${option#ca-file=}") ;;
    *) echo "WARN: ignoring unknown option '$option' in parameter 7" ;;
  esac
done
[[ -n $org_url ]] && args+=(--org-url "$org_url")

if [[ -n $org_token && ( $mode == enroll || $mode == reenroll || $mode == renew ) ]]; then
  # printf is a shell builtin: the secret goes through a pipe, not a command line.
  printf '%s\n' "$org_token" | "$bin" "${args[@]}" --org-token-file -
  status=${PIPESTATUS[1]}
else
  "$bin" "${args[@]}"
  status=$?
fi
exit "$status"
