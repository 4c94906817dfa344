"""A Lightning file that trains at its top level, with no `if __name__ == "__main__":` block
(Lightning's README and many tutorials: `autoencoder = LitAutoEncoder()`, `trainer =
L.Trainer()`, `trainer.fit(...)` after the classes). `python model.py` runs those lines when it
runs the file; `lthost build` imports the file to find its classes, and there they cannot run
(no tensors exist before a run, and the run's trainer is lthost's). So the build takes them as
the file's `__main__` block: read for the plugin's defaults (`_main_block.py`) and, when only
running gives what they make, run in the plugin when a run starts (`_block_run.py`), in the
file's order and with the file's line numbers.

Which top-level statements are the training script (never imports, `def`s or `class`es):
- never what importing the file needs: a statement binding a name the file's `def`s and
  `class`es read (`HIDDEN = 64`, `config = Config()`, wherever it stands), and what binds the
  names such a statement uses — unless it calls `Trainer`, `LightningCLI`, `seed_everything`
  or `manual_seed`;
- the ones that start it: a call of one of those four, of a class the file defines (the model,
  its data, its layers) or of a function of the file that makes one of those calls;
- every statement after the first of those (it runs after training started: `trainer.test`,
  `print(trainer.callback_metrics)`, `torch.save(...)`);
- before it, what binds a name the script uses (`encoder = nn.Sequential(...)`,
  `train_loader = DataLoader(...)`), and what uses a name such a statement binds
  (`parser.add_argument(...)`).
Everything else (`torch.set_float32_matmul_precision(...)`, `warnings.filterwarnings(...)`)
runs at import, as it does in Python. A file with no such statement is imported unchanged."""

import ast
import importlib.util
import symtable
import sys

# Calls that start a training script, by the callee's last name.
STARTS = {"Trainer", "LightningCLI", "seed_everything", "manual_seed"}
_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# Scopes of their own: names bound inside them are not the module's.
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
           ast.GeneratorExp)


def is_main_test(test):
    """`__name__ == "__main__"` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    mains = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(mains) == 1


def _is_docstring(stmt):
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _bound(stmt):
    """The module-level names `stmt` binds."""
    names = set()

    def walk(node):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, _SCOPES) and node is not stmt:
            return
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(stmt)
    return names


def _used(node):
    """Every name `node` reads, nested scopes included."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _read_at_module_level(definition):
    """The module-level names a `def`, `class` or import reads: its decorators, defaults and
    bases, and every name its code looks up in the module (not its own locals)."""
    table = symtable.symtable(ast.unparse(definition), "<definition>", "exec")
    names = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    scopes = list(table.get_children())
    while scopes:
        scope = scopes.pop()
        names |= {s.get_name() for s in scope.get_symbols() if s.is_referenced() and s.is_global()}
        scopes.extend(scope.get_children())
    return names


def _callee(call):
    """The last name of a call's callee (`L.Trainer(...)` → "Trainer"), or None."""
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def _calls(node):
    return {c for c in (_callee(n) for n in ast.walk(node) if isinstance(n, ast.Call)) if c is not None}


def called_names(tree):
    """The last names of every callee in `tree` (`L.Trainer(...)` → "Trainer")."""
    return _calls(tree)


def script_statements(tree):
    """The indices in `tree.body` of the top-level statements that are its training script
    (see the module's doc), in order; empty when it has none."""
    body = tree.body
    classes = {s.name for s in body if isinstance(s, ast.ClassDef)}
    functions = {s.name: s for s in body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}
    starts = STARTS | classes
    # The file's functions that start training when called (main(), train(args)).
    changed = True
    while changed:
        changed = False
        for name, fn in functions.items():
            if name not in starts and _calls(fn) & starts:
                starts.add(name)
                changed = True
    candidates = [i for i, s in enumerate(body) if not isinstance(s, _DEFINITIONS) and not _is_docstring(s)
                  and not (isinstance(s, ast.If) and is_main_test(s.test))]

    def explicit(i):
        return bool(_calls(body[i]) & STARTS)

    # What importing the file needs, wherever it stands: the statements binding a name its
    # `def`s and `class`es read (`HIDDEN = 64` after `seed_everything(42)`, `config = Config()`),
    # and those binding what these use (`STEPS = 1000 // BATCH` needs `BATCH`).
    wanted = set().union(*(_read_at_module_level(s) for s in body if isinstance(s, _DEFINITIONS)))
    kept = set()
    changed = True
    while changed:
        changed = False
        for i in candidates:
            if i not in kept and not explicit(i) and _bound(body[i]) & wanted:
                kept.add(i)
                wanted |= _used(body[i])
                changed = True
    free = [i for i in candidates if i not in kept]
    first = next((i for i in free if _calls(body[i]) & starts), None)
    if first is None:
        return []
    script = {i for i in free if i >= first}
    changed = True
    while changed:
        changed = False
        needed = set().union(*(_used(body[i]) for i in script))
        made = set().union(*(_bound(body[i]) for i in script))
        for i in free:
            if i not in script and (_bound(body[i]) & needed or _used(body[i]) & made):
                script.add(i)
                changed = True
    return sorted(script)


def as_main_block(tree):
    """`tree` with its top-level training script (`script_statements`) inside `if __name__ ==
    "__main__":` blocks in place, each run of consecutive statements one block, their lines
    the file's. Returns each block's first and last line."""
    script = set(script_statements(tree))
    if not script:
        return []
    body = []
    for i, stmt in enumerate(tree.body):
        if i not in script:
            body.append(stmt)
            continue
        last = body[-1] if body else None
        if not (isinstance(last, ast.If) and getattr(last, "_script", False)):
            test = ast.Compare(left=ast.Name(id="__name__", ctx=ast.Load()), ops=[ast.Eq()],
                               comparators=[ast.Constant(value="__main__")])
            last = ast.If(test=test, body=[], orelse=[])
            last._script = True
            ast.copy_location(last, stmt)
            body.append(last)
        last.body.append(stmt)
        last.end_lineno = stmt.end_lineno
    tree.body = body
    ast.fix_missing_locations(tree)
    return [(b.lineno, b.end_lineno) for b in body if getattr(b, "_script", False)]


def load(name):
    """Imports the user's module `name` (a file, or a package's `__init__.py`) as `import name`
    does, except that its top-level training script is held as its `__main__` block; an
    operator its top level still calls is refused with an error naming it
    (`lthost.aten.BUILDING`)."""
    from lthost import aten

    aten.BUILDING[0] = True
    try:
        return _import(name)
    finally:
        aten.BUILDING[0] = False


def _import(name):
    spec = importlib.util.find_spec(name)
    source = spec.loader.get_source(name) if spec is not None and spec.loader is not None else None
    if source is None:
        return importlib.import_module(name)
    tree = ast.parse(source, spec.origin)
    if not as_main_block(tree):
        return importlib.import_module(name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        exec(compile(tree, spec.origin, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return module
