#!/usr/bin/env python3
"""Syntax check of every Swift file under ios/, with tree-sitter-swift (no Swift toolchain here).

    bash scripts/bindings-tools.sh && . target/tools/env.sh
    $TOOLS_PYTHON ios/check_swift_syntax.py                    # check
    $TOOLS_PYTHON ios/check_swift_syntax.py --update-baseline  # accept the current counts
    $TOOLS_PYTHON ios/check_swift_syntax.py --strict           # excuse no known grammar gap

A parse, not a compile: it catches broken syntax (unbalanced braces, a missing `in`, a stray
token), not unknown names, wrong types, wrong labels or missing `await`s.

Each ERROR or MISSING node of the parse tree is printed as file:line:col with the source line.
The grammar (tree-sitter-swift 0.7.4) rejects two constructs that are valid Swift and that
uniffi generates; errors of exactly these shapes are "known" and do not count (unless --strict):

  attribute-in-#if   an attribute alone inside `#if … #endif` in front of a declaration:
                     `#if swift(>=5.8)` / `@_documentation(visibility: private)` / `#endif`
  unit-closure       a closure whose body is the empty tuple: `{ () }`

The other errors are counted per file and compared with ios/swift-syntax-baseline.json: a file
with more than its baseline (a file not listed has 0) fails the check. The baseline is for
grammar gaps found later on valid Swift; fix real errors instead of raising it.

Exit status: 0 clean, 1 more errors than the baseline, 2 cannot check (no grammar, no files).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

IOS = Path(__file__).resolve().parent
BASELINE = IOS / "swift-syntax-baseline.json"
# Build output and tool state, never sources of this package.
SKIP_DIRS = {"StocksyncFFI.xcframework", "build", "DerivedData", ".build", ".swiftpm"}


@dataclass
class Problem:
    line: int  # 1-based
    col: int  # 1-based, in characters
    kind: str  # "ERROR" or "MISSING <node type>"
    known: str | None  # name of the known grammar gap, or None


def load_parser():
    try:
        import tree_sitter
        import tree_sitter_swift
    except ImportError as e:
        die(f"cannot import the grammar ({e}).\n"
            "  run: bash scripts/bindings-tools.sh && . target/tools/env.sh\n"
            "  then: $TOOLS_PYTHON ios/check_swift_syntax.py")
    try:
        parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))
    except Exception as e:  # ABI mismatch between py-tree-sitter and the grammar, …
        die(f"cannot load the tree-sitter-swift grammar: {e}")
    # A grammar that accepts everything would make this check pass silently.
    good = b"struct A {\n    func f(_ x: Int) async throws -> Int { x + 1 }\n}\n"
    bad = b"struct A {\n    func f(_ x: Int -> Int { x + 1 }\n"
    if parser.parse(good).root_node.has_error or not parser.parse(bad).root_node.has_error:
        die("the tree-sitter-swift grammar failed its self-test (valid Swift rejected or broken "
            "Swift accepted)")
    return parser


def die(message: str):
    print(f"check_swift_syntax: {message}", file=sys.stderr)
    sys.exit(2)


def swift_files() -> list[Path]:
    found = []
    for root, dirs, files in os.walk(IOS):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        found += [Path(root) / f for f in sorted(files) if f.endswith(".swift")]
    return found


def known_gap(node) -> str | None:
    """The name of the known grammar gap this ERROR node is, or None."""
    named = node.named_children
    prev, nxt = node.prev_named_sibling, node.next_named_sibling
    if (named and all(c.type == "attribute" for c in named)
            and prev is not None and prev.type == "directive"
            and prev.text.lstrip().startswith((b"#if", b"#elseif", b"#else"))
            and nxt is not None and nxt.type == "directive"):
        return "attribute-in-#if"
    parent = node.parent
    if (parent is not None and parent.type == "lambda_literal"
            and b"".join(parent.text[1:-1].split()) == b"()"
            and [c.type for c in named] == ["lambda_function_type"]):
        return "unit-closure"
    return None


def problems(parser, source: bytes) -> list[Problem]:
    raw_lines = source.split(b"\n")

    def where(node) -> tuple[int, int]:
        row, byte_col = node.start_point.row, node.start_point.column
        line = raw_lines[row] if row < len(raw_lines) else b""
        return row + 1, len(line[:byte_col].decode("utf-8", errors="replace")) + 1

    found = []
    root = parser.parse(source).root_node
    # The root itself is an ERROR when recovery failed at the top level: look inside it.
    stack = list(root.children) if root.is_error else [root]
    while stack:
        node = stack.pop()
        if node.is_missing:
            found.append(Problem(*where(node), f"MISSING {node.type}", None))
        elif node.is_error:
            # Count the outermost ERROR only: its insides are the same mistake.
            found.append(Problem(*where(node), "ERROR", known_gap(node)))
        elif node.has_error:
            stack.extend(node.children)
    if root.is_error and not found:
        found.append(Problem(1, 1, "ERROR", None))
    return sorted(found, key=lambda p: (p.line, p.col))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--update-baseline", action="store_true",
                    help=f"write the current counts to {BASELINE.name}")
    ap.add_argument("--strict", action="store_true",
                    help="count the known grammar gaps as errors too")
    ap.add_argument("--verbose", action="store_true",
                    help="also list the known grammar gaps one by one")
    args = ap.parse_args()
    if args.update_baseline and args.strict:
        ap.error("--update-baseline records the counts without --strict")

    started = time.monotonic()
    parser = load_parser()
    files = swift_files()
    if not files:
        die(f"no .swift files under {IOS}: nothing was checked")
    baseline = {}
    if BASELINE.exists():
        baseline = json.loads(BASELINE.read_text())["files"]
    elif not args.update_baseline:
        die(f"{BASELINE} is missing; create it with --update-baseline")

    counts: dict[str, int] = {}
    failed = []
    total_known = 0
    for path in files:
        rel = path.relative_to(IOS).as_posix()
        source = path.read_bytes()
        lines = source.decode("utf-8", errors="replace").splitlines()
        found = problems(parser, source)
        counted = [p for p in found if args.strict or p.known is None]
        known = len(found) - len(counted)
        total_known += known
        counts[rel] = len(counted)
        for p in found:
            if p in counted or args.verbose:
                note = f" (known grammar gap: {p.known})" if p.known else ""
                text = lines[p.line - 1] if p.line <= len(lines) else ""
                print(f"ios/{rel}:{p.line}:{p.col}: {p.kind}{note}")
                print(f"    {text}")
                print(f"    {' ' * (p.col - 1)}^")
        allowed = baseline.get(rel, 0)
        verdict = "ok" if len(counted) <= allowed else "FAIL"
        if verdict == "FAIL":
            failed.append(rel)
        extra = f", {known} known grammar gaps not counted" if known else ""
        improved = " (below the baseline: run --update-baseline)" if len(counted) < allowed else ""
        print(f"{verdict:4} ios/{rel}: {len(counted)} errors, baseline {allowed}{extra}{improved}")

    for rel in sorted(set(baseline) - set(counts)):
        print(f"note: ios/{rel} is in the baseline but no longer exists (run --update-baseline)")
    elapsed = time.monotonic() - started
    print(f"{len(files)} Swift files, {sum(counts.values())} errors counted, "
          f"{total_known} known grammar gaps excused, {elapsed:.2f}s")

    if args.update_baseline:
        BASELINE.write_text(json.dumps({
            "comment": "Per-file count of tree-sitter-swift ERROR/MISSING nodes on valid Swift "
                       "(grammar gaps beyond the known ones in check_swift_syntax.py). "
                       "Written by: $TOOLS_PYTHON ios/check_swift_syntax.py --update-baseline",
            "files": dict(sorted(counts.items())),
        }, indent=2) + "\n")
        print(f"wrote {BASELINE.relative_to(IOS.parent)}")
        return 0
    if failed:
        hint = ("(--strict counts the known grammar gaps too.)" if args.strict else
                "Fix the Swift. If the code is valid Swift and the grammar is wrong, record it:\n"
                "  $TOOLS_PYTHON ios/check_swift_syntax.py --update-baseline")
        print(f"\nSwift syntax check FAILED: more parse errors than the baseline in "
              f"{', '.join(failed)}.\n{hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
