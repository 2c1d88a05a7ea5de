"""HF transformers baseline for the GPU benchmark table: the same shapes as
`ballast bench --device cuda` (random bf16 weights, built from a LlamaConfig on the GPU).
Prints one JSON line per measurement."""
import json, sys, time
import torch
from transformers import LlamaConfig, LlamaForCausalLM

SHAPES = {
    "llama-3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True,
                         rope_theta=500000.0, max_position_embeddings=131072),  # llama3 rope scaling left out: no effect on speed
    "llama-2-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=32, head_dim=128, vocab_size=32000, tie_word_embeddings=False,
                       rope_theta=10000.0, max_position_embeddings=4096),
}


def sync_time(fn):
    torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t


def main():
    name = sys.argv[1]
    b1_new = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    cfg = LlamaConfig(rms_norm_eps=1e-5, **SHAPES[name])
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.eval()
    V = cfg.vocab_size
    def gen(bs, p, n):
        ids = torch.randint(0, V, (bs, p), device="cuda")
        return lambda: model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                      do_sample=False, pad_token_id=0)
    with torch.inference_mode():
        sync_time(gen(1, 16, 4))  # warm-up
        t = sync_time(gen(1, 128, b1_new))
        print(json.dumps({"engine": "transformers", "model": name, "test": f"b1 p128 n{b1_new}", "tok_s": b1_new / t}), flush=True)
        t = sync_time(gen(256, 128, 128))
        print(json.dumps({"engine": "transformers", "model": name, "test": "c256 p128 n128", "tok_s": 256 * 128 / t}), flush=True)
        ids = torch.randint(0, V, (1, 2048), device="cuda")
        sync_time(lambda: model(ids))
        t = min(sync_time(lambda: model(ids)) for _ in range(3))
        print(json.dumps({"engine": "transformers", "model": name, "test": "prefill 2048", "tok_s": 2048 / t}), flush=True)


if __name__ == "__main__":
    main()
