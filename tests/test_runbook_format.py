"""Runbook files: the shipped ones parse and are complete; mistakes are reported with file, line
and key; templates, paths and conditions behave as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triage.runbooks.format import RunbookError, find_runbook, load_runbook, parse_runbook, runbook_paths
from triage.runbooks.template import MISSING, Condition, lookup, placeholder, render_text, render_value

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"
SHIPPED = ("argo-rollout-abort", "kill-switch-fallback", "kserve-canary-traffic", "mlflow-champion-rollback")


def test_shipped_runbooks_are_complete():
    assert tuple(p.stem for p in runbook_paths(RUNBOOKS)) == SHIPPED
    for path in runbook_paths(RUNBOOKS):
        runbook = load_runbook(path)
        text = path.read_text()
        assert runbook.title and runbook.alerts
        assert "## When to use it" in text and "## Pointing it at a real" in text
        safeties = [step.safety for step in runbook.steps]
        assert safeties[0] == "read_only", "diagnosis first"
        actions = [step for step in runbook.steps if step.safety != "read_only"]
        assert actions, path
        for step in actions:
            assert step.verify is not None and step.undo is not None and step.undo.verify is not None
            assert step.preconditions, "every action reads the state it changes first"


def test_a_step_block_in_full(tmp_path):
    text = """+++
title = "Example"
alerts = ["drift.psi"]
cooldown_s = 60
[params.name]
pattern = "^[a-z]+$"
from = "model"
+++
Prose.

```python
print("not a step")
```

```toml step
id = "act"
safety = "reversible"
target = "svc"
cooldown_s = 5
[params.n]
type = "integer"
min = 0
max = 9
default = "1"
[[preconditions]]
get = "/things/{name}"
expect = [{ path = "state", in = ["a", "b"] }]
capture = { old = "value" }
[request]
method = "PUT"
path = "/things/{name}"
headers = { If-Match = "{old}" }
body = { value = "{n}", note = "by {operator}" }
[verify]
get = "/things/{name}"
expect = [{ path = "value", equals = "{n}" }]
[undo.request]
method = "PUT"
path = "/things/{name}"
body = { value = "{old}" }
```
"""
    runbook = parse_runbook(text, tmp_path / "example.md")
    (step,) = runbook.steps
    assert runbook.name == "example" and runbook.alerts == ("drift.psi",)
    assert step.line == 16 and step.cooldown_s == 5 and set(step.params) == {"name", "n"}
    assert step.params["name"].source == "model"
    assert step.preconditions[0].capture == {"old": "value"}
    assert step.verify is not None and step.verify.interval_s == 1.0
    assert step.undo is not None and step.undo.id == "act.undo" and step.undo.cooldown_s == 5
    assert step.captured_names() == ("old",)


def _step(body: str) -> str:
    return f'+++\ntitle = "t"\n+++\n\n```toml step\nid = "s"\ntarget = "svc"\n{body}\n```\n'


RO = 'safety = "read_only"\n'
GET = '[request]\nmethod = "GET"\npath = "/x"\n'
POST = '[request]\nmethod = "POST"\npath = "/x"\n'
DESTRUCTIVE = 'safety = "destructive"\n' + POST


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no front matter", "front matter"),
        ('+++\ntitle = "t"\n+++\nno steps', "no ```toml step"),
        (_step(RO + GET + "bogus = 1"), "step s.request.bogus: unknown key"),
        (_step(RO + POST), "read_only step must be a GET"),
        (_step('safety = "reversible"\n' + POST), "needs an undo"),
        (_step(RO + GET.replace("/x", "https://evil/x")), "starting with a single /"),
        (_step(RO + GET.replace("/x", "/x/{nope}")), "uses {nope}"),
        (_step(RO + GET + '[params.p]\ntype = "string"'), "needs a validation pattern"),
        (_step(RO + GET + 'headers = { Authorization = "x" }'), "credentials come from the target"),
        (_step(RO + GET + '[capture]\nv = "a..b"'), "bad path"),
        (_step('safety = "maybe"\n' + GET), "expected one of read_only"),
        (_step(DESTRUCTIVE + '[verify]\nget = "/x"\nexpect = []'), "at least one condition"),
        (
            _step(DESTRUCTIVE + '[verify]\nget = "/x"\nexpect = [{ path = "a", equals = 1, in = [1] }]'),
            "exactly one of",
        ),
    ],
)
def test_mistakes_name_the_file_line_and_key(tmp_path, text, message):
    with pytest.raises(RunbookError, match=message) as raised:
        parse_runbook(text, tmp_path / "bad.md")
    assert str(raised.value).startswith(str(tmp_path / "bad.md"))


def test_unknown_runbook_lists_the_ones_there_are():
    with pytest.raises(RunbookError, match="runbooks: argo-rollout-abort"):
        find_runbook(RUNBOOKS, "nope")
    with pytest.raises(RunbookError, match="no runbook named"):
        find_runbook(RUNBOOKS, "../etc/passwd")


def test_templates_keep_types_and_encode_path_values():
    values = {"n": 0, "name": "a/../b c", "rv": "17", "later": placeholder("later")}
    assert render_value({"x": "{n}", "y": "n={n}", "z": ["{rv}"]}, values) == {
        "x": 0,
        "y": "n=0",
        "z": ["17"],
    }
    assert render_text("/things/{name}", values, url=True) == "/things/a%2F..%2Fb%20c"
    assert render_text("/things/{later}", values, url=True) == "/things/{later}"


@given(st.text(min_size=1, max_size=30))
def test_a_rendered_path_value_never_adds_a_path_segment_or_query(text):
    rendered = render_text("/a/{v}", {"v": text}, url=True)
    assert rendered.count("/") == 2 and "?" not in rendered and "#" not in rendered


def test_paths_and_conditions():
    doc = {
        "status": {
            "phase": "Degraded",
            "conditions": [
                {"type": "Available", "reason": "x"},
                {"type": "Progressing", "reason": "RolloutAborted"},
            ],
            "traffic": [{"latestRevision": False, "percent": 90}, {"latestRevision": True, "percent": 10}],
        },
        "model_versions": [{"version": "3"}, {"version": "2"}],
    }
    assert lookup(doc, "status.conditions[type=Progressing].reason") == "RolloutAborted"
    assert lookup(doc, "status.traffic[latestRevision=true].percent") == 10
    assert lookup(doc, "model_versions[version<3].version") == "2"
    assert lookup(doc, "model_versions[1].version") == "2"
    assert lookup(doc, "status.missing") is MISSING and lookup(doc, "model_versions[5]") is MISSING
    assert Condition("status.traffic[latestRevision=true].percent", "equals", "10").holds(doc)[0]
    assert Condition("model_versions[0].version", "equals", 3).holds(doc)[0]  # "3" == 3 for versions
    assert Condition("status.phase", "in", ["Degraded", "Healthy"]).holds(doc)[0]
    assert Condition("status.nope", "exists", False).holds(doc)[0]
    assert not Condition("status.phase", "equals", "Paused").holds(doc)[0]
    assert Condition("status.traffic[0].percent", "gte", 90).holds(doc)[0]
    assert Condition("status.x", "equals", "{v}").render({"v": 5}) == Condition("status.x", "equals", 5)
