"""One small call of every CUDA kernel family, for compute-sanitizer (tools/gpu_check.sh).

Small shapes keep a memcheck or racecheck run within seconds: mix_heads forward and backward
(dx, dw) with RoPE; flash attention forward and backward, causal with GQA, on the portable
kernels and, on an sm_90 GPU built with 90a, on the Hopper ones; vhead_decode on a paged,
MEA-compressed cache; kv_cache_append with RoPE. Inputs come from the tests' sample
generators. It prints one line per call; the sanitizer's exit status judges the memory access.
``--device cpu`` runs the same calls on the CPU backend, so CI keeps this script working.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from samples import _mix_heads, flash_attn_sample, kv_cache_append_sample, vhead_decode_sample, with_grad  # noqa: E402

import headmix  # noqa: E402


def flash_families(device: str) -> list[str]:
    if device != "cuda":
        return ["portable"]
    props = torch.cuda.get_device_properties(0)
    hopper = (props.major, props.minor) == (9, 0) and "sm_90a" in headmix.build_info["cuda_archs"]
    return ["portable", "sm90"] if hopper else ["portable"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    device = parser.parse_args().device
    dtype = torch.bfloat16
    s = _mix_heads("mix", device, dtype, batch=1, tokens=33, heads_in=4, heads_out=8, head_dim=64, pseudo=2,
                   rotary_dim=32)
    s = with_grad(s, ["x", "w"])
    y = headmix.mix_heads(**s.kwargs)
    torch.autograd.grad(y, [s.kwargs["x"], s.kwargs["w"]], torch.randn_like(y))
    print("mix_heads fwd+bwd", flush=True)

    for family in flash_families(device):
        os.environ["HEADMIX_FLASH_KERNELS"] = family
        s = flash_attn_sample("flash", device, dtype, batch=1, seqlen_q=130, seqlen_k=130, heads=4, kv_heads=2,
                              head_dim=64, causal=True)
        kw = s.kwargs
        q, k, v = (kw[n].requires_grad_() for n in ("q", "k", "v"))
        out = headmix.flash_attn(q, k, v, causal=True)
        torch.autograd.grad(out, [q, k, v], torch.randn_like(out))
        print(f"flash_attn fwd+bwd ({family})", flush=True)
    os.environ.pop("HEADMIX_FLASH_KERNELS", None)

    s = vhead_decode_sample("decode", device, dtype, seqlen_q=2, heads=8, kv_heads=4, cache_heads=2, head_dim=64,
                            seqlens=[5, 70], capacity=128, block_size=16, virtual=True)
    with torch.no_grad():
        headmix.vhead_decode(**s.kwargs)
    print("vhead_decode (paged, virtual heads)", flush=True)

    s = kv_cache_append_sample("append", device, dtype, new_rows=3, cache_heads=2, head_dim=64, seqlens=[5, 60],
                               capacity=128, block_size=16, rotary_dim=32)
    torch.ops.headmix.kv_cache_append(*s.args)  # the op itself: the sample names explicit positions
    print("kv_cache_append (paged, rope)", flush=True)
    if device == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
