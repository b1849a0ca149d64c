#!/usr/bin/env python3
"""Overhead of the Python bindings: Model.forward called from Python (numpy in, logits copied out) against the same
forward timed inside C++ (the code the CLI's evaluation runs), at T = 256 and 4096, batch 1, on a checkpoint of the
reference model (2 layers, d_model 128, 4 heads, softmax attention with RoPE, vocabulary 256). Median of 9 calls each,
after 2 warm-up calls. Run on a quiet machine:

    PYTHONPATH=build/python python3 bench/python_overhead.py [--threads 2]
"""
import argparse
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np

import mixlab


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    binary = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "mixlab")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([binary, "train", "--task", "copy", "--copy.vocab", "255", "--d-model", "128",
                        "--softmax.n-heads", "4", "--train-len", "64", "--eval-lens", "64", "--steps", "2",
                        "--batch", "4", "--eval-every", "0", "--val-answers", "1", "--test-answers", "1",
                        "--threads", "1", "--out", f"{tmp}/run"], check=True, capture_output=True)
        model = mixlab.load(f"{tmp}/run/model.safetensors", threads=args.threads)
        print(f"load: {os.getloadavg()[0]:.2f}; threads {args.threads}")
        print("| T | C++ forward ms | Model.forward from Python ms | overhead |")
        print("|---|---|---|---|")
        rng = np.random.default_rng(0)
        for T in (256, 4096):
            tokens = rng.integers(0, model.vocab, size=(1, T), dtype=np.int32)
            for _ in range(2):
                model.forward(tokens)
            inside = model._model.time_forward(tokens, 9)
            calls = []
            for _ in range(9):
                start = time.perf_counter()
                model.forward(tokens)
                calls.append(time.perf_counter() - start)
            outside = statistics.median(calls)
            print(f"| {T} | {inside * 1e3:.2f} | {outside * 1e3:.2f} | {100 * (outside / inside - 1):+.1f}% |")


if __name__ == "__main__":
    main()
