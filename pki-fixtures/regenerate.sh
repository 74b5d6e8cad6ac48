#!/usr/bin/env bash
# Regenerates the PKI test fixtures in this directory with the openssl CLI only.
# Safe to re-run: every file is overwritten under the same name. Keys are for tests only.
set -euo pipefail

cd "$(dirname "$0")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

days_20y=7300

new_key() {
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
}

new_ca() { # name common-name
    new_key "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days "$days_20y" -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$1.pem"
}

new_ca mtls-ca "MTLS Certificate Authority"
new_ca tls-ca "Device Trust Test TLS Authority"

cat >"$work/device.ext" <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT

new_key device.key
openssl req -new -key device.key -sha256 -subj "/C=US/ST=CA/O=Okta/CN=Okta MTLS" \
    -out "$work/device.csr"
openssl x509 -req -in "$work/device.csr" -CA mtls-ca.pem -CAkey mtls-ca.key \
    -set_serial 0x1001 -days "$days_20y" -sha256 -extfile "$work/device.ext" -out device.pem

# `openssl x509` in 3.0 cannot back-date; `openssl ca` can, given a throwaway database.
touch "$work/index.txt"
cat >"$work/ca.cnf" <<CNF
[ ca ]
default_ca = expired
[ expired ]
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[ any ]
commonName = supplied
countryName = optional
stateOrProvinceName = optional
organizationName = optional
CNF
echo 1002 >"$work/serial"
openssl ca -batch -config "$work/ca.cnf" -cert mtls-ca.pem -keyfile mtls-ca.key \
    -in "$work/device.csr" -preserveDN -notext -extfile "$work/device.ext" \
    -startdate 20200101000000Z -enddate 20210101000000Z -out device-expired.pem 2>/dev/null

# The claims exactly as the agent writes them (Python json.dumps spacing), no trailing newline.
printf '%s' '{"device": {"uuid": "5E2D3C4B-0000-1111-2222-333344445555", "displayName": "Fixture Mac"}, "iat": 1750000000, "exp": 1750003600, "nbf": 1749999700}' \
    >renewal-claims.json
openssl cms -sign -binary -nodetach -md sha256 -outform DER \
    -signer device.pem -inkey device.key -in renewal-claims.json -out renewal-token.der

openssl verify -CAfile mtls-ca.pem device.pem >/dev/null
# Exactly the check of protocol section 4: the default (S/MIME) purpose, no extra flags.
openssl cms -verify -inform DER -CAfile mtls-ca.pem -in renewal-token.der \
    -out /dev/null 2>/dev/null
echo "fixtures regenerated in $(pwd)"
