"""Implementation-defined deviations an adapter (or a user's command line) declares.

Real attention code differs from the book in ways the spec allows an adapter
to state rather than hide: no dropout on the attention weights at all
(litgpt hard-codes dropout_p=0), an extra dropout on the output (nanoGPT's
`resid_dropout`, minGPT's `resid_drop`), a clause the user chooses to skip.
A declared clause is never run and never silently dropped: it is reported as
"not applicable: declared (...)" in every report, and the declaration is
recorded in the result.

The engine, the preflight stage, the CLI and the candidate share it; it imports
nothing at load time (grading workers load the candidate), the spec on first use.
"""

# what dropout on the attention weights must do; DROP-2 and DROP-4 (eval mode equals p = 0,
# p = 0 training equals eval) hold for any module and stay checked
ATTENTION_DROPOUT_CLAUSES = ("DROP-1", "DROP-3", "DROP-5", "DROP-6", "DROP-7")
PREFIX = "not applicable: declared"


class DeclarationError(ValueError):
    """A declaration names something that does not exist; the message says how to fix it."""


def _clause_id(cid, where):
    from . import clauses as spec

    try:
        return spec.get(str(cid)).id
    except spec.UnknownClause:
        raise DeclarationError(f"{where} names unknown clause {cid!r}; `attnspec spec --list` lists the clause IDs") from None


def declared_skips(info, skip=()):
    """{clause ID: report message} for every clause the adapter (`info`) or `skip` declares away."""
    out = {}
    if info.get("attention_dropout") is False:
        for cid in ATTENTION_DROPOUT_CLAUSES:
            out[cid] = f"{PREFIX} (attention_dropout = False): the implementation has no dropout on the attention weights"
    output_dropout = info.get("output_dropout")
    if output_dropout is True:
        for cid in ATTENTION_DROPOUT_CLAUSES:
            out.setdefault(cid, f"{PREFIX} (output_dropout = True): a dropout on the output, which the adapter cannot "
                                "switch off, confounds the checks of dropout on the attention weights")
    elif output_dropout not in (None, False) and not isinstance(output_dropout, str):
        raise DeclarationError(f"output_dropout is {output_dropout!r}: give the attribute path of the output's nn.Dropout "
                               "(e.g. 'resid_dropout'), True when it cannot be switched off, or None")
    declared = info.get("skip") or {}
    if not isinstance(declared, dict):
        raise DeclarationError("an Adapter's `skip` is a dict {clause ID: why}, e.g. {'SHAPE-6': 'a CPU-only kernel'}")
    for cid, why in declared.items():
        out[_clause_id(cid, "the adapter's `skip`")] = f"{PREFIX} by the adapter: {why}"
    for cid in skip:
        out[_clause_id(cid, "skip")] = f"{PREFIX} by the user (skip {cid})"
    return out


def resolve(module, path):
    """The object at attribute path `path` ('resid_dropout', 'attn.drop') of `module`."""
    obj = module
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def switch_off_output_dropout(module, path):
    """Set the declared output dropout's p to 0 so the dropout checks see attention dropout alone."""
    try:
        drop = resolve(module, path)
    except (AttributeError, IndexError, TypeError, KeyError):
        raise DeclarationError(f"output_dropout = {path!r}, but the module has no attribute {path}") from None
    if not isinstance(getattr(drop, "p", None), float):
        raise DeclarationError(f"output_dropout = {path!r} is a {type(drop).__name__}, not an nn.Dropout (no float `p`)")
    drop.p = 0.0
