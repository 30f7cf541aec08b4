"""A transformers model with attn_implementation="headmix" against the same model's "sdpa".

Variants (one small random Llama-family model, GQA; the same weights for both sides):
  prefill       forward of the whole prompt (no cache)                  vs sdpa
  decode        one token against a transformers cache of the prompt   vs sdpa, same cache kind
  decode_paged  one token against a paged HeadmixCache (vhead_decode)  vs sdpa with transformers' cache
Each decode call appends one token and is rewound after it, so every call sees the same cache.
Tokens/s: batch * prompt / time (prefill), batch / time (decode); FLOPs = 2 * weights * tokens
(the attention scores are small beside them at these lengths).

    python benchmarks/bench_hf.py                  # CPU, --quick: 4 layers, d_model 512, prompt 256
    python benchmarks/bench_hf.py --device cuda    # bf16, 8 layers, d_model 2048, prompt 2048
"""

from __future__ import annotations

import copy

import torch
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache

import cli
import headmix.hf
from case import Case


def build_models(args):
    config = AutoConfig.for_model(
        args.family, vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=3 * args.hidden,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        max_position_embeddings=2 * args.prompt + 16,
    )
    sdpa = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=args.dtype)
    sdpa = sdpa.to(args.device).eval()
    ours = copy.deepcopy(sdpa)
    ours.set_attn_implementation("headmix")
    return sdpa, ours


def cases(args) -> list[Case]:
    sdpa, ours = build_models(args)
    weights = sum(p.numel() for name, p in ours.named_parameters() if "embed" not in name)
    shape = {"family": args.family, "layers": args.layers, "hidden": args.hidden, "H": args.heads,
             "H_kv": args.kv_heads, "B": args.batch, "prompt": args.prompt}
    ids = torch.randint(0, args.vocab, (args.batch, args.prompt), device=args.device)
    step = torch.randint(0, args.vocab, (args.batch, 1), device=args.device)

    def forward(model, **kwargs):
        with torch.no_grad():
            return model(**kwargs).logits

    def prefill():
        return (lambda: forward(ours, input_ids=ids, use_cache=False),
                lambda: forward(sdpa, input_ids=ids, use_cache=False))

    def decoder(model, cache):
        forward(model, input_ids=ids, cache=cache, use_cache=True)  # the prompt, once

        def one_token():
            logits = forward(model, input_ids=step, cache=cache, use_cache=True)
            cache.crop(-1)  # rewind: every call sees the same cache
            return logits

        return one_token

    def decode():
        return decoder(ours, DynamicCache(config=ours.config)), decoder(sdpa, DynamicCache(config=sdpa.config))

    def decode_paged():
        paged = headmix.hf.HeadmixCache(ours.config, max_tokens=args.prompt + 1, block_size=args.block_size)
        return decoder(ours, paged), decoder(sdpa, DynamicCache(config=sdpa.config))

    prompt_tokens = args.batch * args.prompt
    return [
        Case("hf", "prefill", {**shape, "tokens": prompt_tokens}, prefill, flops=2 * weights * prompt_tokens),
        Case("hf", "decode", {**shape, "tokens": args.batch}, decode, flops=2 * weights * args.batch),
        Case("hf", "decode_paged", {**shape, "tokens": args.batch, "block": args.block_size}, decode_paged,
             flops=2 * weights * args.batch),
    ]


def main(argv=None):
    parser = cli.make_parser(__doc__)
    parser.add_argument("--family", choices=["llama", "mistral", "qwen2", "qwen3"])
    parser.add_argument("--layers", type=int)
    parser.add_argument("--hidden", type=int)
    parser.add_argument("--heads", type=int)
    parser.add_argument("--kv-heads", type=int)
    parser.add_argument("--vocab", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--prompt", type=int)
    parser.add_argument("--block-size", type=int)
    quick = {"family": "llama", "layers": 4, "hidden": 512, "heads": 8, "kv_heads": 2, "vocab": 1024,
             "batch": 2, "prompt": 256, "block_size": 64}
    full = {**quick, "layers": 8, "hidden": 2048, "heads": 16, "kv_heads": 4, "vocab": 32000,
            "batch": 8, "prompt": 2048}
    args = cli.parse_args(parser, argv, quick=quick, full=full)
    records = cli.main("bench_hf", cases(args), args)
    for record in records[2:]:
        if record["time_ms"] and record["baseline_time_ms"]:
            tokens = record["shape"]["tokens"]
            print(f"{record['variant']}: headmix {1e3 * tokens / record['time_ms']:.0f} tokens/s, "
                  f"sdpa {1e3 * tokens / record['baseline_time_ms']:.0f} tokens/s")


if __name__ == "__main__":
    main()
