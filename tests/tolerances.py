"""Accuracy rules (docs/support.md "What done means"): float64 matches the reference to
~1e-10; lower precisions may be at most 2x as wrong as the same reference computation run in
PyTorch on the same rounded inputs.
"""

from __future__ import annotations

import torch

LOW_PRECISION = [torch.bfloat16, torch.float16, torch.float32]

# headmix and the PyTorch baseline both accumulate in float32, so differences of a few float32
# ulps of the largest value are accumulation-order noise, not error. This floor only matters
# where the baseline error is itself at float32 level: float32 inputs, float32 lse, values
# copied exactly (zero baseline error).
_FLOOR_ULPS = 16


def assert_close_f64(actual, expected, what):
    """float64 results agree to 1e-10 and are non-finite (NaN, +-inf) at the same places."""
    for a, e in zip(_as_tuple(actual), _as_tuple(expected), strict=True):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10, equal_nan=True, msg=lambda m: f"{what}: {m}")


def assert_bitwise_equal(actual, expected, what):
    """Same bits (so NaN padding must stay the same NaN)."""
    as_int = {2: torch.int16, 4: torch.int32, 8: torch.int64}[actual.element_size()]
    assert actual.dtype == expected.dtype and torch.equal(actual.view(as_int), expected.view(as_int)), what


def max_error(actual: torch.Tensor, exact: torch.Tensor) -> float:
    """Largest |actual - exact| over the finite entries of exact, after checking that both are
    non-finite at the same places with the same values (NaN padding, -inf lse)."""
    actual, exact = actual.double(), exact.double()
    assert actual.shape == exact.shape, f"shape {tuple(actual.shape)} != {tuple(exact.shape)}"
    finite = exact.isfinite()
    assert torch.equal(actual.isfinite(), finite), "non-finite entries differ from the float64 reference"
    assert torch.equal(actual[~finite].nan_to_num(), exact[~finite].nan_to_num()), "wrong non-finite values"
    return (actual[finite] - exact[finite]).abs().max().item() if finite.any() else 0.0


def assert_within_2x_pytorch_error(actual, baseline, exact, what):
    """Every output of ``actual`` (headmix at low precision) is at most twice as far from ``exact``
    (float64 reference on the same rounded inputs) as ``baseline`` (the reference computation
    run by PyTorch at the low precision), plus the float32 accumulation floor."""
    for i, (a, b, e) in enumerate(zip(_as_tuple(actual), _as_tuple(baseline), _as_tuple(exact), strict=True)):
        assert a.dtype == b.dtype, f"{what}, output {i}: dtype {a.dtype}, PyTorch gives {b.dtype}"
        finite = e[e.isfinite()]
        scale = finite.abs().max().item() if finite.numel() else 0.0
        floor = _FLOOR_ULPS * torch.finfo(torch.float32).eps * max(1.0, scale)
        error, baseline_error = max_error(a, e), max_error(b, e)
        assert error <= 2 * baseline_error + floor, (
            f"{what}, output {i}: max error {error:.3g} > 2 x PyTorch {a.dtype} error {baseline_error:.3g}"
            f" + floor {floor:.3g}"
        )


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)
