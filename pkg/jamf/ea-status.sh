#!/bin/bash
# Jamf Pro Extension Attribute (String): the device-trust health status, e.g. "Healthy".
# Always exactly one <result> line, even when the agent is not installed.
bin=${DEVICETRUST_BIN:-/usr/local/bin/devicetrust}
if [[ ! -x $bin ]]; then
  echo "<result>Not Installed</result>"
  exit 0
fi
line=$("$bin" ea 2>/dev/null | grep -m1 '^<result>.*</result>$')
echo "${line:-<result>Agent Error</result>}"
exit 0
