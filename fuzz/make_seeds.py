#!/usr/bin/env python3
"""Writes the small seed files of fuzz/corpus/ that are binary (gguf, safetensors,
pickle, torch .bin). Run once with the project venv; the outputs are committed."""
import io, json, os, pickle, struct, zipfile
from collections import OrderedDict

import numpy as np

D = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

def w(sub, name, data):
    with open(os.path.join(D, sub, name), "wb") as f:
        f.write(data)

# gguf: a few metadata kinds and two tiny tensors.
import gguf
path = os.path.join(D, "gguf", "small.gguf")
gw = gguf.GGUFWriter(path, "llama")
gw.add_uint32("llama.block_count", 1)
gw.add_float32("x.f", 1.5)
gw.add_bool("x.b", True)
gw.add_array("x.strs", ["a", "bc"])
gw.add_array("x.ints", [1, 2, 3])
gw.add_tensor("w", np.arange(8, dtype=np.float32).reshape(2, 4))
gw.add_tensor("h", np.ones(4, dtype=np.float16))
gw.write_header_to_file(); gw.write_kv_data_to_file(); gw.write_tensors_to_file(); gw.close()
w("gguf", "truncated.gguf", open(path, "rb").read()[:60])

# safetensors: header length, JSON header, data.
def st(header, data):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data
w("safetensors", "small.safetensors", st(
    {"__metadata__": {"format": "pt"},
     "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
     "b": {"dtype": "BF16", "shape": [2], "data_offsets": [16, 20]}}, bytes(20)))
w("safetensors", "bad_offsets.safetensors", st(
    {"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 64]}}, bytes(16)))

# pickle: what torch.save writes for {"w": tensor}, built by hand (no torch needed).
def torch_pickle(proto=2):
    # Hand-assembled opcodes: OrderedDict() with one _rebuild_tensor_v2 entry.
    o = bytearray()
    o += b"\x80\x02"
    o += b"ccollections\nOrderedDict\nq\x00)Rq\x01"
    o += b"X\x01\x00\x00\x00w"
    o += b"ctorch._utils\n_rebuild_tensor_v2\nq\x02"
    o += b"((X\x07\x00\x00\x00storageq\x03ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000q\x05X\x03\x00\x00\x00cpuq\x06K\x04tq\x07Q"
    o += b"K\x00K\x02K\x02\x86q\x08K\x02K\x01\x86q\t\x89ccollections\nOrderedDict\nq\n)Rq\x0btq\x0cRq\r"
    o += b"s."
    return bytes(o)
pk = torch_pickle()
w("pickle", "state_dict.pkl", pk)
w("pickle", "plain.pkl", pickle.dumps({"a": [1, 2.5, "x", b"y", None, True, (1, 2)]}, protocol=4))
w("pickle", "bad_global.pkl", b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.")

# torch .bin (zip format): archive/data.pkl + archive/data/0, stored.
zb = io.BytesIO()
with zipfile.ZipFile(zb, "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", pk)
    z.writestr("archive/byteorder", "little")
    z.writestr("archive/data/0", np.arange(4, dtype=np.float32).tobytes())
    z.writestr("archive/version", "3\n")
w("torch_bin", "small.bin", zb.getvalue())
w("torch_bin", "not_zip.bin", pk)

# tokenizer: small tokenizer.json files + "\n\x01\n" + text.
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, normalizers, trainers, processors
text = "Hello world! héllo wörld 你好 <|im_start|>user\n  tabs\tand 123 numbers.\n"
def tok_seed(name, tk):
    w("tokenizer", name, tk.to_str().encode() + b"\n\x01\n" + text.encode())
bpe = Tokenizer(models.BPE())
bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
bpe.decoder = decoders.ByteLevel()
bpe.train_from_iterator([text] * 4, trainers.BpeTrainer(vocab_size=300, show_progress=False,
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|im_start|>", "<s>"]))
bpe.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bpe.token_to_id("<s>"))])
tok_seed("bpe_bytelevel.json", bpe)
wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
wp.normalizer = normalizers.BertNormalizer()
wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
wp.decoder = decoders.WordPiece()
wp.train_from_iterator([text] * 4, trainers.WordPieceTrainer(vocab_size=120, show_progress=False, special_tokens=["[UNK]", "[CLS]"]))
tok_seed("wordpiece.json", wp)
ug = Tokenizer(models.Unigram([("<unk>", 0.0), ("▁", -1.0), ("H", -2.0), ("e", -2.0), ("l", -2.0), ("o", -2.0), ("▁Hello", -1.5), ("<0x0A>", -3.0)], 0, byte_fallback=True))
ug.normalizer = normalizers.Sequence([normalizers.Replace(" ", "▁"), normalizers.NFKC()])
ug.pre_tokenizer = pre_tokenizers.Metaspace()
ug.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
tok_seed("unigram_bytefallback.json", ug)
w("tokenizer", "bad.json", b'{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]}}\n\x01\nab')
