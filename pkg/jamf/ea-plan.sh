#!/bin/bash
# Jamf Pro Extension Attribute (String): what `devicetrust enroll` would do on this Mac, for a
# rollout read before it starts: "Ready", "Ready: 1 certificate" or "Blocked: <reason>". It
# changes nothing and sends nothing. Always exactly one <result> line, even when the agent is
# not installed.
#
# Before the configuration profile is scoped (the survey ring), set the org here: the plan
# then says what an enrollment with it would do. Leave it empty once the profile names it.
org_url=""
bin=${DEVICETRUST_BIN:-/usr/local/bin/devicetrust}
if [[ ! -x $bin ]]; then
  echo "<result>Not Installed</result>"
  exit 0
fi
args=(ea --plan)
if [[ -n $org_url ]]; then
  args+=(--org-url "$org_url")
fi
line=$("$bin" "${args[@]}" 2>/dev/null | grep -m1 '^<result>.*</result>$')
echo "${line:-<result>Agent Error</result>}"
exit 0
