"""attnspec: a conformance specification and test suite for self-attention.

Public surface: `Adapter` (plug an implementation in), `Config` (one
configuration of a module), `strategies` (hypothesis strategies for
configurations and inputs), `check` (run the properties against a target).
"""

__version__ = "1.0.0"
SPEC_VERSION = "1.1"

from .config import Config, KINDS  # noqa: E402
from .adapter import Adapter, BookAdapter, FunctionAdapter  # noqa: E402


def check(target, **options):
    """Check TARGET (a string, an Adapter or a class) and return a `Result`."""
    from .engine import check_target

    return check_target(target, **options)


__all__ = ["Adapter", "BookAdapter", "FunctionAdapter", "Config", "KINDS", "check", "__version__", "SPEC_VERSION"]
