"""Bad inputs get a RuntimeError that names the argument, what was expected and what was given,
through the public wrappers too, on every device; a rejected kv_cache_append leaves the cache
bitwise untouched. The bad inputs and messages are tests/check_rules.py's, which
test_check_parity.py also holds the fakes to."""

import re

import pytest
import torch
from tolerances import assert_bitwise_equal

import headmix
from check_rules import RULES, op_name

ops = torch.ops.headmix


def flash_attn_kwargs(args):
    args = dict(args)
    return args | dict(window=(args.pop("window_left"), args.pop("window_right")))


def kv_cache_append_kwargs(args):
    args = dict(args)
    del args["pos"]
    return args


# Per op: its public wrapper, the wrapper's keyword arguments for the op's schema arguments, and
# the schema arguments the wrapper does not take (rules that set one are the op's alone).
WRAPPERS = {
    "mix_heads": (headmix.mix_heads, dict, ()),
    "flash_attn_fwd": (headmix.flash_attn, flash_attn_kwargs, ()),
    "vhead_decode": (headmix.vhead_decode, dict, ()),
    "kv_cache_append": (headmix.kv_cache_append, kv_cache_append_kwargs, ("pos",)),
}


def through_wrapper(rule):
    wrapper = WRAPPERS.get(op_name(rule.op))
    return wrapper is not None and not set(wrapper[2]) & set(rule.changes("cpu"))


def rule_cases(rules):
    """(rule, device): every rule on each device, a second-device rule on CUDA only."""
    cases = []
    for rule in rules:
        devices = ["cuda"] if rule.needs_cuda else ["cpu", "cuda"]
        cases += [pytest.param(rule, device, id=f"{device}-{rule.id}",
                               marks=[pytest.mark.cuda] if device == "cuda" else []) for device in devices]
    return pytest.mark.parametrize(("rule", "device"), cases)


def raises(message):
    return pytest.raises(RuntimeError, match=f"^{re.escape(message)}$")


@rule_cases([r for r in RULES if through_wrapper(r)])
def test_wrappers_reject(rule, device):
    wrapper, kwargs_of, _ = WRAPPERS[op_name(rule.op)]
    with raises(rule.message):
        wrapper(**kwargs_of(rule.args(device)))


@rule_cases([r for r in RULES if op_name(r.op) == "kv_cache_append"])
def test_rejected_kv_cache_append_writes_nothing(rule, device):
    args = rule.args(device)
    before = {name: args[name].clone() for name in ("k_cache", "v_cache")}
    with raises(rule.message):
        ops.kv_cache_append(**args)
    for name, cache in before.items():
        assert_bitwise_equal(args[name], cache, f"{name} changed by a rejected append")
