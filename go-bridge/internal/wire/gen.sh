#!/bin/sh
# Regenerates the FlatBuffers Go code in this directory from ../../../protocol/filterd.fbs.
#   ./gen.sh          rewrite the generated *.go files in place
#   ./gen.sh --check  regenerate into a temporary directory and fail if it differs from the
#                     committed files (used by go-bridge/build.sh checks and wire_test.go)
# Needs flatc 2.0.8 (FLATC_VERSION in versions.env), the version the Go runtime is pinned to.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
schema="$here/../../../protocol/filterd.fbs"
want=$(sed -n 's/^FLATC_VERSION=//p' "$here/../../../versions.env")
have=$(flatc --version | sed 's/^flatc version //')
if [ "$have" != "$want" ]; then
  echo "gen.sh: flatc $have found, versions.env pins $want" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flatc --go -o "$tmp" "$schema"
gen="$tmp/filterd/wire"
if [ "${1:-}" = "--check" ]; then
  status=0
  for f in "$gen"/*.go; do
    b=$(basename "$f")
    if ! cmp -s "$f" "$here/$b"; then echo "gen.sh: $b is stale or missing" >&2; status=1; fi
  done
  for f in "$here"/*.go; do
    b=$(basename "$f")
    case "$b" in *_test.go|doc.go) continue ;; esac
    [ -f "$gen/$b" ] || { echo "gen.sh: $b is not produced by the schema any more" >&2; status=1; }
  done
  exit $status
fi
for f in "$here"/*.go; do
  case "$(basename "$f")" in *_test.go|doc.go) ;; *) rm -f "$f" ;; esac
done
cp "$gen"/*.go "$here/"
