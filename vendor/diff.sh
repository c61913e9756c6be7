#!/usr/bin/env bash
# Prints, as a patch for vendor/patches/<crate>/, what vendor/<crate>/ holds beyond its
# pristine crate and its patches: edit the vendored copy, then
#   vendor/diff.sh socketioxide-0.18.9 > body   (add a header of what and why above it)
set -euo pipefail
cd "$(dirname "$0")/.."
crate=${1:?usage: vendor/diff.sh <name>-<version>}
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
vendor/rebuild.sh "$fresh" >/dev/null
mkdir -p "$fresh/a" "$fresh/b"
mv "$fresh/$crate" "$fresh/a/$crate"
cp -a "vendor/$crate" "$fresh/b/$crate"
cd "$fresh" && { diff -ruN "a/$crate" "b/$crate" | sed -E 's#^(---|\+\+\+) ([ab])/[^/]+/([^\t]*).*#\1 \2/\3#'; } || true
