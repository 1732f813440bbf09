#!/usr/bin/env bash
# Copy the generated CRDs (crds/, from `kubellm crds`) into the Helm chart (charts/kubellm/crds/).
#
# Helm installs charts/kubellm/crds/ on `helm install` only and never templates them, so they must
# be plain copies of crds/. tests/unit/test_chart.py fails while the two directories differ.
#
#   scripts/sync-chart-crds.sh          copy (and remove chart CRDs that no longer exist in crds/)
#   scripts/sync-chart-crds.sh --check  exit 1 and show the difference when they are out of sync
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/crds"
dst="$root/charts/kubellm/crds"

shopt -s nullglob
sources=("$src"/*.yaml)
if [ ${#sources[@]} -eq 0 ]; then
  echo "no CRDs in $src: generate them first (kubellm crds)" >&2
  exit 2
fi

if [ "${1:-}" = "--check" ]; then
  if diff -r -u "$src" "$dst" >&2; then
    echo "charts/kubellm/crds/ is in sync with crds/"
    exit 0
  fi
  echo "charts/kubellm/crds/ differs from crds/: run scripts/sync-chart-crds.sh" >&2
  exit 1
fi

mkdir -p "$dst"
for old in "$dst"/*; do
  [ -e "$src/$(basename "$old")" ] || { rm -f -- "$old"; echo "removed $old"; }
done
for file in "${sources[@]}"; do
  cp -- "$file" "$dst/"
  echo "copied $(basename "$file")"
done
