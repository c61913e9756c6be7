#!/usr/bin/env bash
# Checks that vendor/ holds exactly crates.io's crates of vendor/crates.txt with the
# patches of vendor/patches/ applied (nothing edited by hand, nothing left over), and that
# Cargo.lock resolves each of them to its vendored copy: a [patch.crates-io] entry that
# stops matching (say, after a version bump) only makes cargo warn, and would silently
# build the unpatched crate from the registry.
set -euo pipefail
cd "$(dirname "$0")/.."
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
vendor/rebuild.sh "$fresh"

status=0
for dir in vendor/*/; do
  crate=$(basename "$dir")
  [ "$crate" = patches ] && continue
  if [ ! -d "$fresh/$crate" ]; then
    echo "vendor/$crate is not in vendor/crates.txt" >&2
    status=1
  fi
done
if ! diff -r "$fresh" vendor --exclude=patches --exclude=crates.txt --exclude='*.sh' --exclude=README.md >&2; then
  echo "vendor/ differs from the pristine crates plus vendor/patches/ (see the diff above): run vendor/rebuild.sh" >&2
  status=1
fi

# Each crate must be locked once, without a source (a path dependency: the [patch]), and
# never from the registry.
while read -r name version _; do
  case "$name" in '' | '#'*) continue ;; esac
  entries=$(awk -v n="$name" -v v="$version" '
    /^\[\[package\]\]/ { if (hit) print src; hit = 0; src = "path"; name = ""; next }
    /^name = / { name = $3; gsub(/"/, "", name) }
    /^version = / { ver = $3; gsub(/"/, "", ver); if (name == n && ver == v) hit = 1 }
    /^source = / { src = $3 }
    END { if (hit) print src }' Cargo.lock)
  if [ "$entries" != path ]; then
    echo "Cargo.lock does not resolve $name $version to vendor/$name-$version (entries: ${entries:-none}): check [patch.crates-io] in Cargo.toml" >&2
    status=1
  fi
done <vendor/crates.txt
if [ "$status" = 0 ]; then
  echo "vendor/: pristine crates plus their patches, all used by Cargo.lock"
fi
exit "$status"
