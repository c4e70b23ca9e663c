#!/usr/bin/env bash
# Checks C++ formatting against .clang-format with clang-format-14 (Debian package clang-format-14).
#
#   scripts/check-format.sh                 the lines changed since the base (committed, staged and
#                                           unstaged changes of C++ files), as clang-format-diff does
#   scripts/check-format.sh --base REF      the same against REF
#   scripts/check-format.sh --all           every tracked C++ file, whole (lists each file that
#                                           would change and counts them); meaningful on a clean
#                                           clone, where the changed-lines mode has nothing to check
#   scripts/check-format.sh --fix           reformat the changed lines in place (never whole files)
#   scripts/check-format.sh --fix-all       reformat every tracked C++ file in place
#
# The base defaults to the merge-base of HEAD with origin/main, or with main when there is no
# origin/main. In the changed-lines mode untouched lines are never checked, so code written before
# .clang-format existed does not fail a change that does not touch it. Prints the diff clang-format
# wants and exits 1 when a checked line is not formatted. --all and --fix-all run JOBS (default 2)
# clang-format processes at once.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CF="${CLANG_FORMAT:-clang-format-14}"
CFD="${CLANG_FORMAT_DIFF:-clang-format-diff-14}"
MODE=changed
BASE=""
while (($#)); do
  case "$1" in
    --all) MODE=all ;;
    --fix) MODE=fix ;;
    --fix-all) MODE=fix-all ;;
    --base) BASE="$2"; shift ;;
    *) echo "check-format: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
command -v "$CF" >/dev/null || { echo "check-format: $CF is not installed (scripts/install-deps.sh)" >&2; exit 1; }
[[ -f .clang-format ]] || { echo "check-format: no .clang-format at $ROOT" >&2; exit 1; }

CXX_GLOBS=('*.cpp' '*.hpp' '*.h' '*.cc')

JOBS="${JOBS:-2}"
if [[ "$MODE" == fix-all ]]; then
  total="$(git ls-files -z -- "${CXX_GLOBS[@]}" | tr -cd '\0' | wc -c)"
  git ls-files -z -- "${CXX_GLOBS[@]}" | xargs -0 -r -n 8 -P "$JOBS" "$CF" -i
  echo "check-format: reformatted $total C++ files in place; review with git diff"
  exit 0
fi

if [[ "$MODE" == all ]]; then
  # One line per file that would change (clang-format --dry-run --Werror fails on it).
  bad="$(git ls-files -z -- "${CXX_GLOBS[@]}" |
    xargs -0 -r -n 1 -P "$JOBS" sh -c '"$0" --dry-run --Werror "$1" >/dev/null 2>&1 || echo "$1"' "$CF" | sort)"
  total="$(git ls-files -- "${CXX_GLOBS[@]}" | wc -l)"
  n=0
  if [[ -n "$bad" ]]; then
    n="$(wc -l <<<"$bad")"
    sed 's/^/check-format: /' <<<"$bad"
  fi
  echo "check-format: $n of $total C++ files would change (scripts/check-format.sh --all; --fix-all reformats them)"
  ((n == 0))
  exit
fi

if [[ -z "$BASE" ]]; then
  for ref in origin/main main; do
    if git rev-parse -q --verify "$ref^{commit}" >/dev/null; then
      BASE="$(git merge-base HEAD "$ref")"
      break
    fi
  done
fi
[[ -n "$BASE" ]] || { echo "check-format: no base ref (origin/main or main); pass --base REF" >&2; exit 2; }
command -v "$CFD" >/dev/null || { echo "check-format: $CFD is not installed (package clang-format-14)" >&2; exit 1; }

# Against the working tree: committed, staged and unstaged changes alike. -U0: only changed lines.
patch="$(git diff -U0 --no-color --diff-filter=ACMR "$BASE" -- "${CXX_GLOBS[@]}")"
files="$(git diff --name-only --diff-filter=ACMR "$BASE" -- "${CXX_GLOBS[@]}" | wc -l)"
if [[ -z "$patch" ]]; then
  echo "check-format: no C++ changes since $(git rev-parse --short "$BASE") (every file: --all)"
  exit 0
fi
if [[ "$MODE" == fix ]]; then
  "$CFD" -p1 -binary "$CF" -i <<<"$patch"
  echo "check-format: changed lines reformatted in place"
  exit 0
fi
want="$("$CFD" -p1 -binary "$CF" <<<"$patch")"
if [[ -n "$want" ]]; then
  echo "$want"
  echo "check-format: changed lines are not formatted as .clang-format says; run scripts/check-format.sh --fix" >&2
  exit 1
fi
echo "check-format: changed lines of $files C++ file(s) since $(git rev-parse --short "$BASE") are formatted"
