"""Turn a TARGET string into adapters: `file.py:Name`, `pkg.module:Name`, or `file.py`.

A Jupyter notebook, `file.ipynb[:Name]`, is loaded like a file: `notebook`
turns its code cells into one module and names the cell that fails.

A class with one of the book's names needs no configuration; its kind follows
from its name (or from `kind=`).  An `Adapter` subclass or instance is used
as it is.  A file without `:Name` yields every class or function in it that
has a book name, and every Adapter it defines.

Imports torch only (it also runs inside grading workers).
"""

import importlib
import importlib.util
import inspect
import os
import sys
import types
import uuid

from . import notebook
from .adapter import Adapter, BookAdapter, FunctionAdapter
from .config import KINDS


class TargetError(Exception):
    """The target cannot be loaded or is not something the suite can check (exit code 2)."""


def _package_name(path):
    """('root dir', 'dotted.name') when `path` sits inside a package, so relative imports work."""
    folder = os.path.dirname(os.path.abspath(path))
    parts = [os.path.splitext(os.path.basename(path))[0]]
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        parts.insert(0, os.path.basename(folder))
        folder = os.path.dirname(folder)
    return (folder, ".".join(parts)) if len(parts) > 1 else (None, None)


def _load_notebook(path):
    """A notebook as a fresh module (never a package member: notebooks cannot be imported)."""
    name = f"attnspec_target_{uuid.uuid4().hex[:12]}"
    module = types.ModuleType(name)
    sys.modules[name] = module
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:  # Jupyter runs a notebook in its folder: siblings import
        sys.path.append(folder)
    try:
        return notebook.load(path, module)
    except notebook.NotebookError as exc:
        text = str(exc)
        raise TargetError(text if text.startswith(("cannot read", path)) else f"importing {path} {text}") from None


def _load_file(path):
    if not os.path.isfile(path):
        raise TargetError(f"no such file: {path}")
    if path.endswith(".ipynb"):
        return _load_notebook(path)
    root, dotted = _package_name(path)
    if dotted and all(p.isidentifier() for p in dotted.split(".")):
        if root not in sys.path:
            sys.path.append(root)
        try:
            return importlib.import_module(dotted)
        except SystemExit as exc:
            raise TargetError(f"importing {path} called sys.exit({exc.code})") from None
        except Exception as exc:
            raise TargetError(f"importing {path} raised {type(exc).__name__}: {exc}") from None
    name = f"attnspec_target_{uuid.uuid4().hex[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = os.path.dirname(os.path.abspath(path))
    added = folder not in sys.path
    if added:  # let the file import its siblings, without shadowing anything
        sys.path.append(folder)
    try:
        spec.loader.exec_module(module)
    except SystemExit as exc:
        raise TargetError(f"importing {path} called sys.exit({exc.code})") from None
    except Exception as exc:
        raise TargetError(f"importing {path} raised {type(exc).__name__}: {exc}") from None
    return module


def _load_module(dotted):
    try:
        return importlib.import_module(dotted)
    except Exception as exc:
        raise TargetError(f"cannot import module {dotted!r}: {type(exc).__name__}: {exc}") from None


def _split(target):
    """('path or module', 'Name' or None), keeping Windows drive letters intact."""
    head, sep, tail = target.rpartition(":")
    if sep and tail and os.sep not in tail and "/" not in tail and not (len(head) == 1 and head.isalpha()):
        return head, tail
    return target, None


def adapt(obj, kind=None, name=None):
    """An Adapter for `obj`: an Adapter (class or instance), a book class, or a function."""
    if kind is not None and kind not in KINDS:
        raise TargetError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if isinstance(obj, Adapter):
        if kind:
            obj.kind = kind
        return obj
    if inspect.isclass(obj) and issubclass(obj, Adapter):
        try:
            adapter = obj()
        except Exception as exc:
            raise TargetError(f"cannot instantiate adapter {obj.__name__}: {type(exc).__name__}: {exc}") from None
        if kind:
            adapter.kind = kind
        return adapter
    label = name or getattr(obj, "__name__", repr(obj))
    kind = kind or getattr(obj, "__name__", None)
    if kind not in KINDS:
        raise TargetError(
            f"{label} has no book name, so its kind is unknown: pass --kind (kind= in Python) with one of {', '.join(KINDS)}, "
            "or write an Adapter (see examples/)"
        )
    if inspect.isclass(obj):
        if kind == "simplified_self_attention":
            raise TargetError(f"{label} is a class; simplified_self_attention is a function of the inputs")
        return BookAdapter(obj, kind)
    if callable(obj):
        if kind != "simplified_self_attention":
            raise TargetError(f"{label} is a function; {kind} must be a class (an nn.Module)")
        return FunctionAdapter(obj, kind)
    raise TargetError(f"{label} is neither a class nor a function")


def discover(module):
    """Every checkable object a module defines: Adapters first, then book names."""
    found = []
    for attr, obj in vars(module).items():
        if attr.startswith("_"):
            continue
        if inspect.isclass(obj) and issubclass(obj, Adapter) and obj is not Adapter:
            if getattr(obj, "__module__", None) == module.__name__:
                found.append((attr, obj))
        elif isinstance(obj, Adapter):
            found.append((attr, obj))
    for kind in KINDS:
        obj = getattr(module, kind, None)
        if obj is not None and (inspect.isclass(obj) or callable(obj)):
            found.append((kind, obj))
    return found


def load_target(target, kind=None):
    """A list of (label, Adapter) for TARGET; raises TargetError with a fix when it can't."""
    if not isinstance(target, str):
        return [(getattr(target, "__name__", type(target).__name__), adapt(target, kind))]
    where, name = _split(target)
    if where.endswith((".py", ".ipynb")) or os.sep in where or "/" in where:
        module = _load_file(where)
    else:
        module = _load_module(where)
    if name is not None:
        if not hasattr(module, name):
            have = ", ".join(n for n, _ in discover(module)) or "nothing checkable"
            raise TargetError(f"{where} has no attribute {name!r} (it defines: {have})")
        return [(f"{where}:{name}", adapt(getattr(module, name), kind, name))]
    found = discover(module)
    if not found:
        raise TargetError(
            f"{where} defines none of the book's names ({', '.join(KINDS)}) and no Adapter; "
            "name the object with FILE.py:Name and pass --kind"
        )
    return [(f"{where}:{label}", adapt(obj, kind, label)) for label, obj in found]
