"""headmix.mix_heads (head-mixing GEMM with fused RoPE) and its backward op."""

import pytest
import torch
from samples import input_grads, mix_heads_many_blocks_sample, mix_heads_samples, to_float64, with_grad
from tolerances import LOW_PRECISION, assert_close_f64, assert_within_2x_pytorch_error

import headmix
from headmix import reference
from headmix.rope import apply_rope

ops = torch.ops.headmix


def run(sample):
    return headmix.mix_heads(**sample.kwargs)


def run_reference(sample):
    return reference.mix_heads(**sample.kwargs)


def test_matches_reference_float64(device):
    for sample in mix_heads_samples(device, torch.float64):
        assert_close_f64(run(sample), run_reference(sample), sample.name)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_low_precision_within_2x_pytorch_error(device, dtype):
    for sample in mix_heads_samples(device, dtype):
        exact = run_reference(to_float64(sample))
        assert_within_2x_pytorch_error(run(sample), run_reference(sample), exact, sample.name)


def test_float32_weights_with_bfloat16_activations(device):
    """w may stay float32 (master weights) while x is bf16; dw comes back in w's dtype."""
    for sample in mix_heads_samples(device, torch.bfloat16):
        sample.kwargs["w"] = sample.kwargs["w"].float()
        grad = torch.randn_like(run(sample))
        actual = (run(sample),) + input_grads(run, sample, ("x", "w"), grad)
        baseline = (run_reference(sample),) + input_grads(run_reference, sample, ("x", "w"), grad)
        exact_sample = to_float64(sample)
        exact = (run_reference(exact_sample),) + input_grads(run_reference, exact_sample, ("x", "w"), grad.double())
        assert [t.dtype for t in actual] == [torch.bfloat16, torch.bfloat16, torch.float32]
        assert_within_2x_pytorch_error(actual, baseline, exact, sample.name)


def test_rope_commutes_with_mixing(device):
    """With P = 1 every head of a token shares one position, so rotating x first is the same."""
    for sample in mix_heads_samples(device, torch.float64):
        s = sample.kwargs
        if s["cos"] is None or s["pseudo"] != 1:
            continue
        positions = s["pos_offset"] + torch.arange(s["x"].shape[1], device=device)[:, None]
        rotated_first = headmix.mix_heads(apply_rope(s["x"], s["cos"], s["sin"], positions), s["w"])
        assert_close_f64(run(sample), rotated_first, sample.name)


def test_gradcheck_float64(device, one_thread):
    for sample in mix_heads_samples(device, torch.float64):
        sample = with_grad(sample, ("x", "w"))
        s = sample.kwargs
        assert torch.autograd.gradcheck(
            lambda x, w: headmix.mix_heads(x, w, pseudo=s["pseudo"], cos=s["cos"], sin=s["sin"],
                                           pos_offset=s["pos_offset"]),
            (s["x"], s["w"]),
        ), sample.name


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_gradients_within_2x_pytorch_error(device, dtype):
    for sample in mix_heads_samples(device, dtype):
        grad = torch.randn_like(run(sample))
        actual = input_grads(run, sample, ("x", "w"), grad)
        baseline = input_grads(run_reference, sample, ("x", "w"), grad)
        exact = input_grads(run_reference, to_float64(sample), ("x", "w"), grad.double())
        assert_within_2x_pytorch_error(actual, baseline, exact, sample.name)


@pytest.mark.parametrize("dtype", [torch.float64, *LOW_PRECISION])
@pytest.mark.parametrize("broadcast_grad", [False, True], ids=["grad", "stride-0 grad"])
def test_output_and_gradients_across_token_blocks(device, dtype, broadcast_grad):
    sample = mix_heads_many_blocks_sample(device, dtype)
    exact_sample = to_float64(sample)
    grad = torch.randn_like(run(sample))
    if broadcast_grad:  # the gradient of a sum over tokens: stride 0 along N
        grad = grad[:, :1].expand_as(grad)
    actual = (run(sample), *input_grads(run, sample, ("x", "w"), grad))
    exact = (run_reference(exact_sample), *input_grads(run_reference, exact_sample, ("x", "w"), grad.double()))
    if dtype == torch.float64:
        assert_close_f64(actual, exact, sample.name)
    else:
        baseline = (run_reference(sample), *input_grads(run_reference, sample, ("x", "w"), grad))
        assert_within_2x_pytorch_error(actual, baseline, exact, sample.name)


@pytest.mark.parametrize(("need_dx", "need_dw"), [(True, False), (False, True)])
def test_backward_computes_only_requested_gradients(device, need_dx, need_dw):
    for sample in mix_heads_samples(device, torch.float64):
        grad = torch.randn_like(run(sample))
        dx, dw = ops.mix_heads_backward(grad, *sample.args, need_dx, need_dw)
        exact_dx, exact_dw = input_grads(run_reference, sample, ("x", "w"), grad)
        assert (dx is None, dw is None) == (not need_dx, not need_dw)
        if need_dx:
            assert_close_f64(dx, exact_dx, sample.name)
        if need_dw:
            assert_close_f64(dw, exact_dw, sample.name)


def test_opcheck_mix_heads(device):
    for sample in mix_heads_samples(device, torch.float64):
        torch.library.opcheck(ops.mix_heads.default, with_grad(sample, ("x", "w")).args)


def test_opcheck_mix_heads_backward(device):
    for sample in mix_heads_samples(device, torch.float32):
        grad = torch.randn_like(run(sample))
        torch.library.opcheck(ops.mix_heads_backward.default, (grad, *sample.args, True, True))


def test_opcheck_mix_heads_backward_permuted_x(device):
    x = torch.randn(2, 4, 3, 8, device=device).transpose(1, 2)  # [B, N, H, d] from [B, H, N, d]
    w = torch.randn(4, 4, device=device)
    grad = torch.randn(2, 3, 4, 8, device=device)
    torch.library.opcheck(ops.mix_heads_backward.default, (grad, x, w, 1, None, None, 0, True, True))
