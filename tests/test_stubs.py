"""``_core.pyi`` describes the compiled ``tensorbridge._core`` module exactly: every
name it has gets a stub and every stub names something it has (both ways, for the
module and for each class body), with the same kind (function, class, method,
static method, property), the same parameters (names, kinds, defaults) where the
runtime can tell them, and type annotations throughout."""

from __future__ import annotations

import ast
import inspect
import keyword
import re
from pathlib import Path
from typing import Any, Optional, Union

import pytest

import tensorbridge
from tensorbridge import _core

# The source tree's stub (the one to edit); the installed package ships a copy.
STUB_PATH = Path(__file__).resolve().parents[1] / "python" / "tensorbridge" / "_core.pyi"

# What every module object has; not part of `_core`'s API.
MODULE_DUNDERS = {"__doc__", "__name__", "__file__", "__loader__", "__spec__", "__package__", "__all__"}
# What every class object has in its own `__dict__`; not methods or properties.
CLASS_DATA_DUNDERS = {"__doc__", "__module__", "__dict__", "__weakref__"}

FuncDef = Union[ast.FunctionDef, ast.AsyncFunctionDef]


def _stub_tree() -> ast.Module:
    return ast.parse(STUB_PATH.read_text(encoding="utf-8"), filename=str(STUB_PATH))


def _is_type_alias(node: ast.stmt) -> bool:
    """``_X: TypeAlias = ...``: a name only the stub has, for annotations."""
    return (
        isinstance(node, ast.AnnAssign)
        and isinstance(node.annotation, (ast.Name, ast.Attribute))
        and (node.annotation.id if isinstance(node.annotation, ast.Name) else node.annotation.attr) == "TypeAlias"
    )


def _defined(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    """Names a stub body defines (functions, classes, plain attributes), type
    aliases and imports aside. A name defined twice is an error."""
    out: dict[str, ast.stmt] = {}
    for node in body:
        names: list[str] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, ast.AnnAssign) and not _is_type_alias(node):
            assert isinstance(node.target, ast.Name)
            names = [node.target.id]
        elif isinstance(node, ast.Assign):
            raise AssertionError(f"line {node.lineno}: use `name: TypeAlias = ...` for stub-only aliases")
        for n in names:
            assert n not in out, f"{n} stubbed twice (line {node.lineno})"
            out[n] = node
    return out


def _decorators(f: FuncDef) -> set[str]:
    return {d.id if isinstance(d, ast.Name) else ast.unparse(d) for d in f.decorator_list}


STUB = _stub_tree()
STUB_NAMES = _defined(STUB.body)
RUNTIME_NAMES = {n for n in dir(_core) if n not in MODULE_DUNDERS}
CLASSES = sorted(n for n in RUNTIME_NAMES if isinstance(getattr(_core, n), type))


def test_stub_is_valid_python() -> None:
    compile(STUB, str(STUB_PATH), "exec")


def test_installed_package_ships_the_stub() -> None:
    installed = Path(tensorbridge.__file__).parent
    assert (installed / "_core.pyi").is_file()
    assert (installed / "py.typed").is_file()


def test_every_module_name_has_a_stub() -> None:
    missing = sorted(RUNTIME_NAMES - set(STUB_NAMES))
    assert not missing, f"_core.pyi lacks stubs for: {missing}"


def test_every_module_stub_exists() -> None:
    extra = sorted(set(STUB_NAMES) - RUNTIME_NAMES)
    assert not extra, f"_core.pyi has stubs for names _core does not have: {extra}"


@pytest.mark.parametrize("name", sorted(RUNTIME_NAMES))
def test_module_name_kind(name: str) -> None:
    obj = getattr(_core, name)
    node = STUB_NAMES.get(name)
    assert node is not None, f"no stub for {name}"
    if isinstance(obj, type):
        assert isinstance(node, ast.ClassDef), f"{name} is a class"
    elif callable(obj):
        assert isinstance(node, ast.FunctionDef), f"{name} is a function"
    else:
        assert isinstance(node, ast.AnnAssign), f"{name} is a value"


def _class_names(cls: type) -> set[str]:
    """A class's own methods and properties (its `__dict__`), inherited ones aside.
    `__new__` counts only for a class Python code can construct: PyO3 puts a
    `__new__` that raises "No constructor defined" in every class without one."""
    names = set(cls.__dict__) - CLASS_DATA_DUNDERS
    if cls.__text_signature__ is None:
        names.discard("__new__")
    return names


def _class_stub(name: str) -> ast.ClassDef:
    node = STUB_NAMES[name]
    assert isinstance(node, ast.ClassDef), f"{name} is a class"
    return node


@pytest.mark.parametrize("name", CLASSES)
def test_class_members_have_stubs_and_stubs_exist(name: str) -> None:
    cls = getattr(_core, name)
    stubbed = set(_defined(_class_stub(name).body))
    runtime = _class_names(cls)
    assert not sorted(runtime - stubbed), f"{name}: no stubs for {sorted(runtime - stubbed)}"
    assert not sorted(stubbed - runtime), f"{name}: stubs for what it lacks: {sorted(stubbed - runtime)}"


@pytest.mark.parametrize("name", CLASSES)
def test_classes_without_constructor_refuse_construction(name: str) -> None:
    cls = getattr(_core, name)
    if cls.__text_signature__ is None:
        with pytest.raises(TypeError, match="No constructor defined"):
            cls()
        assert "__init__" not in _defined(_class_stub(name).body)


# --- signatures ----------------------------------------------------------------------


