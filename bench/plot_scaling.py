#!/usr/bin/python3
"""Scaling plots from Google Benchmark JSON (mixers_bench, model_bench) with python3-matplotlib.

Writes into OUT_DIR:
  scaling_time_<mode>.png  log-log time per call against T, one line per mixer, the fitted slope (the exponent of T)
                           in the legend; mode = forward, forward_backward, decode
  scaling_memory.png       log-log peak heap of forward + backward (training) against T, with fitted slopes
  scaling_memory_forward.png  the same for the inference forward pass
  train_tokens.png         training tokens/s of the reference model per mixer, one group of bars per T
and prints the slopes as a table.
Usage: plot_scaling.py OUT_DIR RESULT.json [RESULT.json ...]
"""
import json
import math
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def params(name):
    """'forward/mamba/T:1024/B:1/D:128/real_time' -> ('forward', 'mamba', {'T': 1024, ...})"""
    parts = name.split("/")
    args = {p.split(":")[0]: int(p.split(":")[1]) for p in parts if ":" in p and p.split(":")[1].isdigit()}
    labels = [p for p in parts if ":" not in p and p != "real_time"]
    return labels[0], "/".join(labels[1:]), args


def slope(xs, ys):
    """Least-squares exponent of y ~ x^k on log-log axes."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / den if den else float("nan")


def loglog(out, name, series, ylabel, title):
    fig, ax = plt.subplots(figsize=(7, 4.8))
    slopes = {}
    for mixer, pts in sorted(series.items()):
        pts = sorted(pts)
        if len(pts) < 2:
            continue
        xs, ys = zip(*pts)
        slopes[mixer] = slope(xs, ys)
        ax.plot(xs, ys, marker="o", label=f"{mixer} (slope {slopes[mixer]:.2f})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, name), dpi=110)
    plt.close(fig)
    return slopes


def read_results(files):
    """The series to plot from Google Benchmark JSON files; a file that is missing or not benchmark JSON ends the
    script with one line naming it."""
    times = defaultdict(lambda: defaultdict(list))   # mode -> mixer -> [(T, seconds)]
    memory = defaultdict(lambda: defaultdict(list))  # mode -> mixer -> [(T, MB)]
    train = defaultdict(dict)                        # T -> variant -> tokens/s
    for f in files:
        try:
            with open(f) as fh:
                benchmarks = json.load(fh)["benchmarks"]
        except OSError as e:
            sys.exit(f"plot_scaling.py: cannot read {f}: {e.strerror}")
        except (ValueError, KeyError, TypeError):
            sys.exit(f"plot_scaling.py: {f} is not Google Benchmark JSON (an object with a 'benchmarks' list, as "
                     "--benchmark_out writes)")
        for b in benchmarks:
            try:
                if b.get("run_type") != "iteration":
                    continue
                mode, mixer, args = params(b["name"])
                if mode in ("forward", "forward_backward", "decode") and args.get("B", 1) == 1 and args.get("D", 128) == 128:
                    times[mode][mixer].append((args["T"], b["real_time"] * UNIT[b["time_unit"]]))
                    if mode != "decode" and b.get("peak_MB", 0) > 0:
                        memory[mode][mixer].append((args["T"], b["peak_MB"]))
                elif mode == "train_step" and args.get("D", 128) == 128:
                    train[args["T"]][mixer] = b["tokens/s"]
            except (AttributeError, KeyError, ValueError, TypeError, IndexError):
                sys.exit(f"plot_scaling.py: {f}: malformed benchmark entry {str(b)[:80]}")
    if not times and not train:
        sys.exit(f"plot_scaling.py: no forward, forward_backward, decode or train_step results in {' '.join(files)}")
    return times, memory, train


def main(out, files):
    times, memory, train = read_results(files)
    os.makedirs(out, exist_ok=True)
    table = {}
    for mode, series in times.items():
        table[mode] = loglog(out, f"scaling_time_{mode}.png", series, "seconds per call", f"{mode}: time against T (batch 1, d_model 128)")
    if memory["forward_backward"]:
        table["memory"] = loglog(out, "scaling_memory.png", memory["forward_backward"], "peak heap (MB)",
                                 "forward + backward: peak memory against T")
    if memory["forward"]:
        table["inference memory"] = loglog(out, "scaling_memory_forward.png", memory["forward"], "peak heap (MB)",
                                           "inference forward: peak memory against T")
    if train:
        lens = sorted(train)
        variants = sorted({v for t in train.values() for v in t})
        fig, ax = plt.subplots(figsize=(8, 4.8))
        width = 0.8 / len(lens)
        for i, T in enumerate(lens):
            ax.bar([j + i * width for j in range(len(variants))], [train[T].get(v, 0) for v in variants], width, label=f"T={T}")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(variants))], variants, rotation=30, ha="right")
        ax.set_ylabel("training tokens/s")
        ax.set_title("reference model (2 layers, d_model 128, batch 8): training throughput")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "train_tokens.png"), dpi=110)
        plt.close(fig)
    print("| mixer | " + " | ".join(f"{m} slope" for m in table) + " |")
    print("|---|" + "---|" * len(table))
    for mixer in sorted({m for s in table.values() for m in s}):
        print(f"| {mixer} | " + " | ".join(f"{table[m].get(mixer, float('nan')):.2f}" for m in table) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: plot_scaling.py OUT_DIR RESULT.json [RESULT.json ...]")
    main(sys.argv[1], sys.argv[2:])
