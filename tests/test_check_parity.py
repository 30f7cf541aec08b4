"""The native ops (csrc/checks.cpp) and their fakes (python/headmix/_checks.py) reject every bad
input of tests/check_rules.py with the same error, and accept the valid calls."""

import re
import sys

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from check_rules import RULES, VALID, op_name
from headmix import _checks


def call(name: str, args: dict):
    return getattr(torch.ops.headmix, op_name(name))(**args)


def call_fake(name: str, build):
    """Calls the fake kernel on the tensors ``build()`` makes under FakeTensorMode (where
    CUDA tensors exist without a GPU)."""
    with FakeTensorMode():
        return call(name, build())


def error_of(fn, *args):
    """(type, message) of what fn raises, or None."""
    try:
        fn(*args)
    except Exception as error:  # noqa: BLE001 - the type is part of what is compared
        return type(error), str(error)
    return None


def device_of(rule):
    return "cuda" if rule.needs_cuda else "cpu"


def native(rule):
    return error_of(call, rule.op, rule.args(device_of(rule)))


def fake(rule):
    return error_of(call_fake, rule.op, lambda: rule.args(device_of(rule)))


def ids(rules):
    return dict(argvalues=rules, ids=[r.id for r in rules])


CHECKED = [r for r in RULES if not r.reads_data]
DATA = [r for r in RULES if r.reads_data]


@pytest.mark.parametrize("name", list(VALID))
def test_valid_calls_pass_both_sides(name):
    assert error_of(call, name, VALID[name]("cpu")) is None
    assert error_of(call_fake, name, lambda: VALID[name]("cpu")) is None


@pytest.mark.parametrize("rule", **ids(CHECKED))
def test_fake_raises_the_rule_error(rule):
    assert fake(rule) == (RuntimeError, rule.message)


@pytest.mark.parametrize("rule", [pytest.param(r, id=r.id, marks=[pytest.mark.cuda] if r.needs_cuda else [])
                                  for r in RULES])
def test_native_op_raises_the_rule_error(rule):
    assert native(rule) == (RuntimeError, rule.message)


@pytest.mark.parametrize("rule", **ids(DATA))
def test_fake_accepts_what_only_data_makes_wrong(rule):
    """A fake tensor has no data, so these rules are the native op's alone."""
    assert fake(rule) is None


def test_every_registered_op_has_rules():
    registered = {name.split("::")[1] for name in torch._C._dispatch_get_all_op_names() if name.startswith("headmix::")}
    assert registered == {op_name(r.op) for r in RULES}


def require_lines() -> set[int]:
    """Line numbers of the require(...) calls in _checks.py, each one rule of the fakes."""
    with open(_checks.__file__) as source:
        return {i + 1 for i, line in enumerate(source) if re.match(r"\s+require\(", line)}


def test_every_fake_rule_has_a_row(monkeypatch):
    """Each require() of _checks.py fails for at least one row, so a rule added to the fakes
    without a row in check_rules.py fails this test."""
    fired = set()
    original = _checks.require

    def recording(condition, message):
        if not condition:
            fired.add(sys._getframe(1).f_lineno)
        original(condition, message)

    monkeypatch.setattr(_checks, "require", recording)
    for rule in CHECKED:
        fake(rule)
    assert require_lines() - fired == set()