def _stub_signature(f: FuncDef, *, drop_first: bool) -> list[tuple[str, Any, Any]]:
    """`(name, kind, default)` for each parameter, as `inspect.Parameter` would say."""
    a = f.args
    P = inspect.Parameter
    positional = [(p, P.POSITIONAL_ONLY) for p in a.posonlyargs] + [(p, P.POSITIONAL_OR_KEYWORD) for p in a.args]
    defaults: list[Any] = [P.empty] * (len(positional) - len(a.defaults)) + list(a.defaults)
    out = []
    for (p, kind), d in zip(positional, defaults):
        out.append((p.arg, kind, d))
    if a.vararg:
        out.append((a.vararg.arg, P.VAR_POSITIONAL, P.empty))
    for p, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append((p.arg, P.KEYWORD_ONLY, P.empty if d is None else d))
    if a.kwarg:
        out.append((a.kwarg.arg, P.VAR_KEYWORD, P.empty))
    if drop_first:
        assert out and out[0][1] in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD), f"{f.name}: no self/cls"
        out = out[1:]
    return [(n, k, d if d is P.empty else ast.literal_eval(d)) for n, k, d in out]


def _text_signature(text: str) -> list[tuple[str, Any, Any]]:
    """Parameters of a `__text_signature__` that `inspect` cannot read because a
    parameter is named after a Python keyword (`can_cast(from, to, casting)`)."""
    marked = re.sub(r"\b(" + "|".join(keyword.kwlist) + r")\b(?=\s*[,=)])", r"\1_KW", text.replace("$", ""))
    (f,) = ast.parse(f"def f{marked}: pass").body
    assert isinstance(f, ast.FunctionDef)
    return [(n.removesuffix("_KW"), k, d) for n, k, d in _stub_signature(f, drop_first=False)]


def _runtime_signature(obj: Any, *, drop_first: bool) -> Optional[list[tuple[str, Any, Any]]]:
    try:
        params = [(p.name, p.kind, p.default) for p in inspect.signature(obj).parameters.values()]
    except (ValueError, TypeError):
        text = getattr(obj, "__text_signature__", None)
        if text is None:
            return None
        params = _text_signature(text)
    return params[1:] if drop_first else params


def _same_parameters(where: str, stub: list[tuple[str, Any, Any]], runtime: list[tuple[str, Any, Any]]) -> None:
    P = inspect.Parameter
    assert len(stub) == len(runtime), f"{where}: stub {stub} vs runtime {runtime}"
    for (sn, sk, sd), (rn, rk, rd) in zip(stub, runtime):
        if keyword.iskeyword(rn):
            # `from` cannot be a parameter name in Python code: the stub says `from_`,
            # positional-only (the only way Python code can pass it).
            assert (sn, sk) == (rn + "_", P.POSITIONAL_ONLY), f"{where}: {rn!r} must be stubbed `{rn}_, /`"
        else:
            assert (sn, sk) == (rn, rk), f"{where}: stub parameter {sn} ({sk}) vs runtime {rn} ({rk})"
        assert sd == rd, f"{where}: default of {rn}: stub {sd!r}, runtime {rd!r}"


def _check_annotated(where: str, f: FuncDef, *, drop_first: bool) -> None:
    a = f.args
    params = a.posonlyargs + a.args + a.kwonlyargs + [p for p in (a.vararg, a.kwarg) if p]
    if drop_first:
        params = [p for p in params if p is not (a.posonlyargs + a.args)[0]]
    unannotated = [p.arg for p in params if p.annotation is None]
    assert not unannotated, f"{where}: parameters without a type: {unannotated}"
    assert f.returns is not None, f"{where}: no return type"


FUNCTIONS = sorted(n for n in RUNTIME_NAMES if n not in CLASSES and callable(getattr(_core, n)))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_signature(name: str) -> None:
    node = STUB_NAMES[name]
    assert isinstance(node, ast.FunctionDef), f"{name} is a function"
    _check_annotated(name, node, drop_first=False)
    runtime = _runtime_signature(getattr(_core, name), drop_first=False)
    assert runtime is not None, f"{name}: the runtime gives no signature to check"
    _same_parameters(name, _stub_signature(node, drop_first=False), runtime)


MEMBERS = [(c, m) for c in CLASSES for m in sorted(_class_names(getattr(_core, c)))]


@pytest.mark.parametrize(("cls_name", "member"), MEMBERS)
def test_member_kind_and_signature(cls_name: str, member: str) -> None:
    cls = getattr(_core, cls_name)
    where = f"{cls_name}.{member}"
    node = _defined(_class_stub(cls_name).body).get(member)
    assert isinstance(node, ast.FunctionDef), f"{where}: stubbed as a def"
    raw = cls.__dict__[member]
    decorators = _decorators(node)
    if inspect.isgetsetdescriptor(raw) or isinstance(raw, property):
        assert "property" in decorators, f"{where} is a property"
        _check_annotated(where, node, drop_first=True)
        return
    assert "property" not in decorators, f"{where} is not a property"
    if member == "__new__":
        # The constructor: the class's own signature, `cls` aside.
        assert "staticmethod" not in decorators
        _check_annotated(where, node, drop_first=True)
        runtime = _runtime_signature(cls, drop_first=False)
        drop = True
    elif isinstance(raw, staticmethod):
        assert "staticmethod" in decorators, f"{where} is a static method"
        _check_annotated(where, node, drop_first=False)
        runtime = _runtime_signature(getattr(cls, member), drop_first=False)
        drop = False
    else:
        assert not decorators & {"staticmethod", "classmethod"}, f"{where} is a plain method"
        _check_annotated(where, node, drop_first=True)
        runtime = _runtime_signature(raw, drop_first=True)
        drop = True
    assert runtime is not None, f"{where}: the runtime gives no signature to check"
    _same_parameters(where, _stub_signature(node, drop_first=drop), runtime)
