#!/usr/bin/env python3
"""The layering the build is organised by: ops <- mixers <- models <- tasks <- run <- analysis <- cli.

Each folder is its own library linking only the one below it; this test fails when a source file includes a
header from a layer above its own (a back edge the linker would not always catch), naming the file and line."""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LAYERS = ["mixers/ops", "mixers", "models", "experiments/tasks", "experiments/run", "experiments/analysis",
          "experiments/cli"]


def layer_of(path):
    """Index of the deepest layer folder holding `path` (relative to the root), or None."""
    best = None
    for i, folder in enumerate(LAYERS):
        if path == folder or path.startswith(folder + "/"):
            if best is None or len(folder) > len(LAYERS[best]):
                best = i
    return best


def main():
    include = re.compile(r'^\s*#include "([^"]+)"')
    errors = []
    for source in sorted(ROOT.glob("mixers/**/*")) + sorted(ROOT.glob("models/**/*")) + \
            sorted(ROOT.glob("experiments/**/*")):
        if source.suffix not in (".h", ".cc"):
            continue
        rel = source.relative_to(ROOT).as_posix()
        own = layer_of(rel)
        for number, line in enumerate(source.read_text().splitlines(), 1):
            m = include.match(line)
            if not m:
                continue
            target = layer_of(m.group(1))
            if target is not None and target > own:
                errors.append(f"{rel}:{number}: includes {m.group(1)} ({LAYERS[target]}), above its layer {LAYERS[own]}")
    for e in errors:
        print(e)
    print(f"layering: {len(errors)} back edge(s) in the chain " + " <- ".join(LAYERS))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
