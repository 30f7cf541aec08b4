"""CUDA-only properties of the mix_heads kernels: realistic shapes, every output element
written, strided inputs, bitwise-deterministic weight gradients. (The shared op tests in
test_mix_heads.py also run on CUDA.)"""

import pytest
import torch
from samples import Sample, input_grads, poison_cuda_allocator, to_float64
from tolerances import assert_within_2x_pytorch_error

import headmix
from headmix import reference

pytestmark = pytest.mark.cuda

# (H_in, H_out, pseudo): IHA expand, IHA collapse, MEA HLC
MIXES = [(16, 64, 4), (64, 16, 1), (4, 8, 1)]


def sample(dtype, heads_in, heads_out, pseudo, head_dim, rotary_dim, *, tokens=37, strided=False):
    shape = (3, 2 * tokens if strided else tokens, heads_in, head_dim)
    x = torch.randn(shape, device="cuda", dtype=torch.float64).to(dtype)
    if strided:  # every other token of a longer sequence: non-contiguous batch/sequence strides
        x = x[:, ::2]
    w = torch.randn(heads_in, heads_out, device="cuda", dtype=torch.float64).to(dtype) / heads_in**0.5
    cos, sin = headmix.rope_tables(5 + tokens * pseudo, rotary_dim, device="cuda") if rotary_dim else (None, None)
    return Sample("cuda", dict(x=x, w=w, pseudo=pseudo, cos=cos, sin=sin, pos_offset=5))


def run(s):
    return headmix.mix_heads(**s.kwargs)


def run_reference(s):
    return reference.mix_heads(**s.kwargs)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("head_dim,rotary_dim", [(64, 64), (128, 64), (256, 256), (128, None)])
@pytest.mark.parametrize("heads_in,heads_out,pseudo", MIXES)
def test_forward_and_backward_match_reference(dtype, head_dim, rotary_dim, heads_in, heads_out, pseudo):
    s = sample(dtype, heads_in, heads_out, pseudo, head_dim, rotary_dim, strided=head_dim == 128)
    poison_cuda_allocator()
    out = run(s)
    assert out.isfinite().all(), "output has unwritten (NaN) elements"
    grad = torch.randn_like(out)
    poison_cuda_allocator()
    actual = (out,) + input_grads(run, s, ("x", "w"), grad)
    assert all(t.isfinite().all() for t in actual[1:]), "gradient has unwritten (NaN) elements"
    baseline = (run_reference(s),) + input_grads(run_reference, s, ("x", "w"), grad)
    exact_sample = to_float64(s)
    exact = (run_reference(exact_sample),) + input_grads(run_reference, exact_sample, ("x", "w"), grad.double())
    assert_within_2x_pytorch_error(actual, baseline, exact, f"{dtype} d={head_dim} {heads_in}->{heads_out}")


def test_weight_gradient_is_deterministic():
    s = sample(torch.bfloat16, 16, 64, 4, 128, 128, tokens=300)
    grad = torch.randn(3, 300, 64, 128, device="cuda", dtype=torch.bfloat16)
    args = [s.kwargs[k] for k in ("x", "w", "pseudo", "cos", "sin", "pos_offset")]
    first = torch.ops.headmix.mix_heads_backward(grad, *args, True, True)
    for _ in range(3):
        again = torch.ops.headmix.mix_heads_backward(grad, *args, True, True)
        assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])


def test_opcheck_and_compile_on_cuda():
    s = sample(torch.bfloat16, 16, 32, 2, 64, 32)
    torch.library.opcheck(torch.ops.headmix.mix_heads.default, s.args)
    x = s.kwargs["x"].detach().requires_grad_()
    w = s.kwargs["w"].detach().requires_grad_()

    def f(x, w):
        return headmix.mix_heads(x, w, pseudo=2, cos=s.kwargs["cos"], sin=s.kwargs["sin"], pos_offset=5).float().square().sum()

    compiled = torch.compile(f, fullgraph=True)
    eager_grads = torch.autograd.grad(f(x, w), (x, w))
    compiled_grads = torch.autograd.grad(compiled(x, w), (x, w))
    for a, b in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(a, b)
