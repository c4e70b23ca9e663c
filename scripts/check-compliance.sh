#!/usr/bin/env bash
# Checks the STD-API-034 compliance matrix (docs/compliance.md) against the tree, so that every piece
# of evidence it cites exists:
#   `path`                          a file or folder of the repository (a glob must match something);
#                                   `file.md#anchor` also needs a heading with that anchor
#   `file_test.go:TestName`         a Go func Test*/Benchmark*/Fuzz* of that name in that file
#   `file.cpp:"catch2 test name"`   a Catch2 TEST_CASE with exactly that name in that file, and no ';'
#                                   in it (ctest's discovery splits names there, so it would never run)
#   `script.sh:function`            a shell function of that name in that script (a CI stage)
# A backticked span is a reference when its first path component is one of the repository's
# top-level entries (ROOTS below), or when it sits in the Evidence column of the matrix, where every
# backticked span must be a reference. Matrix rows also need a unique id, a status of met, deviation
# or not applicable, and evidence for met and deviation.
#
# Relative markdown links must reach an existing file (and heading). The review records in
# docs/reviews/ are checked the same way, without the matrix rules.
#
# Usage: scripts/check-compliance.sh [--root DIR] [--doc FILE]   check docs/compliance.md and
#                                                                 docs/reviews/*.md (or FILE only)
#        scripts/check-compliance.sh --self-test                  prove it fails on dangling references
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
DOC=""
SELF_TEST=0
while (($#)); do
  case "$1" in
    --root) ROOT="$(cd "$2" && pwd)"; shift ;;
    --doc) DOC="$2"; shift ;;
    --self-test) SELF_TEST=1 ;;
    *) echo "check-compliance: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

