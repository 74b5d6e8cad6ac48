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
#   $8 to $11: unused, but see below.
#
# Okta's Python task took the words `uninstall` and `verbose` in any parameter, and policies
# written for it still pass them where they used to. Each works in any parameter from $4 to
# $11: a parameter that is only that word (or, from $7 on, holds it among its words) asks for
# it, and the word is never read as an org URL, a secret, a mode or an unknown option.
#
# Exit code: the agent's. 75 means "try again later" (no one logged in, network not ready,
# rate limited): the policy's next run completes it.
#
# macOS runs this with its bash 3.2, where `set -u` calls an empty array unbound: arrays that
# may be empty are expanded as ${a[@]+"${a[@]}"}.
set -u

bin=${DEVICETRUST_BIN:-/usr/local/bin/devicetrust}

if [[ ! -x $bin ]]; then
  echo "ERROR: $bin is not installed; install the devicetrust package first"
  exit 1
fi

# Jamf passes at most eleven parameters; param[n] is $n, for n from 4 to 11.
declare -a param
for n in 4 5 6 7 8 9 10 11; do
  param[n]=${!n:-}
done

# The old task's words. $4 to $6 each hold one value, so there the word must be the whole
# parameter, which then counts as empty; from $7 on a parameter is a list of words.
legacy_uninstall=
legacy_verbose=
take_word() {
  case $1 in
    uninstall) legacy_uninstall=1 ;;
    verbose) legacy_verbose=1 ;;
    *) return 1 ;;
  esac
}
for n in 4 5 6; do
  if [[ ${param[n]} =~ ^[[:space:]]*([a-z]+)[[:space:]]*$ ]] && take_word "${BASH_REMATCH[1]}"; then
    param[n]=
  fi
done
options=()
for n in 7 8 9 10 11; do
  read -ra words <<<"${param[n]}"
  for word in ${words[@]+"${words[@]}"}; do
    if take_word "$word"; then
      continue
    elif ((n == 7)); then
      options+=("$word")
    else
      echo "WARN: ignoring '$word' in parameter $n (only uninstall and verbose are read there)"
    fi
  done
done

org_url=${param[4]}
org_token=${param[5]}
mode=${param[6]:-enroll}
[[ -n $legacy_uninstall ]] && mode=uninstall

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

for option in ${options[@]+"${options[@]}"}; do
  case $option in
    force) [[ $mode == renew ]] && args+=(--force) ;;
    scep-url=*) args+=(--scep-url "${option#scep-url=}") ;;
    ca-file=*) args+=(--ca-file "${option#ca-file=}") ;;
    *) echo "WARN: ignoring unknown option '$option' in parameter 7" ;;
  esac
done
[[ -n $legacy_verbose ]] && args+=(--verbose)
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
