#!/usr/bin/env bash
# Static checks of every Go module of the project, on the KrakenD CE toolchain (versions.env):
#   - go vet ./...
#   - gofmt -l: fails when any hand-written file needs formatting (files marked "Code generated ...
#     DO NOT EDIT." are flatc's output and left as generated)
#   - go mod tidy -diff: fails when tidy would change go.mod or go.sum
# and, for the plugin (the packages compiled into simpaisa-plugin-filter-bridge.so):
#   - it logs only through KrakenD's logger: no fmt.Print*, fmt.Fprint* to stdout/stderr, print or
#     println builtins, os.Stdout/os.Stderr, and no import of the log or log/slog packages in its
#     non-test code (STD-API-034 "Structured logging via KrakenD's logger interface");
#   - no package of its own imports unsafe, and the only other package in the plugin that does is the
#     FlatBuffers Go runtime (its sizes.go; the deviation is recorded in docs/compliance.md);
#   - its module path is bitbucket.org/simpaisa/simpaisa-plugin-{name} (STD-API-034 naming).
#
# Usage: scripts/check-go.sh [MODULE_DIR ...]
#   default: every Go module of the repository (each tracked go.mod): go-bridge, gateway,
#   tools/gateway-lint, tests/e2e, perf/load, and any module added later.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
# shellcheck source=../versions.env
source versions.env
export GOTOOLCHAIN="$GO_VERSION" CGO_ENABLED=1

MODULES=()
if (($#)); then
  MODULES=("$@")
else
  mapfile -t MODULES < <(git ls-files -- 'go.mod' '*/go.mod' | grep -v '/testdata/' | xargs -r -n1 dirname | sort)
fi
PLUGIN=go-bridge
# The only package outside the plugin's module and the standard library allowed to import unsafe.
UNSAFE_ALLOWED="github.com/google/flatbuffers/go"

rc=0
fail() {
  echo "check-go: $*" >&2
  rc=1
}

have="$(cd go-bridge && go env GOVERSION)"
[[ "$have" == "$GO_VERSION" ]] || { echo "check-go: GOTOOLCHAIN=$GO_VERSION gave $have" >&2; exit 1; }

for m in "${MODULES[@]}"; do
  if [[ ! -f "$m/go.mod" ]]; then
    fail "$m: no go.mod"
    continue
  fi
  echo "check-go: $m"
  (cd "$m" && go vet ./...) || fail "$m: go vet failed"

  unformatted=()
  while IFS= read -r f; do
    head -n 5 "$f" | grep -q '^// Code generated .* DO NOT EDIT\.$' && continue
    unformatted+=("$f")
  done < <(gofmt -l "$m" | grep -v '/testdata/' || true)
  if ((${#unformatted[@]})); then
    fail "$m: gofmt -l lists ${unformatted[*]}"
  fi

  if ! tidy="$(cd "$m" && go mod tidy -diff 2>&1)"; then
    echo "$tidy" >&2
    fail "$m: go mod tidy would change go.mod/go.sum; run it and commit the result"
  fi
done

# The plugin: every package the .so links (the module's own, non-test files).
if [[ " ${MODULES[*]} " == *" $PLUGIN "* ]]; then
  mod="$(cd "$PLUGIN" && go list -m)"
  # STD-API-034 naming: Go module bitbucket.org/simpaisa/simpaisa-plugin-{name}.
  [[ "$mod" =~ ^bitbucket\.org/simpaisa/simpaisa-plugin-[a-z0-9]+(-[a-z0-9]+)*$ ]] ||
    fail "$PLUGIN: module path $mod is not bitbucket.org/simpaisa/simpaisa-plugin-{name}"
  while IFS='|' read -r pkg dir files imports; do
    [[ "$pkg" == "$mod" || "$pkg" == "$mod/"* ]] || continue
    for imp in $imports; do
      case "$imp" in
        log | log/slog | log/syslog) fail "$pkg imports $imp: the plugin logs only through KrakenD's logger" ;;
        unsafe) fail "$pkg imports unsafe (STD-API-034 needs Security Team approval for it)" ;;
      esac
    done
    for f in $files; do
      hits="$(grep -nE '\bfmt\.Print|\bfmt\.Fprint[a-z]*\(os\.Std|\bos\.Std(out|err)\b|(^|[^.[:alnum:]_])print(ln)?\(' "$dir/$f" || true)"
      [[ -z "$hits" ]] || fail "${dir#"$ROOT/"}/$f writes outside KrakenD's logger:"$'\n'"$hits"
    done
  done < <(cd "$PLUGIN" && go list -deps -f '{{.ImportPath}}|{{.Dir}}|{{join .GoFiles " "}}|{{join .Imports " "}}' .)

  unsafe_users="$(cd "$PLUGIN" && go list -deps -f '{{if not .Standard}}{{range .Imports}}{{if eq . "unsafe"}}{{$.ImportPath}}{{"\n"}}{{end}}{{end}}{{end}}' . | sort -u)"
  while IFS= read -r p; do
    [[ -z "$p" || "$p" == "$UNSAFE_ALLOWED" ]] && continue
    fail "$p is linked into the plugin and imports unsafe; only $UNSAFE_ALLOWED is approved"
  done <<<"$unsafe_users"
  echo "check-go: packages in the plugin that import unsafe: ${unsafe_users:-none}"
fi

if ((rc)); then
  echo "check-go: FAILED" >&2
else
  echo "check-go: ok (${MODULES[*]})"
fi
exit $rc