# check ROOT MATRIX_DOC [OTHER_DOC ...]: the first document must hold the matrix; the others (the
# review records) only cite evidence.
check() {
  python3 - "$@" <<'PY'
import glob, os, re, sys

root, doc = sys.argv[1], sys.argv[2]
# Top-level entries a reference may start with. A span starting elsewhere (a config key such as
# simpaisa/filter-bridge, a module path) is prose, unless it sits in the Evidence column.
ROOTS = {".ci", ".github", ".clang-format", "CODEOWNERS", "CMakeLists.txt", "Dockerfile", "README.md",
         "compose", "conf", "core", "daemon", "deploy", "docs", "filters", "fuzz", "gateway", "go-bridge",
         "perf", "protocol", "scripts", "tests", "tools", "versions.env", "THREAT-MODEL-CARDS.md"}
STATUSES = {"met", "deviation", "not applicable"}

errors = []
def err(line, msg):
    errors.append(f"{os.path.relpath(doc, root) if doc.startswith(root) else doc}:{line}: {msg}")

def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")

def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()

def check_ref(ref, line):
    """Returns True when ref resolves; records an error otherwise."""
    m = re.fullmatch(r'([^:"\s]+):"((?:[^"\\]|\\.)+)"', ref)
    if m:  # Catch2 test case
        path, name = m.groups()
        full = os.path.join(root, path)
        if not os.path.isfile(full):
            err(line, f"`{ref}`: no file {path}")
            return False
        if not re.search(r'TEST_CASE\(\s*"' + re.escape(name) + r'"', read(full)):
            err(line, f"`{ref}`: no TEST_CASE named \"{name}\" in {path}")
            return False
        if ";" in name:  # catch_discover_tests splits the name there: ctest never runs this test
            err(line, f"`{ref}`: a ';' in a Catch2 test name splits it into two ctest entries that run nothing")
            return False
        return True
    m = re.fullmatch(r"([^:\s]+\.go):(\w+)", ref)
    if m:  # Go test, benchmark or fuzz target
        path, name = m.groups()
        full = os.path.join(root, path)
        if not os.path.isfile(full):
            err(line, f"`{ref}`: no file {path}")
            return False
        if not re.match(r"(Test|Benchmark|Fuzz)", name):
            err(line, f"`{ref}`: {name} is not a Test, Benchmark or Fuzz function")
            return False
        if not re.search(r"^func " + re.escape(name) + r"\(", read(full), re.M):
            err(line, f"`{ref}`: no func {name} in {path}")
            return False
        return True
    m = re.fullmatch(r"([^:\s]+\.sh|\.ci/run):([A-Za-z_][\w-]*)", ref)
    if m:  # shell function (a CI stage)
        path, name = m.groups()
        full = os.path.join(root, path)
        if not os.path.isfile(full):
            err(line, f"`{ref}`: no file {path}")
            return False
        if not re.search(r"^\s*(function\s+)?" + re.escape(name) + r"\s*\(\)", read(full), re.M):
            err(line, f"`{ref}`: no shell function {name}() in {path}")
            return False
        return True
    m = re.fullmatch(r"([^#\s]+)(?:#([\w-]+))?", ref)
    if m:  # path, glob, or markdown anchor
        path, anchor = m.groups()
        full = os.path.join(root, path)
        if any(c in path for c in "*?["):
            if not glob.glob(full):
                err(line, f"`{ref}`: no file matches {path}")
                return False
            return True
        if not os.path.exists(full):
            err(line, f"`{ref}`: no such file or folder")
            return False
        if anchor:
            heads = {slug(h) for h in re.findall(r"^#+\s+(.*)$", read(full), re.M)}
            if anchor not in heads:
                err(line, f"`{ref}`: no heading with anchor #{anchor} in {path}")
                return False
        return True
    err(line, f"`{ref}`: not a reference form this check knows")
    return False

def is_reference(span):
    if " " in span and '"' not in span:
        return False
    first = re.split(r"[/:#]", span, 1)[0]
    return first in ROOTS

def check_link(target, docpath, line):
    """A relative markdown link: the file must exist, and the heading when an anchor is given."""
    if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
        return
    path, _, anchor = target.partition("#")
    full = os.path.normpath(os.path.join(os.path.dirname(docpath), path)) if path else docpath
    if not os.path.exists(full):
        err(line, f"link ({target}): no such file {os.path.relpath(full, root)}")
        return
    if anchor and full.endswith(".md"):
        heads = {slug(h) for h in re.findall(r"^#+\s+(.*)$", read(full), re.M)}
        if anchor not in heads:
            err(line, f"link ({target}): no heading with anchor #{anchor} in {os.path.relpath(full, root)}")

refs = 0
ids = {}

def check_doc(docpath, need_matrix):
    global doc, refs
    doc = docpath
    header = None
    rows = 0
    for n, text in enumerate(read(docpath).splitlines(), 1):
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            refs += 1
            check_link(target, docpath, n)
        if text.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", text.strip())[1:-1]]
            low = [c.lower() for c in cells]
            if need_matrix and "id" in low and "status" in low and "evidence" in low:
                header = {name: i for i, name in enumerate(low)}
                continue
            if header and cells and not set(text.replace("|", "").strip()) <= set("-: "):
                rows += 1
                if len(cells) != len(header):
                    err(n, f"matrix row has {len(cells)} cells, the header {len(header)}")
                    continue
                rid = cells[header["id"]].strip("* ")
                if not re.fullmatch(r"[A-Z]{2,3}-\d+[a-z]?", rid):
                    err(n, f"matrix row id {rid!r} is not of the form XX-1")
                if rid in ids:
                    err(n, f"matrix row id {rid} repeats line {ids[rid]}")
                ids[rid] = n
                status = re.sub(r"[*_]", "", cells[header["status"]]).strip().lower()
                if status not in STATUSES:
                    err(n, f"{rid}: status {status!r} is not one of met, deviation, not applicable")
                evidence = re.findall(r"`([^`]+)`", cells[header["evidence"]])
                if status in ("met", "deviation") and not evidence:
                    err(n, f"{rid}: {status} without evidence")
                for span in evidence:
                    refs += 1
                    check_ref(span, n)
                for i, c in enumerate(cells):  # references elsewhere in the row
                    if i != header["evidence"]:
                        for span in re.findall(r"`([^`]+)`", c):
                            if is_reference(span):
                                refs += 1
                                check_ref(span, n)
                continue
        else:
            header = None
        for span in re.findall(r"`([^`]+)`", text):
            if is_reference(span):
                refs += 1
                check_ref(span, n)
    if need_matrix and not rows:
        err(0, "no matrix rows found (a table with id, status and evidence columns)")

docs = [(d, i == 0) for i, d in enumerate(sys.argv[2:])]
for d, need_matrix in docs:
    if not os.path.isfile(d):
        doc = d
        err(0, "no such document")
        continue
    check_doc(d, need_matrix)

for e in errors:
    print("check-compliance: " + e, file=sys.stderr)
if errors:
    print(f"check-compliance: FAILED: {len(errors)} dangling or malformed reference(s)", file=sys.stderr)
    sys.exit(1)
names = ", ".join(os.path.relpath(d, root) for d, _ in docs)
print(f"check-compliance: ok: {len(ids)} requirements, {refs} references resolve ({names})")
PY
}

