"""attnspec: a conformance specification and test suite for self-attention.

Public surface: `Adapter` (plug an implementation in), `Config` (one
configuration of a module), `strategies` (hypothesis strategies for
configurations and inputs), `check` (run the properties against a target).
"""

__version__ = "1.0.0"
SPEC_VERSION = "1.1"

from .config import Config, KINDS  # noqa: E402
from .adapter import Adapter, BookAdapter, FunctionAdapter  # noqa: E402


def check(target, *, kind=None, **options):
    """Check TARGET in this process (trusted code) and return a `Results`: a list of `Result`.

    TARGET is a string (`file.py[:Name]`, `notebook.ipynb[:Name]`, `package.module:Name`),
    a class or function defined anywhere (a notebook's own cells included: its kind
    follows from its name, or pass `kind=`), or an Adapter.  Options: `profile`
    ("quick", "default", "thorough"), `seed` (default 0), `only` (clause IDs).

    The list holds one Result per object checked (one for a class).  In Jupyter it
    shows as a report: the clause table, and for each failure its diagnosis, the
    shrunk counterexample and a call that reproduces it; `print()` gives the
    terminal report; `.verdict` is the overall verdict.
    """
    from .engine import check_target
    from .results import Results

    results = Results(check_target(target, kind=kind, **options))
    if not isinstance(target, str):  # no command line reaches a live object: reproduce with a call
        name = getattr(target, "__name__", type(target).__name__)
        for r in results:
            hint = f", kind={r.kind!r}" if name != r.kind and not isinstance(target, Adapter) else ""
            for c in r.clauses:
                if c.reproduce:
                    c.reproduce = f"attnspec.check({name}{hint}, profile={r.profile!r}, seed={r.seed}, only=[{c.id!r}])"
    return results


__all__ = ["Adapter", "BookAdapter", "FunctionAdapter", "Config", "KINDS", "check", "__version__", "SPEC_VERSION"]
