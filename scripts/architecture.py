#!/usr/bin/env python3
"""The import graph of src/: which file uses which, and whether any import runs upward or loops.

Reads every `use` and every inline `crate::` / `super::` / `self::` path in the files of src/
(comments, strings and `#[cfg(test)]` modules left out: a test may use what it tests from
anywhere), resolves each path to the file that defines it (following `pub use` re-exports),
and checks two rules:

1. Layers: each top-level module of the library has a layer (LAYERS below, low to high); a
   file may use its own layer and the layers below it, never one above.
2. No loops: no two files use each other, directly or through others (strongly connected
   components of the file graph), except a child file using its own folder's `mod.rs`
   (`super::`), which is how Rust folders are built.

And two bounds on size, so each file holds one idea a reader can take in:

3. No file over FILE_LINES lines of code (blank lines, comments and test modules not counted).
4. No function over FN_LINES lines (blank and comment-only lines not counted), except those in
   EXCEPTIONS, each with its reason.

    scripts/architecture.py            report the violations; exit 1 if there are any
    scripts/architecture.py --graph    also print every file's imports
    scripts/architecture.py --sizes    also print the largest files and functions
"""
import os
import re
import sys
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")

# Low to high. A module may use its own layer and any layer below it.
LAYERS = [
    # plain helpers with no knowledge of customers
    ["error", "json_f64", "sort", "matrix", "dates", "rt"],
    # what a customer is, and the settings that describe a run
    ["schema", "config", "s3"],
    # column statistics; explanations; raw records -> features; preprocessing; answers' shapes
    ["profile", "explain", "answer", "features", "preprocess"],
    # reading raw records; checking them
    ["ingest", "validate"],
    # ONNX names and ONNX Runtime sessions; the SQL generator
    ["onnx::names", "inference", "sql"],
    # fitting the pipeline; writing it as ONNX
    ["train", "onnx"],
    # the model store, manifests, the gate, following
    ["registry"],
    # using a model: explanations, bulk scoring, monitoring
    ["predict", "monitor"],
    # train-then-publish, as the CLI, the jobs and the server all run it
    ["workflow"],
    # the doors
    ["serve"],
    ["cli", "main"],
]
LAYER_OF = {m: i for i, layer in enumerate(LAYERS) for m in layer}

FILE_LINES = 600
FN_LINES = 100
# "file::function": why it stays whole.
EXCEPTIONS = {
    "preprocess.rs::brent_minimize": "a numerical routine ported as one piece (Brent's method)",
}