self_test() {
  local t
  t="$(mktemp -d)"
  trap 'rm -rf "$t"' RETURN
  mkdir -p "$t/docs" "$t/tests/e2e" "$t/tests/daemon" "$t/scripts"
  printf 'package e2e\n\nfunc TestReal(t *testing.T) {}\n' >"$t/tests/e2e/x_test.go"
  printf 'TEST_CASE("a real case", "[x]") {}\nTEST_CASE("split; never run", "[x]") {}\n' >"$t/tests/daemon/x_test.cpp"
  printf '#!/bin/sh\nstage_one() {\n  true\n}\n' >"$t/scripts/ci.sh"
  printf '# Title\n\n## Some section\n' >"$t/docs/other.md"
  local good='| id | requirement | status | evidence |
|---|---|---|---|
| XX-1 | one | met | `tests/e2e/x_test.go:TestReal`, `tests/daemon/x_test.cpp:"a real case"` |
| XX-2 | two | deviation | `scripts/ci.sh:stage_one`, `docs/other.md#some-section`, `tests/e2e/*_test.go` |
| XX-3 | three | not applicable | — |'
  local prose='Prose may cite `scripts/ci.sh` and mention `simpaisa/filter-bridge` freely.'
  printf '%s\n\n%s\n' "$good" "$prose" >"$t/docs/compliance.md"
  if ! check "$t" "$t/docs/compliance.md" >/dev/null; then
    echo "check-compliance self-test: a matrix whose references all exist was refused" >&2
    check "$t" "$t/docs/compliance.md" || true
    return 1
  fi
  local bad rc=0
  local cases=(
    '| XX-9 | x | met | `tests/e2e/missing_test.go:TestReal` |'
    '| XX-9 | x | met | `tests/e2e/x_test.go:TestGone` |'
    '| XX-9 | x | met | `tests/daemon/x_test.cpp:"a renamed case"` |'
    '| XX-9 | x | met | `tests/daemon/x_test.cpp:"split; never run"` |'
    '| XX-9 | x | met | `scripts/ci.sh:stage_two` |'
    '| XX-9 | x | met | `scripts/missing.sh` |'
    '| XX-9 | x | met | `docs/other.md#no-such-section` |'
    '| XX-9 | x | met | `tests/e2e/*_nothing.go` |'
    '| XX-9 | x | met | `something not a reference` |'
    '| XX-9 | x | met | — |'
    '| XX-9 | x | done | `scripts/ci.sh` |'
    '| XX-1 | x | met | `scripts/ci.sh` |'
    '| XX-9 | x | met | `scripts/ci.sh`, see [the other page](docs/gone.md) |'
    '| XX-9 | x | met | `scripts/ci.sh`, see [a section](other.md#no-such-section) |'
  )
  local c
  for c in "${cases[@]}"; do
    printf '%s\n%s\n\n%s\n' "$good" "$c" "$prose" >"$t/docs/compliance.md"
    if check "$t" "$t/docs/compliance.md" >/dev/null 2>&1; then
      echo "check-compliance self-test: NOT caught: $c" >&2
      rc=1
    fi
  done
  printf '%s\n\n%s A dangling path in prose: `docs/gone.md`.\n' "$good" "$prose" >"$t/docs/compliance.md"
  if check "$t" "$t/docs/compliance.md" >/dev/null 2>&1; then
    echo "check-compliance self-test: NOT caught: a dangling path in prose" >&2
    rc=1
  fi
  ((rc == 0)) && echo "check-compliance self-test: ok (a valid matrix passes; $((${#cases[@]} + 1)) dangling or malformed references each fail)"
  return $rc
}

if ((SELF_TEST)); then
  self_test
elif [[ -n "$DOC" ]]; then
  check "$ROOT" "$DOC"
else
  shopt -s nullglob
  check "$ROOT" "$ROOT/docs/compliance.md" "$ROOT"/docs/reviews/*.md
fi
