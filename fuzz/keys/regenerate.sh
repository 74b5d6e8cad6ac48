#!/usr/bin/env bash
# Regenerates the fuzzing CA and device identity with the openssl CLI. RSA-1024, unlike the
# 2048-bit pki-fixtures: the parsers do not care about the key size, and every RSA private-key
# operation of an instrumented build is ~8 times cheaper, which is what the SCEP exchange target
# spends its time on. Throwaway test keys, committed on purpose. Re-run `cargo run --example
# make_corpus` in fuzz/ afterwards: the seeds are sealed and signed with these keys.
set -euo pipefail

cd "$(dirname "$0")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
days_20y=7300

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -sha256 -days "$days_20y" -subj "/CN=MTLS Certificate Authority" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out ca.pem

cat >"$work/device.ext" <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out device.key 2>/dev/null
openssl req -new -key device.key -sha256 -subj "/C=US/ST=CA/O=Okta/CN=Okta MTLS" \
    -out "$work/device.csr"
openssl x509 -req -in "$work/device.csr" -CA ca.pem -CAkey ca.key -set_serial 0x2001 \
    -days "$days_20y" -sha256 -extfile "$work/device.ext" -out device.pem 2>/dev/null
openssl verify -CAfile ca.pem device.pem >/dev/null
echo "fuzzing keys regenerated in $(pwd)"
