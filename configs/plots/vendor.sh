#!/usr/bin/env bash
# Re-vendor the Vega JavaScript that scripts/plots.py inlines into the offline `dvc plots show` page: the
# minified UMD builds from the npm packages at the versions below, checked against SHA256SUMS.
#   bash configs/plots/vendor.sh            # fetch with `npm pack`, verify, copy here
#   bash configs/plots/vendor.sh --check    # only verify the files here against SHA256SUMS
# To move to new versions: change them here and in README.md, run with --update-sums, review, commit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PACKAGES=(vega@5.33.1 vega-lite@5.23.0 vega-embed@6.29.0)
FILES=(vega.min.js vega-lite.min.js vega-embed.min.js)

if [[ "${1:-}" == "--check" ]]; then
  cd "$HERE" && sha256sum --check --strict SHA256SUMS
  exit
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "${PACKAGES[@]}" >/dev/null)
for i in "${!PACKAGES[@]}"; do
  pkg="${PACKAGES[$i]}"; name="${pkg%@*}"; version="${pkg##*@}"
  mkdir -p "$TMP/$name"
  tar -xzf "$TMP/$name-$version.tgz" -C "$TMP/$name"
  cp "$TMP/$name/package/build/${FILES[$i]}" "$TMP/${FILES[$i]}"
done
if [[ "${1:-}" == "--update-sums" ]]; then
  (cd "$TMP" && sha256sum "${FILES[@]}") > "$HERE/SHA256SUMS"
fi
(cd "$TMP" && sha256sum --check --strict "$HERE/SHA256SUMS")
for f in "${FILES[@]}"; do cp "$TMP/$f" "$HERE/$f"; done
echo "vendored ${PACKAGES[*]} into $HERE"
