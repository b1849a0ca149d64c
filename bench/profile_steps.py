#!/usr/bin/env python3
"""Where a training step's time goes, per mixer: perf samples of `build/model_bench`'s train steps (d_model 256,
T 1024, batch 8, 2 threads by default) grouped into the engine's parts, printed as one Markdown table.

Each case is profiled in its own `perf record` after a warm-up delay (so setup, the GEMM-peak measurement and the
first step's page faults are left out). Shares are of all samples of both threads; the OpenMP column is time a thread
spent waiting in libgomp (a barrier or the end of an unevenly split loop), so it measures imbalance and serial parts.

Usage: python3 bench/profile_steps.py [--filter REGEX] [--seconds S]   (needs perf: `apt-get install linux-perf`)
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

# (column, test on (dso, symbol)), first match wins; the rest is the mixer's own code and small passes.
PARTS = [
    ("oneDNN GEMM", lambda dso, sym: dso.startswith("[JIT]") or "libdnnl" in dso),
    ("weight gradients", lambda dso, sym: "AddTile" in sym or "AddWeightGradient" in sym),
    ("small tiles (attention, chunks)", lambda dso, sym: "small_gemm_detail" in sym or "SmallGemm" in sym),
    ("OpenMP wait", lambda dso, sym: "libgomp" in dso),
    ("optimizer", lambda dso, sym: "AdamW" in sym or "GradientNorm" in sym),
    ("norms, activations, residuals",
     lambda dso, sym: re.search(r"LayerNorm|RmsNorm|Gelu|Silu|SwiGLU|AddInto|Softmax(Forward|Backward)|Embedding", sym)),
    ("libc (copies, allocation)", lambda dso, sym: dso.startswith("libc")),
]


def profile(case, seconds, root):
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        subprocess.run(["perf", "record", "--delay=4000", "-o", data, os.path.join(root, "build/model_bench"),
                        f"--benchmark_filter=^{re.escape(case)}$", f"--benchmark_min_time={seconds}"],
                       check=True, capture_output=True)
        report = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,symbol", "--stdio"],
                                check=True, capture_output=True, text=True).stdout
    shares = {name: 0.0 for name, _ in PARTS}
    own = {}
    for line in report.splitlines():
        m = re.match(r"\s+([0-9.]+)%\s+(\[JIT\] tid \d+|\S+)\s+\[.\]\s+(.*?)(\s+-\s+-)?\s*$", line)
        if not m:
            continue
        share, dso, sym = float(m.group(1)), m.group(2), m.group(3)
        for name, test in PARTS:
            if test(dso, sym):
                shares[name] += share
                break
        else:
            short = re.sub(r"^mixlab::(\(anonymous namespace\)::)?", "", sym)
            short = re.sub(r"<.*", "", short)
            own[short] = own.get(short, 0.0) + share
    return shares, own


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filter", default=r"train_step/.*/T:1024/D:256/L:2/real_time")
    parser.add_argument("--seconds", type=float, default=6)
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    listing = subprocess.run([os.path.join(root, "build/model_bench"), "--benchmark_list_tests"], check=True,
                             capture_output=True, text=True).stdout.split()
    cases = [c for c in listing if re.search(args.filter, c)]
    if not cases:
        sys.exit(f"profile_steps: no model_bench case matches {args.filter!r}")
    names = [name for name, _ in PARTS]
    print("| case | " + " | ".join(names) + " | the rest: largest entries |")
    print("|---" * (len(names) + 2) + "|")
    for case in cases:
        shares, own = profile(case, args.seconds, root)
        top = sorted(own.items(), key=lambda kv: -kv[1])[:3]
        rest = sum(own.values())
        label = case.replace("train_step/", "").replace("/real_time", "")
        print(f"| {label} | " + " | ".join(f"{shares[n]:.0f}%" for n in names) + f" | {rest:.0f}%: " +
              ", ".join(f"{name} {share:.0f}%" for name, share in top) + " |", flush=True)


if __name__ == "__main__":
    main()
