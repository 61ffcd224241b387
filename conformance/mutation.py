"""Single-point mutants of torch.optim's for-loop implementations, generated from their source.

The suite's own mutation test (``nox -s mutation``; the runner is conformance/mutation_run.py).
For each :data:`TARGETS` function (``torch/optim/adam.py: _single_tensor_adam`` and the other
element-wise for-loop implementations), :func:`points` parses the installed source with ``ast``
and lists every place a single operator can change it — :data:`OPERATORS` says which changes.
:func:`mutant_module` returns the whole torch module's source with one point applied, its
relative imports made absolute and the candidate classes' ``foreach``/``fused`` defaults set to
``False`` (so ``step()`` runs the mutated for-loop function); written to a file on ``sys.path``,
``pytest --optimizer=<module>.<Class>`` checks it like any candidate.

A mutant id is ``<module>.<function>:<line>:<col>-<end col>:<operator>``, the line counted from
the function's ``def`` (so that edits elsewhere in torch's file leave it unchanged): stable for a
given torch source, and the key of the written reasons in ``mutation_equivalent.toml``.

Scope: only code that runs in the checked configuration is mutated (:data:`KNOWN`): CPU,
``capturable=False``, ``differentiable=False``, real dtypes, eager (not scripted, not compiled),
dense gradients, hyperparameters given as Python numbers. A branch whose condition is decided by
those facts is mutated only on the side taken, and its condition not at all; ``raise`` and
``assert`` statements are never mutated.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Target:
    """A for-loop function of ``torch.optim.<module>`` and the classes (with their spec) that call it."""

    module: str  # "adam": torch/optim/adam.py
    function: str  # "_single_tensor_adam"
    classes: tuple[tuple[str, str], ...]  # (class name, spec id)
    extra: tuple[str, ...] = ()  # torch.optim modules whose class is copied in (adamw's AdamW)

    @property
    def key(self) -> str:
        return f"{self.module}.{self.function}"


TARGETS: tuple[Target, ...] = (
    Target("adam", "_single_tensor_adam", (("Adam", "adam"), ("AdamW", "adamw")), extra=("adamw",)),
    Target("adamax", "_single_tensor_adamax", (("Adamax", "adamax"),)),
    Target("nadam", "_single_tensor_nadam", (("NAdam", "nadam"),)),
    Target("radam", "_single_tensor_radam", (("RAdam", "radam"),)),
    Target("rmsprop", "_single_tensor_rmsprop", (("RMSprop", "rmsprop"),)),
    Target("rprop", "_single_tensor_rprop", (("Rprop", "rprop"),)),
    Target("sgd", "_single_tensor_sgd", (("SGD", "sgd"),)),
    Target("adagrad", "_single_tensor_adagrad", (("Adagrad", "adagrad"),)),
    Target("adadelta", "_single_tensor_adadelta", (("Adadelta", "adadelta"),)),
    Target("asgd", "_single_tensor_asgd", (("ASGD", "asgd"),)),
)

# The checked configuration: names and calls whose value is known while the suite runs.
KNOWN: dict[str, object] = {
    "capturable": False, "differentiable": False, "has_complex": False, "has_sparse_grad": False,
    "is_complex": False, "is_complex_param": False,  # locals bound to torch.is_complex(param)
    "grad_scale": None, "found_inf": None, "beta1_dict": None,  # beta1 is a float: no device dict
}
KNOWN_CALLS = {"torch.jit.is_scripting": False, "torch.compiler.is_compiling": False,
               "torch.is_complex": False}
KNOWN_ATTRS = {"is_sparse": False}  # grad.is_sparse: dense gradients
UNKNOWN = object()

BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult}
CMP_SWAP = {ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,), ast.Lt: (ast.LtE, ast.Gt), ast.LtE: (ast.Lt,),
            ast.Gt: (ast.GtE, ast.Lt), ast.GtE: (ast.Gt,), ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,),
            ast.In: (ast.NotIn,), ast.NotIn: (ast.In,)}
SIBLINGS = {"beta1": "beta2", "beta2": "beta1", "momentum": "dampening", "dampening": "momentum",
            "etaminus": "etaplus", "etaplus": "etaminus", "step_size_min": "step_size_max",
            "step_size_max": "step_size_min", "lambd": "alpha", "alpha": "lambd"}
STEP_NAMES = {"step", "step_t"}  # the step counter, as the for-loop functions name it
NAME_SWAP = {"maximum": "minimum", "minimum": "maximum", "max": "min", "min": "max",
             "clamp_min": "clamp_max", "clamp_max": "clamp_min"}
OPERATORS = {
    "binop": "arithmetic operator swapped (+ ↔ −, × ↔ ÷, ** → ×)",
    "cmp": "comparison operator changed (== ↔ !=, < → <= or >, > → >= or <, is ↔ is not)",
    "boolop": "and ↔ or",
    "const": "numeric constant ± 1 (the step counter's += 1 becomes += 2 or += 0)",
    "neg": "unary minus or not dropped",
    "offbyone": "the step counter read off by one (step → step + 1, step − 1)",
    "sqrt": "square root dropped (x.sqrt(), torch.sqrt(x), x ** 0.5 → x)",
    "remove": "state update removed (an in-place call, an augmented assignment, a store into a "
              "state list, or a rebinding x = f(x) replaced by pass)",
    "chain": "last call of a chain dropped (a.mul_(b).addcmul_(...) → a.mul_(b), (x / y).add_(eps) → x / y)",
    "kwdrop": "keyword argument dropped (its default used: alpha=, value=, weight=)",
    "kwneg": "keyword value negated",
    "swap": "a hyperparameter read as its sibling (β1 ↔ β2, momentum ↔ dampening, η− ↔ η+, "
            "step size min ↔ max, λ ↔ α), in a keyword value or anywhere else",
    "argswap": "first two positional arguments swapped",
    "minmax": "maximum ↔ minimum, max ↔ min, clamp_min ↔ clamp_max",
}


def module_path(module: str) -> Path:
    spec = importlib.util.find_spec(f"torch.optim.{module}")
    if spec is None or spec.origin is None:  # pragma: no cover - torch is a test dependency
        raise ModuleNotFoundError(f"torch.optim.{module}")
    return Path(spec.origin)


def _function(tree: ast.Module, name: str) -> ast.FunctionDef:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise LookupError(f"no function {name} in the module")


# -- the checked configuration decides some conditions ------------------------------------------

def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def decide(test: ast.expr, hyper: set[str]) -> object:
    """The value of a condition in the checked configuration, or UNKNOWN. ``hyper``: the function's
    keyword-only parameters (the suite passes them as Python numbers, never as tensors)."""
    if isinstance(test, ast.Constant):
        return test.value
    if isinstance(test, ast.Name):
        return KNOWN.get(test.id, UNKNOWN)
    if isinstance(test, ast.Attribute) and test.attr in KNOWN_ATTRS:
        return KNOWN_ATTRS[test.attr]
    if isinstance(test, ast.Call):
        name = _dotted(test.func)
        if name in KNOWN_CALLS:
            return KNOWN_CALLS[name]
        if (name == "isinstance" and len(test.args) == 2 and _dotted(test.args[1]) == "Tensor"
                and isinstance(test.args[0], ast.Name) and test.args[0].id in hyper):
            return False
        return UNKNOWN
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        value = decide(test.operand, hyper)
        return value if value is UNKNOWN else not value
    if isinstance(test, ast.BoolOp):
        values = [decide(v, hyper) for v in test.values]
        stop = isinstance(test.op, ast.Or)  # the value that decides: True for or, False for and
        if any(v is not UNKNOWN and bool(v) is stop for v in values):
            return stop
        return UNKNOWN if any(v is UNKNOWN for v in values) else not stop
    if (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Is, ast.IsNot))
            and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value is None):
        left = decide(test.left, hyper)
        if left is UNKNOWN:
            return UNKNOWN
        return (left is None) == isinstance(test.ops[0], ast.Is)
    return UNKNOWN


# -- mutation points ------------------------------------------------------------------------------

@dataclass
class Point:
    """One single-point mutation of a target function."""

    target: Target
    line: int  # from the def line of the function (0 = the def)
    col: int
    end_col: int
    operator: str  # e.g. "binop:Sub->Add", "remove", "const:1->2"
    apply: Callable[[], None] = field(repr=False, compare=False)
    abs_line: int = 0  # line in torch's file

    @property
    def id(self) -> str:
        return f"{self.target.key}:{self.line}:{self.col}-{self.end_col}:{self.operator}"

    @property
    def kind(self) -> str:
        return self.operator.split(":")[0]


def _parents(root: ast.AST) -> dict[ast.AST, tuple[ast.AST, str, int | None]]:
    out = {}
    for node in ast.walk(root):
        for name, value in ast.iter_fields(node):
            if isinstance(value, list):
                for i, child in enumerate(value):
                    if isinstance(child, ast.AST):
                        out[child] = (node, name, i)
            elif isinstance(value, ast.AST):
                out[value] = (node, name, None)
    return out


def _replacer(parents: dict, old: ast.AST, make: Callable[[], ast.AST]) -> Callable[[], None]:
    def apply() -> None:
        parent, name, i = parents[old]
        new = make()
        ast.copy_location(new, old)
        if i is None:
            setattr(parent, name, new)
        else:
            getattr(parent, name)[i] = new
    return apply


def _setter(node: ast.AST, name: str, value: object) -> Callable[[], None]:
    return lambda: setattr(node, name, value)


def _reachable(stmts: list[ast.stmt], hyper: set[str]) -> Iterator[tuple[ast.AST, bool]]:
    """(node, whole) to mutate: a simple statement (whole: all of it) or the expression header
    of a compound statement (whole=False: its bodies are walked here, branch by branch)."""
    for stmt in stmts:
        if isinstance(stmt, (ast.Raise, ast.Assert)):
            continue
        if isinstance(stmt, ast.If):
            value = decide(stmt.test, hyper)
            if value is UNKNOWN:
                yield stmt.test, True
                yield from _reachable(stmt.body, hyper)
                yield from _reachable(stmt.orelse, hyper)
            else:
                yield from _reachable(stmt.body if value else stmt.orelse, hyper)
        elif isinstance(stmt, (ast.For, ast.While)):
            yield (stmt.iter if isinstance(stmt, ast.For) else stmt.test), True
            yield from _reachable(stmt.body, hyper)
            yield from _reachable(stmt.orelse, hyper)
        elif isinstance(stmt, ast.With):
            for item in stmt.items:
                yield item.context_expr, True
            yield from _reachable(stmt.body, hyper)
        elif isinstance(stmt, ast.Try):  # pragma: no cover - none in the targets today
            for part in (stmt.body, *(h.body for h in stmt.handlers), stmt.orelse, stmt.finalbody):
                yield from _reachable(part, hyper)
        else:
            yield stmt, True


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _walk(node: ast.AST, hyper: set[str]) -> Iterator[ast.AST]:
    """``ast.walk``, except that a conditional expression the configuration decides is walked
    on the side taken only (``step_t if capturable else _get_value(step_t)``: the else side)."""
    todo = [node]
    while todo:
        n = todo.pop(0)
        if isinstance(n, ast.IfExp):
            value = decide(n.test, hyper)
            if value is not UNKNOWN:
                todo.append(n.body if value else n.orelse)
                continue
        yield n
        todo.extend(ast.iter_child_nodes(n))


def _expr_points(node: ast.AST, parents: dict, hyper: set[str]) -> Iterator[tuple[ast.AST, str, Callable]]:
    """(node, operator, apply) for every point inside one reachable statement or expression."""
    for n in _walk(node, hyper):
        if isinstance(n, ast.BinOp):
            swap = BINOP_SWAP.get(type(n.op))
            if swap is not None:
                yield n, f"binop:{type(n.op).__name__}->{swap.__name__}", _setter(n, "op", swap())
            if (isinstance(n.op, ast.Pow) and isinstance(n.right, ast.Constant)
                    and n.right.value == 0.5):
                yield n, "sqrt", _replacer(parents, n, lambda n=n: n.left)
        elif isinstance(n, ast.Compare) and len(n.ops) == 1:
            if decide(n, hyper) is not UNKNOWN:
                continue
            for new in CMP_SWAP.get(type(n.ops[0]), ()):
                yield n, f"cmp:{type(n.ops[0]).__name__}->{new.__name__}", _setter(n, "ops", [new()])
        elif isinstance(n, ast.BoolOp) and decide(n, hyper) is UNKNOWN:
            new = ast.Or if isinstance(n.op, ast.And) else ast.And
            yield n, f"boolop:{type(n.op).__name__}->{new.__name__}", _setter(n, "op", new())
        elif (isinstance(n, ast.Constant) and isinstance(n.value, (int, float))
              and not isinstance(n.value, bool)):
            parent = parents.get(n, (None,))[0]
            if isinstance(parent, ast.Subscript):
                continue  # an index (betas[0]) is not a number of the rule
            for new in (n.value + 1, n.value - 1):
                yield n, f"const:{n.value!r}->{new!r}", _setter(n, "value", new)
        elif isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.Not)):
            if isinstance(n.op, ast.Not) and decide(n, hyper) is not UNKNOWN:
                continue
            yield n, f"neg:{type(n.op).__name__}", _replacer(parents, n, lambda n=n: n.operand)
        elif isinstance(n, ast.Call):
            yield from _call_points(n, parents)
        elif (isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in SIBLINGS
              and SIBLINGS[n.id] in hyper):
            yield n, f"swap:{n.id}->{SIBLINGS[n.id]}", _setter(n, "id", SIBLINGS[n.id])
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in STEP_NAMES:
            for op, sign in ((ast.Add, "+"), (ast.Sub, "-")):
                yield n, f"offbyone:{n.id}{sign}1", _replacer(
                    parents, n, lambda n=n, op=op: ast.BinOp(ast.Name(n.id, ast.Load()), op(), ast.Constant(1)))
        if isinstance(n, (ast.Name, ast.Attribute)):
            name = n.id if isinstance(n, ast.Name) else n.attr
            if name in NAME_SWAP and isinstance(parents.get(n, (None,))[0], ast.Call):
                field_name = "id" if isinstance(n, ast.Name) else "attr"
                yield n, f"minmax:{name}->{NAME_SWAP[name]}", _setter(n, field_name, NAME_SWAP[name])


def _call_points(n: ast.Call, parents: dict) -> Iterator[tuple[ast.AST, str, Callable]]:
    func = n.func
    if isinstance(func, ast.Attribute) and func.attr == "sqrt" and not n.args:
        yield n, "sqrt", _replacer(parents, n, lambda: func.value)
    elif _dotted(func) in ("torch.sqrt", "math.sqrt") and len(n.args) == 1:
        yield n, "sqrt", _replacer(parents, n, lambda: n.args[0])
    elif isinstance(func, ast.Attribute) and isinstance(func.value, (ast.Call, ast.BinOp)):
        yield n, f"chain:{func.attr}", _replacer(parents, n, lambda: func.value)
    for k in n.keywords:
        if k.arg is None or k.arg == "out":
            continue
        yield n, f"kwdrop:{k.arg}", _setter(n, "keywords", [o for o in n.keywords if o is not k])
        if not (isinstance(k.value, ast.UnaryOp) and isinstance(k.value.op, ast.USub)):
            yield n, f"kwneg:{k.arg}", _setter(k, "value", ast.UnaryOp(ast.USub(), k.value))
    if len(n.args) >= 2 and ast.dump(n.args[0]) != ast.dump(n.args[1]):
        def argswap() -> None:
            n.args[0], n.args[1] = n.args[1], n.args[0]
        yield n, "argswap", argswap


def _removable(stmt: ast.stmt) -> bool:
    """A statement that updates state: removing it is the mutant 'state update removed'."""
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        func = stmt.value.func
        return isinstance(func, ast.Attribute) and (func.attr.endswith("_") or "out" in
                                                    {k.arg for k in stmt.value.keywords})
    if isinstance(stmt, ast.AugAssign):
        return True
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target = stmt.targets[0]
        if isinstance(target, ast.Subscript):
            return True
        return isinstance(target, ast.Name) and target.id in _names(stmt.value)
    return False


def _stmt_remover(parents: dict, stmt: ast.stmt) -> Callable[[], None]:
    return _replacer(parents, stmt, ast.Pass)


def _enumerate(tree: ast.Module, target: Target) -> list[Point]:
    fn = _function(tree, target.function)
    hyper = {a.arg for a in fn.args.kwonlyargs}
    parents = _parents(fn)
    out: list[Point] = []
    for node, _whole in _reachable(fn.body, hyper):
        if isinstance(node, ast.stmt) and _removable(node):
            out.append(Point(target, node.lineno - fn.lineno, node.col_offset, node.end_col_offset or 0,
                             "remove", _stmt_remover(parents, node), node.lineno))
        for n, operator, apply in _expr_points(node, parents, hyper):
            out.append(Point(target, n.lineno - fn.lineno, n.col_offset, n.end_col_offset or 0,
                             operator, apply, n.lineno))
    seen: dict[str, int] = {}
    for p in out:  # make ids unique (two points of one operator on one span: none today)
        seen[p.id] = seen.get(p.id, 0) + 1
        if seen[p.id] > 1:
            p.operator += f"#{seen[p.id]}"
    return out


@functools.cache
def source(target: Target) -> str:
    return module_path(target.module).read_text(encoding="utf-8")


def points(target: Target) -> list[Point]:
    """Every mutation point of the target, in source order (ids only: each call parses afresh)."""
    return _enumerate(ast.parse(source(target)), target)


# -- the mutant module ----------------------------------------------------------------------------

def _absolute_imports(tree: ast.Module) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            node.module = "torch.optim" + (f".{node.module}" if node.module else "")
            node.level = 0


def _for_loop_defaults(cls: ast.ClassDef) -> None:
    """``foreach=None``/``fused=None`` → ``False`` in the class's ``__init__``: the for-loop path."""
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            args = node.args
            for i, a in enumerate(args.kwonlyargs):
                if a.arg in ("foreach", "fused"):
                    args.kw_defaults[i] = ast.Constant(False)
            positional = args.posonlyargs + args.args
            offset = len(positional) - len(args.defaults)
            for i, a in enumerate(positional):
                if a.arg in ("foreach", "fused") and i >= offset:
                    args.defaults[i - offset] = ast.Constant(False)


