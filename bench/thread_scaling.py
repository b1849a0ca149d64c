#!/usr/bin/env python3
"""Thread scaling of the training step: time at 1 thread over time at 2 threads, per case of `build/model_bench`.

The machine's speed drifts by 5-10% over minutes, so a ratio taken from one full run at 1 thread and another at 2
threads (minutes apart) moves by as much as the effect it measures. Here each case runs at 1 and at 2 threads back to
back, in alternating order, `--reps` times; the ratio of each adjacent pair is one sample, and the table gives their
median and range, next to the same measurement of the GEMM peak (model_bench's gemm_peak counter of those runs).

Usage: python3 bench/thread_scaling.py [--filter REGEX] [--reps N] [--min-time S]
       (default: every train_step case at T 1024, d_model 256; 3 pairs each)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_BENCH = os.path.join(ROOT, "build", "model_bench")


def run(case_filter, threads, min_time):
    """{case name: (step ms, gemm peak GFLOP/s)} of one model_bench run at `threads` threads."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([MODEL_BENCH, f"--benchmark_filter={case_filter}",
                        f"--benchmark_min_time={min_time}", f"--benchmark_out={out.name}",
                        "--benchmark_out_format=json"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        results = json.load(out)["benchmarks"]  # model_bench wrote the file behind this handle
    return {r["name"]: (r["real_time"], r["gemm_peak"]) for r in results}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filter", default="train_step/.*/T:1024/D:256/")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=1.0)
    args = parser.parse_args()
    listed = subprocess.run([MODEL_BENCH, f"--benchmark_filter={args.filter}", "--benchmark_list_tests"], check=True,
                            capture_output=True, text=True).stdout
    cases = [line.strip() for line in listed.splitlines() if line.startswith("train_step/")]
    if not cases:
        sys.exit(f"thread_scaling.py: no model_bench case matches '{args.filter}'")
    print("| case | 1 thread ms | 2 threads ms | scaling, median (range) | GEMM peak scaling, median |")
    print("|---|---|---|---|---|")
    for case in cases:
        exact = "^" + case + "$"
        steps, gemms = [], []
        for rep in range(args.reps):
            order = (1, 2) if rep % 2 == 0 else (2, 1)
            got = {t: run(exact, t, args.min_time)[case] for t in order}
            steps.append((got[1][0], got[2][0]))
            gemms.append(got[2][1] / got[1][1])
        ratios = [one / two for one, two in steps]
        print(f"| {case.removeprefix('train_step/').removesuffix('/real_time')} "
              f"| {statistics.median(s[0] for s in steps):.0f} | {statistics.median(s[1] for s in steps):.0f} "
              f"| {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) "
              f"| {statistics.median(gemms):.2f}x |", flush=True)


if __name__ == "__main__":
    main()
