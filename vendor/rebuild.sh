#!/usr/bin/env bash
# Re-creates vendor/<name>-<version>/ for every crate of vendor/crates.txt: crates.io's
# pristine .crate (cargo's download cache if it holds it, else static.crates.io, where
# cargo downloads from; a fresh clone's cargo never fetches a [patch]ed crate), checked
# against its sha256, unpacked, then vendor/patches/<name>-<version>/*.patch applied in name order
# (no fuzz: a patch that does not apply exactly fails the script).
#
#   vendor/rebuild.sh          rebuild vendor/ in place
#   vendor/rebuild.sh DIR      build the copies into DIR instead (vendor/check.sh does)
#
# At an upstream release: change the version and sha256 in crates.txt, rename the crate's
# patch directory, run this script, fix the patches that no longer apply (or drop those
# the release carries), and update the [patch.crates-io] entries of Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-vendor}
# GNU patch (as tests/run-all.sh does for its packages: installed when missing, as root on
# Debian).
if ! command -v patch >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends patch >/dev/null
  else
    echo "missing: patch (Debian: sudo apt-get install patch)" >&2
    exit 1
  fi
fi
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The .crate of $1 version $2 into $work/$1-$2.crate, checked against sha256 $3.
fetch() {
  local name=$1 version=$2 sum=$3 file="$work/$1-$2.crate" cached
  cached=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$name-$version.crate" 2>/dev/null | head -n1 || true)
  if [ -n "$cached" ]; then
    cp "$cached" "$file"
  else
    # Where cargo itself downloads crates from (crates.io's API redirects there).
    curl -fsSL --retry 3 -o "$file" "https://static.crates.io/crates/$name/$name-$version.crate" \
      || curl -fsSL --retry 3 -o "$file" "https://crates.io/api/v1/crates/$name/$version/download"
  fi
  if ! echo "$sum  $file" | sha256sum --check --status; then
    echo "$name $version: the .crate does not have the sha256 of crates.txt" >&2
    exit 1
  fi
}

while read -r name version sum; do
  case "$name" in '' | '#'*) continue ;; esac
  crate="$name-$version"
  fetch "$name" "$version" "$sum"
  mkdir -p "$work/unpacked"
  tar -xzf "$work/$crate.crate" -C "$work/unpacked"
  for p in vendor/patches/"$crate"/*.patch; do
    [ -e "$p" ] || continue
    if ! patch -p1 -F0 -N -s --no-backup-if-mismatch -d "$work/unpacked/$crate" <"$p"; then
      echo "$p does not apply to $crate" >&2
      exit 1
    fi
  done
  rm -rf "${dest:?}/$crate"
  mv "$work/unpacked/$crate" "$dest/$crate"
done <vendor/crates.txt
