#!/usr/bin/env bash
# Builds the signed, notarized devicetrust installer: a universal binary (arm64 + x86_64),
# signed with the hardened runtime, in a component pkg with the global LaunchAgent and the
# postinstall script, wrapped in a signed product archive, notarized and stapled.
#
# Runs on a Mac with Xcode command-line tools and both Rust targets
# (rustup target add aarch64-apple-darwin x86_64-apple-darwin). Identities come from the
# environment, never from this file:
#   APP_IDENTITY        "Developer ID Application: Example (TEAMID1234)"   (codesign)
#   INSTALLER_IDENTITY  "Developer ID Installer: Example (TEAMID1234)"     (productbuild)
#   NOTARY_PROFILE      a keychain profile made with `xcrun notarytool store-credentials`
# `--unsigned` builds the same package without signing or notarizing (CI, a test Mac): its
# binary keeps the linker's ad-hoc signature, so the keychain knows it as cdhash:<hex>.
# Output: target/pkg/devicetrust-<version>.pkg
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "ERROR: $*" >&2
  exit 1
}

[[ $(uname -s) == Darwin ]] || die "build-pkg.sh runs on macOS only (pkgbuild, codesign, notarytool)"

unsigned=
case ${1:-} in
  --unsigned) unsigned=1 ;;
  "") ;;
  *) die "usage: pkg/build-pkg.sh [--unsigned]" ;;
esac

if [[ -z $unsigned ]]; then
  missing=()
  for var in APP_IDENTITY INSTALLER_IDENTITY NOTARY_PROFILE; do
    [[ -n ${!var:-} ]] || missing+=("$var")
  done
  ((${#missing[@]} == 0)) || die "set ${missing[*]} (see the comment at the top of pkg/build-pkg.sh)"
fi

for tool in cargo lipo codesign pkgbuild productbuild xcrun; do
  command -v "$tool" >/dev/null || die "$tool not found (install the Xcode command-line tools / rustup)"
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[[ -n $version ]] || die "cannot read the version from Cargo.toml"
label=com.devicetrust.renew
out=target/pkg
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "INFO: building devicetrust $version for arm64 and x86_64"
# The shipped agent carries no simulator: `devicetrust demo` runs from a source checkout.
for target in aarch64-apple-darwin x86_64-apple-darwin; do
  cargo build --release --locked --no-default-features --target "$target"
done

payload=$work/payload
mkdir -p "$payload/usr/local/bin" "$payload/Library/LaunchAgents"
lipo -create -output "$payload/usr/local/bin/devicetrust" \
  target/aarch64-apple-darwin/release/devicetrust \
  target/x86_64-apple-darwin/release/devicetrust
cp "pkg/payload/Library/LaunchAgents/$label.plist" "$payload/Library/LaunchAgents/"
chmod 755 "$payload/usr/local/bin/devicetrust"
chmod 644 "$payload/Library/LaunchAgents/$label.plist"

if [[ -z $unsigned ]]; then
  echo "INFO: signing the binary (hardened runtime, secure timestamp)"
  codesign --force --options runtime --timestamp --identifier com.devicetrust.agent \
    -s "$APP_IDENTITY" "$payload/usr/local/bin/devicetrust"
  codesign --verify --strict --verbose=2 "$payload/usr/local/bin/devicetrust"
fi

mkdir -p "$out"
component=$work/devicetrust-component.pkg
product=$out/devicetrust-$version.pkg
pkgbuild --root "$payload" --scripts pkg/scripts --identifier com.devicetrust.agent \
  --version "$version" --install-location / "$component"
if [[ -n $unsigned ]]; then
  productbuild --package "$component" "$product"
  echo "INFO: built $product (unsigned)"
  exit 0
fi
productbuild --package "$component" --sign "$INSTALLER_IDENTITY" --timestamp "$product"

echo "INFO: notarizing (this waits for Apple)"
xcrun notarytool submit "$product" --keychain-profile "$NOTARY_PROFILE" --wait
xcrun stapler staple "$product"
pkgutil --check-signature "$product"
echo "INFO: built $product"