def _classes(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


def mutant_module(target: Target, mutant_id: str | None) -> str:
    """The source of ``torch.optim.<module>`` with the mutant applied (``None``: unmutated), its
    classes running their for-loop implementation; classes of ``target.extra`` modules appended."""
    tree = ast.parse(source(target))
    if mutant_id is not None:
        found = [p for p in _enumerate(tree, target) if p.id == mutant_id]
        if not found:
            raise LookupError(f"no mutation point {mutant_id}")
        found[0].apply()
    for module in target.extra:
        extra = ast.parse(module_path(module).read_text(encoding="utf-8"))
        tree.body += [n for n in extra.body if isinstance(n, ast.ClassDef)]
    _absolute_imports(tree)
    for name, _spec in target.classes:
        _for_loop_defaults(_classes(tree)[name])
    ast.fix_missing_locations(tree)
    return ast.unparse(tree) + "\n"


@functools.cache
def function_source(target: Target, mutant_id: str | None) -> str:
    """The target function's source (normalised by ``ast.unparse``), the mutant applied."""
    tree = ast.parse(source(target))
    fn = _function(tree, target.function)
    if mutant_id is not None:
        found = [p for p in _enumerate(tree, target) if p.id == mutant_id]
        if not found:
            raise LookupError(f"no mutation point {mutant_id}")
        found[0].apply()
    return ast.unparse(fn)


def diff(target: Target, mutant_id: str) -> str:
    """The mutant as a unified diff of the function (both sides normalised by ``ast.unparse``)."""
    before = function_source(target, None).splitlines()
    after = function_source(target, mutant_id).splitlines()
    lines = difflib.unified_diff(before, after, f"torch/optim/{target.module}.py",
                                 f"mutant {mutant_id}", n=0, lineterm="")
    return "\n".join(line for line in lines if not line.startswith("@@"))
