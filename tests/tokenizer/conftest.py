"""Shared fixtures for tokenizer tests: the ballast binary, the decompressed tokenizers."""
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def shared_dir():
    return pathlib.Path(os.environ.get("BALLAST_SHARED", ROOT.parent / "shared"))


def ballast_bin():
    # BALLAST_TOKENIZE_BIN overrides (e.g. build/bin/tok_cli, same CLI contract).
    for key in ("BALLAST_TOKENIZE_BIN", "BALLAST_BIN"):
        if os.environ.get(key):
            return os.environ[key]
    return str(ROOT / "build" / "bin" / "ballast")


def decompress_tree(src: pathlib.Path, dst: pathlib.Path):
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name.endswith(".zst"):
            out = dst / f.name[:-4]
            if not out.exists():
                subprocess.run(["zstd", "-q", "-d", str(f), "-o", str(out)], check=True)
        elif f.is_file():
            shutil.copy(f, dst / f.name)
    return dst


@pytest.fixture(scope="session")
def tok_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tokenizers")


class Cli:
    def __init__(self, binary, path):
        self.binary, self.path = binary, str(path)

    def _run(self, args, lines):
        import json
        inp = "".join(json.dumps(l) + "\n" for l in lines)
        r = subprocess.run([self.binary, *args, "--tokenizer", self.path, "--jsonl"], input=inp.encode(),
                           capture_output=True, timeout=600)
        assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
        out = [json.loads(l) for l in r.stdout.decode().split("\n") if l.strip()]
        assert len(out) == len(lines), (len(out), len(lines), r.stderr.decode(errors="replace")[-2000:])
        return out

    def encode(self, texts, add_special=True, parse_special=True):
        args = ["tokenize"]
        if not add_special:
            args.append("--no-add-special")
        if not parse_special:
            args.append("--split-special")
        return [o["ids"] for o in self._run(args, [{"text": t} for t in texts])]

    def decode(self, id_lists, skip_special=False):
        args = ["detokenize"] + (["--skip-special"] if skip_special else [])
        return [o["text"] for o in self._run(args, [{"ids": ids} for ids in id_lists])]