def files():
    out = {}
    for dirpath, _, names in os.walk(ROOT):
        for n in names:
            if not n.endswith(".rs"):
                continue
            path = os.path.join(dirpath, n)
            rel = os.path.relpath(path, ROOT)
            parts = rel[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts in (["lib"], ["main"]):
                mod = ()
                if parts == ["main"]:
                    mod = ("main",)
            else:
                mod = tuple(parts)
            out[rel] = mod
    return out


def strip(src):
    """Source with comments, strings and char literals blanked (newlines kept)."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * src.count("\n", i, j))
            i = j
        elif c == "r" and re.match(r'r#*"', src[i:i + 10]) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'r(#*)"', src[i:])
            end = '"' + m.group(1)
            j = src.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * src.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append('""' + "\n" * src.count("\n", i, j))
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|[^\\'])'", src[i:])
            if m:
                out.append("' '")
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_test_modules(code):
    """Blank `#[cfg(test)] mod x { ... }` blocks and `#[cfg(test)] mod x;` lines."""
    out = code
    for m in reversed(list(re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*(\{|;)", code))):
        start = m.start()
        if m.group(3) == ";":
            end = m.end()
        else:
            depth, j = 1, m.end()
            while j < len(code) and depth:
                depth += {"{": 1, "}": -1}.get(code[j], 0)
                j += 1
            end = j
        out = out[:start] + "\n" * out.count("\n", start, end) + out[end:]
    return out


def use_trees(code):
    """Every `use` statement's tree, as text."""
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        yield m.group(1)


def expand(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s+", "", tree)
    tree = re.sub(r"\bas\w+", "", tree)

    def go(prefix, t):
        if not t:
            return [prefix]
        i = t.find("{")
        if i < 0:
            return [prefix + t]
        head, body = t[:i], t[i + 1:-1]
        parts, depth, cur = [], 0, ""
        for ch in body:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            cur += ch
        parts.append(cur)
        return [p for part in parts if part for p in go(prefix + head, part)]

    return go("", tree)


class Graph:
    def __init__(self):
        self.files = files()
        self.mod_to_file = {m: f for f, m in self.files.items()}
        self.code = {}
        for f in self.files:
            with open(os.path.join(ROOT, f)) as fh:
                self.code[f] = drop_test_modules(strip(fh.read()))
        # (module, name) -> absolute path it re-exports
        self.reexports = {}
        for f, mod in self.files.items():
            for tree in re.finditer(r"\bpub(\([^)]*\))?\s+use\s+([^;]+);", self.code[f]):
                for p in expand(tree.group(2)):
                    absolute = self.absolute(mod, f, p)
                    if absolute:
                        self.reexports[(mod, absolute[-1])] = absolute

    def absolute(self, mod, f, path):
        parts = [p for p in path.split("::") if p]
        if not parts:
            return None
        here = list(mod)
        if parts[0] == "crate":
            return tuple(parts[1:])
        if parts[0] == "self":
            return tuple(here + parts[1:])
        if parts[0] == "super":
            base = here
            while parts and parts[0] == "super":
                base = base[:-1]
                parts = parts[1:]
            return tuple(base + parts)
        # a path relative to the current module: a child module declared here
        if mod == ("main",):
            return None
        child = tuple(here + [parts[0]])
        if child in self.mod_to_file:
            return tuple(here + parts)
        return None

    def resolve(self, absolute, depth=0):
        """The file defining the longest module prefix of an absolute path, after re-exports."""
        absolute = tuple(absolute)
        for k in range(len(absolute), 0, -1):
            prefix = absolute[:k]
            if prefix in self.mod_to_file:
                rest = absolute[k:]
                if rest and (prefix, rest[0]) in self.reexports and depth < 8:
                    target = self.reexports[(prefix, rest[0])]
                    if tuple(target[: len(prefix)]) != prefix or len(target) > len(prefix) + 1:
                        return self.resolve(target + rest[1:], depth + 1)
                return self.mod_to_file[prefix]
        return None

    def edges(self):
        out = defaultdict(set)
        for f, mod in self.files.items():
            code = self.code[f]
            paths = []
            for tree in use_trees(code):
                paths += expand(tree)
            # inline paths: crate::a::b, super::x
            for m in re.finditer(r"(?<![\w:])((?:crate|super|self)(?:::\w+)+)", code):
                paths.append(m.group(1))
            if mod == ("main",):
                paths = ["crate::" + p[len("categorizer::"):] for p in
                         re.findall(r"\bcategorizer(?:::\w+)+", code)] + paths
            for p in paths:
                if mod == ("main",) and p.startswith("crate::"):
                    parts = p.split("::")[1:]
                    target = self.resolve(parts) if parts and parts[0] != "cli" else None
                    if parts and parts[0] == "cli":
                        target = self.resolve(["cli"] + parts[1:], 0)
                else:
                    a = self.absolute(mod, f, p)
                    target = self.resolve(a) if a else None
                if target and target != f:
                    out[f].add(target)
        return out


def top(mod):
    """The LAYERS entry a module belongs to: its longest listed prefix (`onnx::names`, `onnx`)."""
    if not mod:
        return "lib"
    for k in range(len(mod), 0, -1):
        key = "::".join(mod[:k])
        if key in LAYER_OF:
            return key
    return mod[0]


def sccs(nodes, edges):
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def violations(g, edges):
    upward, unknown = [], set()
    for f, targets in sorted(edges.items()):
        a = top(g.files[f])
        for t in sorted(targets):
            b = top(g.files[t])
            if a == "lib" or b == "lib" or a == b:
                continue
            if a not in LAYER_OF:
                unknown.add(a)
                continue
            if b not in LAYER_OF:
                unknown.add(b)
                continue
            if LAYER_OF[b] > LAYER_OF[a]:
                upward.append((f, t))
    # loops, leaving out a child's use of its own folder's mod.rs
    pruned = {}
    for f, targets in edges.items():
        keep = set()
        for t in targets:
            parent_mod = g.files[t]
            if g.files[f][:-1] == parent_mod:
                continue
            keep.add(t)
        pruned[f] = keep
    loops = sccs(sorted(g.files), pruned)
    return upward, loops, unknown


def code_lines(path):
    """Lines of code: no blank lines, no comments, no test modules."""
    with open(path) as fh:
        code = drop_test_modules(strip(fh.read()))
    return sum(1 for line in code.splitlines() if line.strip())


def functions(path):
    """(name, lines) of each fn outside test modules: the lines of its span that hold code
    (blank and comment-only lines left out; the lines of a multi-line string count)."""
    with open(path) as fh:
        raw = fh.read()
    code = drop_test_modules(strip_keep_lines(raw))
    raw_lines = raw.splitlines()
    out = []
    for m in re.finditer(r"\bfn\s+(\w+)[^;{]*\{", code):
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        first, last = code.count("\n", 0, m.start()), code.count("\n", 0, j)
        lines = sum(1 for line in raw_lines[first:last + 1]
                    if line.strip() and not line.strip().startswith("//"))
        out.append((m.group(1), lines))
    return out


def strip_keep_lines(src):
    """`strip`, with a multi-line string's line breaks kept, so offsets map to lines."""
    return strip(src)


def sizes(limit_file=600, limit_fn=100):
    rows, fns = [], []
    for dirpath, _, names in os.walk(ROOT):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(dirpath, n)
                rel = os.path.relpath(p, ROOT)
                rows.append((code_lines(p), rel))
                fns += [(lines, f"{rel}::{name}") for name, lines in functions(p)]
    rows.sort(reverse=True)
    fns.sort(reverse=True)
    return [r for r in rows if r[0] > limit_file], [f for f in fns if f[0] > limit_fn], rows, fns


def main():
    g = Graph()
    edges = g.edges()
    if "--graph" in sys.argv:
        for f in sorted(edges):
            print(f, "->", ", ".join(sorted(edges[f])))
    if "--sizes" in sys.argv:
        _, _, rows, fns = sizes()
        print("largest files (code lines):")
        for n, f in rows[:12]:
            print(f"  {n:5} {f}")
        print("longest functions (non-blank, non-comment lines):")
        for n, f in fns[:20]:
            print(f"  {n:5} {f}")
    upward, loops, unknown = violations(g, edges)
    for f, t in upward:
        print(f"upward: {f} -> {t}  ({top(g.files[f])} is below {top(g.files[t])})")
    for comp in loops:
        print("loop: " + " <-> ".join(comp))
    for u in sorted(unknown):
        print(f"unlayered module: {u} (add it to LAYERS)")
    big_files, long_fns, _, _ = sizes(FILE_LINES, FN_LINES)
    long_fns = [(n, f) for n, f in long_fns if f not in EXCEPTIONS]
    for n, f in big_files:
        print(f"file over {FILE_LINES} lines of code: {f} ({n})")
    for n, f in long_fns:
        print(f"function over {FN_LINES} lines: {f} ({n})")
    print(f"imports: {sum(len(v) for v in edges.values())} between {len(g.files)} files; "
          f"{len(upward)} upward, {len(loops)} loops; "
          f"{len(big_files)} files over {FILE_LINES} lines, {len(long_fns)} functions over {FN_LINES}")
    sys.exit(1 if upward or loops or unknown or big_files or long_fns else 0)


if __name__ == "__main__":
    main()
