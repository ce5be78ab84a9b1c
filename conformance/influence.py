"""Which input tokens change which outputs: the influence map of a causal or masking failure.

For a failed causal clause the engine rebuilds the counterexample's module,
loads the weights its property used, and replaces one token at a time:

    I[i, j] = max over batch and features |f(x with token j replaced)_i - f(x)_i|

normalised to the largest entry.  Only numbers the candidate returns are
used; every comparison is made here.  A cell counts as changed when some
element moves by more than NUM-4 allows a correct implementation on the two
inputs (`change_bound`, the one place this module asks the error model).
The float64 oracle goes through the same replacements, so a cell that should
change and does not is told apart from one whose attention weight is
negligible anyway; its attention weights for the same case sit beside the map.

    #  changed, and j <= i may change it     X  changed though j > i: a leak from the future
    !  unchanged, though a correct module's output changes there
    .  unchanged (as in the oracle)          ?  the output is not finite

The map is a dict of plain values (nested lists), stored on the ClauseResult
(`influence`) and so in the JSON; `to_text` renders it for terminals and
Markdown, `to_png_bytes` as a two-panel PNG when matplotlib is installed
(the `plot` extra).  Nothing here may change a verdict: `attach` gives up
silently, leaving the map absent, when anything goes wrong.
"""

import json
import os
import tempfile
import textwrap

import numpy as np

from . import tolerance, weights
from .candidate import CandidateError
from .config import CAUSAL_KINDS, Config
from .strategies import Case

CLAUSES = ("CAUSAL-1", "CAUSAL-2", "CAUSAL-3", "CAUSAL-5", "CAUSAL-7", "CAUSAL-8", "IFACE-6", "SOFTMAX-2")
MAX_TOKENS = 10  # one forward per token: the cost stays bounded
SCHEMA = "attnspec-influence/1"
LEGEND = (
    ("#", "changed (j <= i may change it)"),
    ("X", "changed though j > i: a leak from the future"),
    ("!", "unchanged, though a correct module's output changes"),
    (".", "unchanged"),
    ("?", "output not finite"),
)
WEIGHTS = {
    "canonical": "the canonical weights",
    "uniform": "uniform attention (W_query = W_key = 0), as CAUSAL-2's probe",
    "reinitialised": "parameters re-initialised, then the canonical weights loaded, as IFACE-6's probe",
}


class MapUnavailable(Exception):
    """The map cannot be drawn for this counterexample (not a failure of the implementation)."""


# -- the error model: the one call to swap when tolerance.py changes ------------------
def change_bound(cfg, w, x, x2, y, y2, dtype):
    """NUM-4's element-wise allowance for |f(x2) - f(x)| when both are equal in exact arithmetic: E(x) + E(x2)."""
    return tolerance.rounding_bound(cfg, w, x, dtype) + tolerance.rounding_bound(cfg, w, x2, dtype), "rounding_bound"


# -- measuring ---------------------------------------------------------------------------
def recipe_for(clause_id):
    """Which weights the map uses: those of the property that judges the clause."""
    return {"CAUSAL-2": "uniform", "IFACE-6": "reinitialised"}.get(clause_id, "canonical")


