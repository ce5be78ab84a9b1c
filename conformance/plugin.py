"""pytest plugin: run attnspec's properties against an implementation inside pytest.

Inert unless given a target (`--attn-target` or the ini option `attn_target`,
for graders that cannot pass flags).  Each property becomes one test item
whose ID carries the clause IDs it judges; the IDs also go into the JUnit
properties.  A missing or broken target is a usage error, never a skip.
The seed is in the report header and accepted back with --attn-seed.

In-process: for trusted code.  Untrusted submissions go through `attnspec grade`.
"""

import pytest

def pytest_addoption(parser):
    group = parser.getgroup("attnspec", "attention conformance (attnspec)")
    group.addoption("--attn-target", action="append", default=[], metavar="TARGET",
                    help="implementation to check: path/file.py:Name, package.module:Name or path/file.py (repeatable)")
    group.addoption("--attn-kind", default=None, help="book class the target implements, when its name does not say")
    group.addoption("--attn-profile", default=None, help="quick, default or thorough")
    group.addoption("--attn-seed", default=None, type=int, help="seed to replay (default 0 in CI, else random)")
    group.addoption("--attn-skip", action="append", default=[], metavar="CLAUSE",
                    help="a clause the implementation deviates from by design: its tests skip as 'not applicable: declared' (repeatable)")
    parser.addini("attn_target", "implementations to check (one per line)", type="linelist", default=[])
    parser.addini("attn_profile", "attnspec profile: quick, default or thorough", default="default")


def _targets(config):
    return list(config.getoption("--attn-target") or []) or list(config.getini("attn_target") or [])


def pytest_configure(config):
    config.addinivalue_line("markers", "attnspec_clause(*ids): the spec clauses a test judges")
    targets = _targets(config)
    if not targets:
        return
    from . import preflight
    from .cli import in_ci
    from .declarations import DeclarationError, declared_skips
    from .engine import PROFILES, default_seed
    from .targets import TargetError, load_target

    profile = config.getoption("--attn-profile") or config.getini("attn_profile")
    if profile not in PROFILES:
        raise pytest.UsageError(f"--attn-profile {profile!r}: choose one of {', '.join(PROFILES)}")
    loaded = []
    for target in targets:
        try:
            loaded += load_target(target, config.getoption("--attn-kind"))
        except TargetError as exc:
            raise pytest.UsageError(f"attnspec cannot load {target}: {exc}") from None
    skip = [c.strip() for value in config.getoption("--attn-skip") for c in value.split(",") if c.strip()]
    declared = {}
    for label, adapter in loaded:  # the glue first: a wrong adapter is a usage error, not a failed property
        try:
            preflight.run(adapter)
            declared[label] = declared_skips(adapter.describe(), skip)
        except (preflight.PreflightError, DeclarationError) as exc:
            raise pytest.UsageError(f"attnspec cannot check {label}: {exc}") from None
    seed = config.getoption("--attn-seed")
    if seed is None:
        seed = getattr(config, "workerinput", {}).get("attnspec_seed", default_seed(in_ci()))
    config._attnspec = {"loaded": loaded, "profile": profile, "seed": seed, "declared": declared}


def pytest_configure_node(node):  # pytest-xdist: every worker uses the controller's seed
    state = getattr(node.config, "_attnspec", None)
    if state:
        node.workerinput["attnspec_seed"] = state["seed"]


def pytest_report_header(config):
    state = getattr(config, "_attnspec", None)
    if not state:
        return None
    from . import SPEC_VERSION, __version__

    names = ", ".join(label for label, _ in state["loaded"])
    return f"attnspec {__version__} (spec {SPEC_VERSION}): {names}; profile {state['profile']}; --attn-seed={state['seed']}"


class PropertyItem(pytest.Item):
    def __init__(self, *, prop, candidate, label, state, **kw):
        super().__init__(**kw)
        self.prop, self.candidate, self.label, self.state = prop, candidate, label, state
        self.user_properties.append(("attnspec_clauses", " ".join(prop.clauses)))
        self.add_marker(pytest.mark.attnspec_clause(*prop.clauses))
        self.outcome = None

    def runtest(self):
        from .engine import run_property

        gates = self.session.stash.setdefault(_GATES_KEY, {})
        declared = self.state.get("declared", {}).get(self.label, {})
        if set(self.prop.clauses) <= set(declared):
            pytest.skip(declared[self.prop.clauses[0]])
        blocked = [g for g in self.prop.needs if (self.label, g) in gates]
        if blocked:
            pytest.skip(f"not checked: {gates[(self.label, blocked[0])]} failed")
        o = run_property(self.prop, self.candidate, self.candidate.info, self.prop.kinds[0], self.state["profile"], self.state["seed"])
        self.outcome = o
        if o.status == "skipped":
            pytest.skip(o.message)
        if o.status in ("failed", "error"):
            if self.prop.gate:
                gates[(self.label, self.prop.gate)] = ", ".join(o.clauses)
            self.user_properties.append(("attnspec_failed", " ".join(o.clauses)))
            raise PropertyFailure(o)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, PropertyFailure):
            from . import clauses as spec
            from .engine import _reproduce

            o = excinfo.value.outcome
            lines = []
            for cid in o.clauses:
                c = spec.get(cid)
                lines.append(f"{c.id}@{c.revision} [{c.level}] {c.title}\n    {c.text}")
            lines.append(f"problem: {o.message}")
            if o.counterexample:
                lines.append(f"smallest counterexample: {o.counterexample}")
            lines.append("reproduce: " + _reproduce(self.label, self.state["profile"], self.state["seed"], o.clauses[0]))
            return "\n".join(lines)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.label, None, f"{self.label}::{self.name}"


class PropertyFailure(Exception):
    def __init__(self, outcome):
        super().__init__(outcome.message)
        self.outcome = outcome


class TargetCollector(pytest.Collector):
    def __init__(self, *, adapter, label, state, **kw):
        super().__init__(**kw)
        self.adapter, self.label, self.state = adapter, label, state

    def collect(self):
        from .candidate import LocalCandidate
        from .properties import properties_for

        candidate = LocalCandidate(self.adapter)
        for p in properties_for(self.adapter.kind):
            yield PropertyItem.from_parent(self, name=f"{p.name}[{','.join(p.clauses)}]", prop=p, candidate=candidate, label=self.label, state=self.state)


_GATES_KEY = pytest.StashKey()


def pytest_collection_modifyitems(session, config, items):
    state = getattr(config, "_attnspec", None)
    if not state:
        return
    for label, adapter in state["loaded"]:
        collector = TargetCollector.from_parent(session, name=f"attnspec::{label}", adapter=adapter, label=label, state=state)
        items.extend(collector.collect())
