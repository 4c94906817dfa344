"""Fails when a case table of a tests/reference script names one case twice. A dict literal
keeps only the last of two equal keys (a `**{...}` comprehension's included), so a case added
under a name already taken replaces the earlier one without a word, and neither Lightning nor
lthost ever runs it. Run by `make test` with the references (tools/run_references.py), or alone:

    .venv/bin/python tools/reference_case_names.py
"""

import ast
import collections
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference"


def repeated(path):
    """(table, name) for each name given twice in one of the module's top-level dict literals."""
    tree = ast.parse(path.read_text())
    module = None
    out = []
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)):
            continue
        table = getattr(node.targets[0], "id", "?")
        names = []
        for key, value in zip(node.value.keys, node.value.values):
            if module is None:
                module = importlib.import_module(path.stem)
            # A key (evaluated unless a literal), or `**{...}`: the names the expression makes,
            # from the module as it is loaded.
            evaluated = lambda e: eval(compile(ast.Expression(e), str(path), "eval"), vars(module))
            if key is not None:
                try:
                    names.append(ast.literal_eval(key))
                except ValueError:
                    names.append(evaluated(key))
                continue
            names.extend(evaluated(value).keys())
        out += [(table, n) for n, c in collections.Counter(names).items() if c > 1]
    return out


def main():
    sys.path.insert(0, str(REFERENCE))
    found = [(p.name, t, n) for p in sorted(REFERENCE.glob("*_reference.py")) for t, n in repeated(p)]
    for file, table, name in found:
        print(f"{file}: {table} names the case {name!r} twice (the later one replaces the earlier)", file=sys.stderr)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
