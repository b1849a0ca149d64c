#!/usr/bin/env python3
"""Plots for a `mixlab compare` directory (python3-matplotlib).

Reads DIR/results.csv and DIR/runs.json (each run's metrics.jsonl and results.json) and writes, per task, for the
runs whose learning rate was selected on validation (one line per variant; bands span the seeds, min..max):
  loss_<task>.png                 training loss against step (log y)
  accuracy_vs_length_<task>.png   test accuracy against evaluation length (log x)
  accuracy_vs_position_<task>.png (not drawn when answers sit in fewer than 3 of the 16 slices) test accuracy against the relative position of the scored token, at the longest
                                  evaluation length
  accuracy_vs_sweep_<task>.png    test accuracy against the --eval-sweep value (e.g. passkey depth), longest length
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


def band(ax, xs, series, label, intervals=None):
    """Mean line with a min..max band over seeds; series[i] holds the seeds' values at xs[i]. With one seed, the band is
    intervals[i] = (low, high), the 95% Wilson interval of that accuracy, when given."""
    keep = [(x, v, i) for x, v, i in zip(xs, series, intervals or [None] * len(xs)) if v]
    if not keep:
        return
    xs, series, intervals = zip(*keep)
    mean = [sum(v) / len(v) for v in series]
    ax.plot(xs, mean, marker="o" if len(xs) < 20 else None, label=label)
    if any(len(v) > 1 for v in series):
        ax.fill_between(xs, [min(v) for v in series], [max(v) for v in series], alpha=0.2)
    elif all(i is not None for i in intervals):
        ax.fill_between(xs, [i[0] for i in intervals], [i[1] for i in intervals], alpha=0.2)


def save(fig, ax, root, name, title):
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(root, name), dpi=110)
    plt.close(fig)


def sort_key(value):
    try:
        return float(value)
    except ValueError:
        return value


def results_json(run):
    path = os.path.join(run["run_dir"], "results.json")
    return json.load(open(path)) if os.path.exists(path) else None


def train_length(runs):
    """The training length of the runs (from the first run's config.json), or None."""
    for r in runs:
        path = os.path.join(r["run_dir"], "config.json")
        if os.path.exists(path):
            return int(json.load(open(path))["train"]["train-len"])
    return None


def mark_training_length(ax, length):
    if length:
        ax.axvline(length, color="gray", ls=":", lw=1, label=f"training length ({length})")


def main(root):
    runs = [r for r in json.load(open(os.path.join(root, "runs.json"))) if r["selected"]]
    rows = [r for r in csv.DictReader(open(os.path.join(root, "results.csv"))) if r["selected"] == "1"]
    for task in sorted({r["task"] for r in runs}):
        task_runs = [r for r in runs if r["task"] == task]

        fig, ax = plt.subplots(figsize=(7, 4.5))
        curves = defaultdict(dict)  # label -> seed -> {step: loss}
        for r in task_runs:
            path = os.path.join(r["run_dir"], "metrics.jsonl")
            if os.path.exists(path):
                pts = [json.loads(line) for line in open(path)]
                curves[r["label"]][r["seed"]] = {p["step"]: p["loss"] for p in pts if "loss" in p}
        for label, seeds in curves.items():
            steps = sorted({s for pts in seeds.values() for s in pts})
            band(ax, steps, [[pts[s] for pts in seeds.values() if s in pts] for s in steps], label)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_yscale("log")
        save(fig, ax, root, f"loss_{task}.png", f"{task}: training loss")

        fig, ax = plt.subplots(figsize=(7, 4.5))
        acc = defaultdict(lambda: defaultdict(list))  # label -> length -> [acc]
        ci = defaultdict(dict)  # label -> length -> (low, high) of the (last) seed
        for r in rows:
            if r["task"] == task and r["metric"] == "test_accuracy":
                acc[r["label"]][int(r["length"])].append(float(r["value"]))
                if r.get("ci_low"):
                    ci[r["label"]][int(r["length"])] = (float(r["ci_low"]), float(r["ci_high"]))
        for label, by_len in acc.items():
            lens = sorted(by_len)
            band(ax, lens, [by_len[n] for n in lens], label, [ci[label].get(n) for n in lens])
        chance = defaultdict(list)  # length -> majority-answer baselines of the runs' test sets
        for r in rows:
            if r["task"] == task and r["metric"] == "test_majority_baseline":
                chance[int(r["length"])].append(float(r["value"]))
        if chance:
            lens = sorted(chance)
            ax.plot(lens, [sum(chance[n]) / len(chance[n]) for n in lens], "k--", lw=1, label="chance (most frequent answer)")
        mark_training_length(ax, train_length(task_runs))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("evaluation length (tokens)")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(-0.02, 1.02)
        save(fig, ax, root, f"accuracy_vs_length_{task}.png",
             f"{task}: test accuracy vs length (band: range over seeds, or the 95% interval of one seed)")

        fig, ax = plt.subplots(figsize=(7, 4.5))
        by_pos = defaultdict(lambda: defaultdict(list))  # label -> bin -> [acc]
        longest = None
        for r in task_runs:
            res = results_json(r)
            if not res or not res["test"]:
                continue
            longest = max(res["test"], key=int)
            for b, v in enumerate(res["test"][longest].get("accuracy_by_position", [])):
                if v is not None:
                    by_pos[r["label"]][b].append(v)
        if max((len(bins) for bins in by_pos.values()), default=0) < 3:
            plt.close(fig)  # one scored position per sequence (induction, the end of a copy): nothing to plot against
        else:
            for label, bins in by_pos.items():
                xs = sorted(bins)
                n = 16
                band(ax, [(b + 0.5) / n for b in xs], [bins[b] for b in xs], label)
            ax.set_xlabel("relative position of the scored token in the sequence")
            ax.set_ylabel("test accuracy")
            ax.set_ylim(-0.02, 1.02)
            save(fig, ax, root, f"accuracy_vs_position_{task}.png", f"{task}: accuracy vs position at T={longest}")

        # label -> value -> [acc at the longest evaluation length, where every swept value fits (MQAR pairs need length)]
        sweep = defaultdict(lambda: defaultdict(list))
        sweep_chance = defaultdict(list)  # value -> majority-answer baselines
        sweep_ci = defaultdict(dict)  # label -> value -> 95% interval of the (last) seed
        name, sweep_len = None, None
        for r in task_runs:
            res = results_json(r)
            if not res:
                continue
            for key, evals in res.get("sweep", {}).items():
                name, value = key.split("=", 1)
                sweep_len = max(evals, key=int)
                sweep[r["label"]][value].append(evals[sweep_len]["accuracy"])
                if "ci95" in evals[sweep_len]:
                    sweep_ci[r["label"]][value] = tuple(evals[sweep_len]["ci95"])
                if "majority_baseline" in evals[sweep_len]:
                    sweep_chance[value].append(evals[sweep_len]["majority_baseline"])
        if sweep:
            values = sorted({v for by_value in sweep.values() for v in by_value}, key=sort_key)
            numeric = all(isinstance(sort_key(v), float) for v in values)
            fig, ax = plt.subplots(figsize=(7, 4.5))
            for label, by_value in sweep.items():
                xs = [v for v in values if v in by_value]
                band(ax, [float(x) if numeric else values.index(x) for x in xs], [by_value[x] for x in xs], label,
                     [sweep_ci[label].get(x) for x in xs])
            xs = [v for v in values if v in sweep_chance]
            if xs:
                ax.plot([float(x) if numeric else values.index(x) for x in xs], [sum(sweep_chance[x]) / len(sweep_chance[x]) for x in xs],
                        "k--", lw=1, label="chance (most frequent answer)")
            if not numeric:
                ax.set_xticks(range(len(values)), values)
            ax.set_xlabel(name)
            ax.set_ylabel("test accuracy")
            ax.set_ylim(-0.02, 1.02)
            save(fig, ax, root, f"accuracy_vs_sweep_{task}.png", f"{task}: accuracy vs {name} at T={sweep_len}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: plot_report.py COMPARE_DIR")
    main(sys.argv[1])
