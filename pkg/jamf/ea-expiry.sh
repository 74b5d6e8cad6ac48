#!/bin/bash
# Jamf Pro Extension Attribute (Date): the device-trust certificate's expiry, UTC,
# "YYYY-MM-DD HH:MM:SS"; empty when there is no certificate or no agent.
bin=${DEVICETRUST_BIN:-/usr/local/bin/devicetrust}
line=""
if [[ -x $bin ]]; then
  line=$("$bin" ea --expiry 2>/dev/null | grep -m1 '^<result>.*</result>$')
fi
echo "${line:-<result></result>}"
exit 0