def case_from(described):
    """The `Case` a counterexample describes (Case.describe()); MapUnavailable when it cannot be mapped."""
    if not isinstance(described, dict):
        raise MapUnavailable("the counterexample has no case")
    try:
        cfg = Config(**described["config"])
        case = Case(cfg=cfg, batch=int(described["batch"]), num_tokens=int(described["num_tokens"]),
                    seed=int(described["seed"]), scale=float(described["scale"]), dtype=str(described["dtype"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise MapUnavailable(f"the counterexample's case is incomplete: {exc}") from None
    if cfg.kind not in CAUSAL_KINDS:
        raise MapUnavailable(f"{cfg.kind} is not causal")
    if not 1 <= case.num_tokens <= MAX_TOKENS or case.batch < 1:
        raise MapUnavailable(f"num_tokens={case.num_tokens} is outside 1..{MAX_TOKENS}")
    return case


def _weights(case, recipe):
    if recipe == "uniform":
        return weights.zero_query_weights(case.cfg, case.rng(13), case.dtype)
    return weights.canonical_weights(case.cfg, case.rng(1000), case.dtype)


def _replace(case, x, j):
    """x with token j replaced by values at least about 1 away (rounded to the case's dtype)."""
    x2 = x.copy()
    x2[..., j, :] = x[..., j, :] + 1.0 + case.rng(40 + j).standard_normal(x[..., j, :].shape)
    return weights.round_to(x2, case.dtype)


def oracle_weights(cfg, w, x):
    """The oracle's attention weights for x, averaged over batch and heads: (T, T)."""
    from attnspec.reference import oracle

    a = oracle.attention_weights(x, w["W_query"], w["W_key"], w.get("b_query"), w.get("b_key"),
                                 num_heads=cfg.heads, causal=cfg.causal)
    return a.mean(axis=(0, 1))


def _per_position(mask):
    """(..., T, F) booleans -> (T,): any over every axis but the token axis."""
    return np.moveaxis(mask, -2, 0).reshape(mask.shape[-2], -1).any(axis=1)


def _finite_max(a):
    """(..., T, F) -> (T,) max over every axis but the token axis, NaN where anything is not finite."""
    rows = np.moveaxis(a, -2, 0).reshape(a.shape[-2], -1)
    out = rows.max(axis=1, initial=0.0)
    return np.where(np.all(np.isfinite(rows), axis=1), out, np.nan)


def measure(candidate, case, recipe="canonical", info=None):
    """The influence map of `case` (a dict of plain values); raises CandidateError or MapUnavailable."""
    cfg, dtype = case.cfg, case.dtype
    dt = (info or {}).get("internal_precision") or dtype
    T = case.num_tokens
    w = _weights(case, recipe)
    x = weights.inputs(case.input_shape, case.rng(0), dtype, case.scale)  # ctx.inputs(case)
    want = tuple(case.input_shape[:-1]) + (cfg.out_features,)
    handle = candidate.build(cfg, dtype=dtype)
    try:
        if recipe == "reinitialised":
            candidate.reinit(handle, seed=case.seed)
        candidate.load(handle, w)

        def run(inp):
            y = np.asarray(candidate.forward(handle, inp).y, dtype=np.float64)
            if y.shape != want:
                raise MapUnavailable(f"the output has shape {y.shape}, not {want}")
            return y

        y = run(x)
        golden = weights.oracle_output(cfg, w, x)
        change = np.full((T, T), np.nan)
        changed = np.zeros((T, T), bool)
        expected = np.zeros((T, T), bool)
        finite = np.ones((T, T), bool)
        bound_name = ""
        for j in range(T):
            x2 = _replace(case, x, j)
            y2 = run(x2)
            bound, bound_name = change_bound(cfg, w, x, x2, y, y2, dt)
            with np.errstate(invalid="ignore"):
                diff = np.abs(y2 - y)
                change[:, j] = _finite_max(diff)
                finite[:, j] = np.isfinite(change[:, j])
                changed[:, j] = _per_position(diff > bound) & finite[:, j]
            # a correct module's change differs from the oracle's by at most `bound`
            expected[:, j] = _per_position(np.abs(weights.oracle_output(cfg, w, x2) - golden) > 2 * bound)
    finally:
        try:
            candidate.release(handle)
        except CandidateError:
            pass
    largest = float(np.nanmax(change, initial=0.0)) if np.any(finite) else 0.0
    norm = change / largest if largest > 0 else np.where(finite, 0.0, np.nan)
    allowed = np.tril(np.ones((T, T), bool))
    leaks = [[int(i), int(j)] for i, j in zip(*np.nonzero(changed & ~allowed))]
    ignored = [[int(i), int(j)] for i, j in zip(*np.nonzero(~changed & expected & finite))]
    return {
        "schema": SCHEMA,
        "case": case.describe(),
        "weights": recipe,
        "bound": bound_name,
        "max_change": largest,
        "influence": [[float(f"{v:.3g}") if np.isfinite(v) else None for v in row] for row in norm],
        "changed": changed.tolist(),
        "expected": expected.tolist(),
        "allowed": allowed.tolist(),
        "oracle_weights": [[round(float(v), 4) for v in row] for row in oracle_weights(cfg, w, x)],
        "leaks": leaks,
        "ignored": ignored,
    }


def attach(clause_results, candidate, info=None):
    """Set `influence` on each failed causal ClauseResult; never raises, never touches a verdict.

    One map per distinct counterexample and weights; after the first map that
    cannot be measured (the candidate raised or died), no more are tried.
    """
    cache = {}
    for cr in clause_results:
        if cr.status != "failed" or cr.id not in CLAUSES:
            continue
        try:
            case = case_from((cr.counterexample or {}).get("case"))
        except MapUnavailable:
            continue
        recipe = recipe_for(cr.id)
        key = (json.dumps(case.describe(), sort_keys=True), recipe)
        if key not in cache:
            try:
                cache[key] = measure(candidate, case, recipe, info)
            except Exception:  # the map is a picture, not evidence: absent when it cannot be drawn
                return
        cr.influence = {"clause": cr.id, **cache[key]}


# -- rendering: text -------------------------------------------------------------------
def map_key(m):
    """Maps with equal keys are the same picture (several clauses often share a counterexample)."""
    return json.dumps([m.get("case"), m.get("weights")], sort_keys=True, default=str)


def cells(m):
    """The map's characters, one string per output position (see LEGEND)."""
    rows = []
    for i, row in enumerate(m["influence"]):
        line = ""
        for j, value in enumerate(row):
            if value is None:
                line += "?"
            elif m["changed"][i][j]:
                line += "#" if m["allowed"][i][j] else "X"
            elif m["expected"][i][j]:
                line += "!"
            else:
                line += "."
        rows.append(line)
    return rows


def _pairs(pairs):
    by_row = {}
    for i, j in pairs:
        by_row.setdefault(i, []).append(j)
    return "; ".join(f"output {i} <- token{'s' if len(js) > 1 else ''} {', '.join(map(str, js))}" for i, js in sorted(by_row.items()))


def to_text(m):
    """The map beside the oracle's attention weights, with a legend: plain text, no colour."""
    T = len(m["influence"])
    width = len(str(T - 1))
    left = [f"{'':>{width + 7}}input token j", f"{'':>{width + 7}}" + " ".join(f"{j:>{width}}" for j in range(T))]
    for i, line in enumerate(cells(m)):
        left.append(f"output {i:>{width}} " + " ".join(f"{ch:>{width}}" for ch in line))
    right = ["oracle attention weights", f"{'':>{width + 1}}" + "".join(f"{j:>5}" for j in range(T))]
    for i, row in enumerate(m["oracle_weights"]):
        right.append(f"{i:>{width}} " + "".join(f"{v:>5.2f}" if j <= i else f"{'.':>5}" for j, v in enumerate(row)))
    pad = max(len(s) for s in left) + 4
    lines = ["which input tokens change which outputs (rows: output i; columns: input token j, replaced)"]
    lines += [f"{a:<{pad}}{b}".rstrip() for a, b in zip(left, right)]
    legend = [f"{ch} {what}" for ch, what in LEGEND]
    lines += ["   ".join(legend[:2]), "   ".join(legend[2:])]
    lines.append(f"weights: {WEIGHTS.get(m['weights'], m['weights'])}; changed: by more than NUM-4's rounding bound")
    wrap = lambda text: textwrap.wrap(text, 92, subsequent_indent="  ")  # noqa: E731
    if m.get("leaks"):
        lines += wrap(f"leaks (a future token changes the past): {_pairs(m['leaks'])}")
    if m.get("ignored"):
        lines += wrap(f"ignored (a visible token changes nothing): {_pairs(m['ignored'])}")
    return "\n".join(lines)


# -- rendering: PNG --------------------------------------------------------------------
def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _triangle(T):
    """The outline of the allowed region j <= i, in image coordinates (x = j, y = i, y down)."""
    pts = [(-0.5, -0.5)]
    for i in range(T):
        pts += [(i + 0.5, i - 0.5), (i + 0.5, i + 0.5)]
    return pts + [(-0.5, T - 0.5)]


def to_png_bytes(m):
    """The map as a PNG (two panels: influence, oracle weights), or None without matplotlib.

    Left: changed cells coloured by log10 of the normalised change (white:
    unchanged, grey: not finite), leaks hatched red, ignored visible tokens
    dashed orange.  Right: the oracle's weights.  Both outline j <= i.
    """
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.colors import ListedColormap
        from matplotlib.figure import Figure
        from matplotlib.patches import Polygon, Rectangle
    except ImportError:
        return None
    import io

    T = len(m["influence"])
    chars = cells(m)
    grid = np.array([[np.nan if v is None else v for v in row] for row in m["influence"]], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        shade = np.where(np.array(m["changed"], bool), np.log10(np.maximum(grid, 1e-4)), np.nan)
    lower = np.tril(np.ones((T, T), bool))
    wts = np.where(lower, np.array(m["oracle_weights"], dtype=float), np.nan)
    blues = ListedColormap(matplotlib.colormaps["Blues"](np.linspace(0.25, 1.0, 256))).with_extremes(bad="white")
    greens = matplotlib.colormaps["Greens"].with_extremes(bad="#eeeeee")
    fig = Figure(figsize=(10, 4.6), dpi=100)
    FigureCanvasAgg(fig)  # Agg, without pyplot: no global backend state is touched
    left, right = fig.subplots(1, 2)
    panels = ((left, shade, blues, (-4.0, 0.0), "which input tokens change which outputs",
               "log10 max |Δ output| (normalised); white: unchanged"),
              (right, wts, greens, (0.0, 1.0), "oracle attention weights\n(mean over batch and heads)", "weight"))
    for ax, data, cmap, (lo, hi), title, label in panels:
        image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).set_label(label, fontsize=8)
        for colour, width in (("white", 4.0), ("black", 2.0)):
            ax.add_patch(Polygon(_triangle(T), closed=True, fill=False, edgecolor=colour, linewidth=width))
        ax.set_xticks(range(T))
        ax.set_yticks(range(T))
        ax.set_title(title, fontsize=10)
    left.set_xlabel("input token j (replaced)")
    left.set_ylabel("output position i")
    right.set_xlabel("key j")
    right.set_ylabel("query i")
    for i in range(T):
        for j in range(T):
            ch = chars[i][j]
            if ch == "X":
                left.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", hatch="//", linewidth=2.5))
                left.text(j, i, "X", ha="center", va="center", color="red", fontsize=12, fontweight="bold")
            elif ch == "!":
                left.add_patch(Rectangle((j - 0.42, i - 0.42), 0.84, 0.84, fill=False, edgecolor="darkorange", linestyle="--", linewidth=2.0))
                left.text(j, i, "!", ha="center", va="center", color="darkorange", fontsize=12, fontweight="bold")
            elif ch == "?":
                left.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="#bbbbbb", edgecolor="none"))
                left.text(j, i, "?", ha="center", va="center", color="black", fontsize=10)
            if lower[i, j]:
                right.text(j, i, f"{wts[i, j]:.2f}", ha="center", va="center", fontsize=7,
                           color="white" if wts[i, j] > 0.6 else "black")
    case = m.get("case", {})
    notes = []
    if m.get("leaks"):
        notes.append(f"red X: {len(m['leaks'])} cell(s) where a future token changes the past")
    if m.get("ignored"):
        notes.append(f"orange !: {len(m['ignored'])} cell(s) where a visible token changes nothing")
    if any("?" in row for row in chars):
        notes.append("grey ?: output not finite")
    fig.suptitle(f"{m.get('clause', '')}  {case.get('call', '')}, {case.get('num_tokens', T)} tokens, seed {case.get('seed', '')}"
                 f"  —  outlined: j <= i may influence i" + (f"\n{'; '.join(notes)}" if notes else ""), fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_png(m, path, quiet=False):
    """Write the map's PNG to `path` atomically; False (nothing written) without matplotlib.

    quiet: False also when drawing fails (a picture must never stop a report)."""
    try:
        data = to_png_bytes(m)
    except Exception:
        if not quiet:
            raise
        return False
    if data is None:
        return False
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return True


def png_name(stem, clause_id, kind=None):
    return f"{stem}.{kind}.{clause_id}.png" if kind else f"{stem}.{clause_id}.png"


def write_pngs(results, json_path):
    """`attnspec check --json DIR/NAME.json`: DIR/NAME.<clause>.png per map (NAME.<kind>.<clause>.png
    when several classes were checked); the paths written (none without matplotlib)."""
    maps = [(r, c) for r in results for c in r.clauses if getattr(c, "influence", None)]
    if not maps or not have_matplotlib():
        return []
    stem = os.path.splitext(os.path.abspath(json_path))[0]
    several = len(results) > 1
    written, seen = [], set()
    for r, c in maps:
        path = png_name(stem, c.id, r.kind if several else None)
        n = 2
        while path in seen:
            path = png_name(stem, c.id, f"{r.kind}-{n}")
            n += 1
        seen.add(path)
        if write_png(c.influence, path, quiet=True):
            written.append(path)
    return written
