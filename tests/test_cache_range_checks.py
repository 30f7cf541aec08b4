"""HEADMIX_CACHE_RANGE_CHECKS has one rule for both CUDA cache ops: host checks unless it is "0".

The rule is read by the compiled extension (csrc/cache_range_checks.h) on every call, so it is
tested here without a GPU; what each answer does on a GPU is tested in
test_vhead_decode_cuda.py and test_kv_cache_append_cuda.py.
"""

import pytest

from headmix import _C


@pytest.mark.parametrize("value,checks", [(None, True), ("", True), ("1", True), ("0", False)],
                         ids=["unset", "empty", "1", "0"])
def test_host_checks_unless_the_variable_is_zero(monkeypatch, value, checks):
    if value is None:
        monkeypatch.delenv("HEADMIX_CACHE_RANGE_CHECKS", raising=False)
    else:
        monkeypatch.setenv("HEADMIX_CACHE_RANGE_CHECKS", value)
    assert _C.cache_range_checks() is checks
