"""docs/adapters.md quotes the example adapters: every quoted block must still be in its file.

Each worked example ("### (a) ..." under "## Worked examples") names its file,
examples/NAME.py, before its code; every ```python block of that section must
appear in that file verbatim, so the page cannot drift from the code that the
gallery tests check.
"""

import os
import re

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
DOC = os.path.join(ROOT, "docs", "adapters.md")


def _sections():
    text = open(DOC, encoding="utf-8").read()
    worked = text.split("\n## Worked examples\n", 1)[1]
    out = []
    for section in re.split(r"\n(?=### )", worked):
        if not section.startswith("### "):
            continue
        title = section.splitlines()[0]
        named = re.search(r"`(examples/[\w.]+\.py)`", section)
        blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
        out.append((title, named.group(1) if named else None, blocks))
    return out


SECTIONS = _sections()


def test_every_layout_has_a_worked_example():
    files = {f for _, f, _ in SECTIONS}
    for name in ("fused_qkv", "hf_gpt2_attention", "torch_multihead_attention", "sdpa_function", "nanogpt_style", "no_attention_dropout"):
        assert f"examples/{name}.py" in files


@pytest.mark.parametrize("title,path,blocks", SECTIONS, ids=[t for t, _, _ in SECTIONS])
def test_quoted_code_is_in_the_named_file(title, path, blocks):
    assert path, f"{title}: the section names no examples/*.py file"
    source = open(os.path.join(ROOT, path), encoding="utf-8").read()
    assert blocks, f"{title}: no code quoted"
    assert "def read(" in source, f"{path}: the adapter has no read()"
    for block in blocks:
        assert block in source, f"{title}: a quoted block is no longer in {path}:\n{block}"
