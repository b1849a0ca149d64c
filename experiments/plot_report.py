#!/usr/bin/env python3
"""Plots for a `mixlab compare` directory (python3-matplotlib).

Reads DIR/results.csv and DIR/runs.json (each run's metrics.jsonl) and writes, per task:
  loss_<task>.png                training loss against step, one line per variant (mean over seeds, band = min..max)
  accuracy_vs_length_<task>.png  test accuracy against evaluation length (log x), mean with min..max band
Usage: plot_report.py DIR
"""
import csv
import json
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def band(ax, xs, series, label):
    mean = [sum(v) / len(v) for v in series]
    ax.plot(xs, mean, marker="o" if len(xs) < 12 else None, label=label)
    if any(len(v) > 1 for v in series):
        ax.fill_between(xs, [min(v) for v in series], [max(v) for v in series], alpha=0.2)


def main(root):
    runs = json.load(open(os.path.join(root, "runs.json")))
    rows = list(csv.DictReader(open(os.path.join(root, "results.csv"))))
    tasks = sorted({r["task"] for r in runs})
    for task in tasks:
        # loss curves
        curves = defaultdict(dict)  # variant -> seed -> [(step, loss)]
        for r in runs:
            if r["task"] != task:
                continue
            path = os.path.join(r["run_dir"], "metrics.jsonl")
            if not os.path.exists(path):
                continue
            pts = [json.loads(l) for l in open(path)]
            curves[r["variant"]][r["seed"]] = [(p["step"], p["loss"]) for p in pts if "loss" in p]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for variant, seeds in curves.items():
            steps = sorted({s for pts in seeds.values() for s, _ in pts})
            series = [[dict(pts)[s] for pts in seeds.values() if s in dict(pts)] for s in steps]
            band(ax, steps, series, variant)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_yscale("log")
        ax.set_title(f"{task}: training loss")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(root, f"loss_{task}.png"), dpi=110)
        plt.close(fig)
        # accuracy vs evaluation length
        acc = defaultdict(lambda: defaultdict(list))  # variant -> length -> [acc]
        for r in rows:
            if r["task"] == task and r["metric"] == "test_accuracy":
                acc[r["variant"]][int(r["length"])].append(float(r["value"]))
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for variant, by_len in acc.items():
            lens = sorted(by_len)
            band(ax, lens, [by_len[l] for l in lens], variant)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("evaluation length (tokens)")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{task}: accuracy vs length")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(root, f"accuracy_vs_length_{task}.png"), dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: plot_report.py COMPARE_DIR")
    main(sys.argv[1])
