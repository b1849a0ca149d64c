#!/usr/bin/python3
"""Figures for `mixlab analyze`: reads DIR/analysis.json, writes into DIR
  maps.png          layer x head grid of mixing maps (first task sample, normalised rows)
  scores.png        one layer x head heatmap per head score, plus ablation accuracy change
  pruning.png       greedy pruning curve (accuracy vs fraction of heads removed)
  similarity.png    pairwise similarity of all heads' maps
  logit_lens.png    KL to the final distribution and final-token rank per layer
With --over-training, reads DIR/over_training.json and writes over_training.png: training loss, validation
accuracy, every head's induction score, mean entropy ratio and the in-context score against the step, with the
largest rise of the answer-induction score marked.
Usage: plot_analysis.py DIR [--over-training]"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

SCORES = ["previous_token", "duplicate_token", "induction", "answer_induction", "entropy_ratio", "mean_distance", "sink_mass",
          "accuracy_change"]
UNIT_SCORES = {"previous_token", "duplicate_token", "induction", "answer_induction", "entropy_ratio", "sink_mass"}  # in [0, 1]
RECURRENT = {"mamba", "gla", "linear", "performer"}  # their "heads" are channel groups with averaged implied maps


def head_name(h):
    return f"L{h['layer']}{'G' if h.get('mixer') in RECURRENT else 'H'}{h['head']}"


def scale(key, g):
    """One colour scale per score family: scores in [0, 1] share 0..1 (noise between 0.008 and 0.014 stays dark), the
    accuracy change is diverging and centred on zero, the mean distance runs from 0 to its largest value."""
    finite = g[~np.isnan(g)]
    if key in UNIT_SCORES:
        return "magma", 0.0, 1.0
    if key == "accuracy_change":
        m = max(float(np.abs(finite).max()) if finite.size else 0.0, 0.01)
        return "RdBu", -m, m
    return "viridis", 0.0, max(float(finite.max()) if finite.size else 1.0, 1e-6)


def grid(heads, key):
    layers = max(h["layer"] for h in heads) + 1
    width = max(h["head"] for h in heads) + 1
    g = np.full((layers, width), np.nan)
    for h in heads:
        g[h["layer"], h["head"]] = h[key]
    return g


def main(out):
    a = json.load(open(f"{out}/analysis.json"))
    heads, title = a["heads"], f"{a['model']} on {a['task']} (step {a['step']})"

    maps = a["maps"]
    mixer_of = {(h["layer"], h["head"]): h for h in heads}
    rows, cols = len(maps), max(len(m) for m in maps)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.4 * rows), squeeze=False)
    image = None
    for l in range(rows):
        for h in range(cols):
            ax = axes[l][h]
            if h < len(maps[l]):
                m = np.array(maps[l][h])
                image = ax.imshow(m, cmap="viridis", interpolation="nearest", vmin=0, vmax=1)
                info = mixer_of.get((l, h), {"layer": l, "head": h})
                ax.set_title(head_name(info) + (f" ({info['mixer']})" if "mixer" in info else ""), fontsize=7)
                ax.tick_params(labelsize=5)
                if l == rows - 1:
                    ax.set_xlabel("source position", fontsize=6)
                if h == 0:
                    ax.set_ylabel("query position", fontsize=6)
            else:
                ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02, label="share of the row (rows sum to 1 for attention)")
    fig.suptitle("mixing maps (H: attention head; G: channel group of a recurrent mixer, averaged): " + title, fontsize=8)
    fig.savefig(f"{out}/maps.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(SCORES), figsize=(2.6 * len(SCORES), 2.8), squeeze=False)
    for ax, key in zip(axes[0], SCORES):
        g = grid(heads, key)
        cmap, lo, hi = scale(key, g)
        im = ax.imshow(g, cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        for (l, h), v in np.ndenumerate(g):
            if not np.isnan(v):
                strong = abs(v - (lo + hi) / 2) > 0.3 * (hi - lo)  # dark text on the pale middle of the scale
                ax.text(h, l, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color=("w" if strong else "k") if key == "accuracy_change" else ("k" if v > lo + 0.6 * (hi - lo) else "w"))
        ax.set_title(key, fontsize=8)
        ax.set_xticks(range(g.shape[1])), ax.set_yticks(range(g.shape[0]))
        ax.set_xlabel("head (or channel group)"), ax.set_ylabel("layer")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(f"{out}/scores.png", dpi=110)
    plt.close(fig)

    if "pruning" in a:
        p = a["pruning"]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot([x["fraction"] for x in p], [x["accuracy"] for x in p], marker="o")
        for x in p[1:]:
            ax.annotate(f"L{x['layer']}H{x['head']}", (x["fraction"], x["accuracy"]), fontsize=6)
        ax.set_xlabel("fraction of heads removed (greedy)")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"pruning ({a['ablation']} ablation)", fontsize=9)
        fig.tight_layout()
        fig.savefig(f"{out}/pruning.png", dpi=110)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4))
    im = ax.imshow(np.array(a["similarity"]), cmap="magma", vmin=0, vmax=1)
    labels = [f"L{h['layer']}H{h['head']}" for h in heads]
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    fig.colorbar(im, ax=ax)
    ax.set_title("map similarity (cosine)", fontsize=9)
    fig.tight_layout()
    fig.savefig(f"{out}/similarity.png", dpi=110)
    plt.close(fig)

    lens = a["logit_lens"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([x["layer"] for x in lens], [x["kl_to_final"] for x in lens], marker="o", color="C0")
    ax.set_ylabel("KL(final || lens) (nats)", color="C0")
    rank = ax.twinx()  # one quantity per axis
    rank.plot([x["layer"] for x in lens], [x["final_top1_rank"] for x in lens], marker="s", color="C1")
    rank.set_ylabel("rank of the final top-1 token", color="C1")
    ax.set_xlabel("residual stream entering layer (last = output)")
    ax.set_title("logit lens", fontsize=9)
    fig.tight_layout()
    fig.savefig(f"{out}/logit_lens.png", dpi=110)
    plt.close(fig)


def over_training(out):
    a = json.load(open(f"{out}/over_training.json"))
    points = a["snapshots"]
    steps = [p["step"] for p in points]
    changes = a["phase_changes"]
    fig, axes = plt.subplots(1, 5, figsize=(20, 3.4))
    if a["train_loss"]:
        axes[0].plot([x[0] for x in a["train_loss"]], [x[1] for x in a["train_loss"]], label="train loss")
    axes[0].plot(steps, [p["loss"] for p in points], marker="o", label="validation loss")
    axes[0].set_ylabel("loss (nats)")
    axes[0].legend(fontsize=7)
    axes[1].plot(steps, [p["accuracy"] for p in points], marker="o")
    axes[1].set_ylabel("validation accuracy")
    n_heads = len(points[0]["heads"])
    for i in range(n_heads):
        h = points[0]["heads"][i]
        axes[2].plot(steps, [p["heads"][i]["induction"] for p in points], label=f"L{h['layer']}H{h['head']}", lw=1)
    axes[2].set_ylabel("induction score")
    axes[2].legend(fontsize=6, ncol=2)
    for i in range(n_heads):
        h = points[0]["heads"][i]
        axes[3].plot(steps, [p["heads"][i]["answer_induction"] for p in points], label=f"L{h['layer']}H{h['head']}", lw=1)
    axes[3].set_ylabel("answer-induction score")
    axes[4].plot(steps, [p["in_context_score"] for p in points], marker="o", label="in-context score, repeated random (late - early loss)")
    axes[4].plot(steps, [p["text_in_context_score"] for p in points], marker="^", label="in-context score, task text (last - second tenth)")
    axes[4].plot(steps, [p["mean_entropy_ratio"] for p in points], marker="s", label="mean entropy ratio")
    axes[4].legend(fontsize=7)
    # Shade only windows the detector calls abrupt, for every curve it tested; the title names them, or says none.
    colors = ["orange", "green", "purple", "red", "blue", "brown"]
    found = []
    for (key, c), color in zip(sorted(changes.items()), colors):
        if c["detected"]:
            found.append(f"{key} at steps {c['from_step']}-{c['to_step']}")
            for ax in axes:
                ax.axvspan(c["from_step"], c["to_step"], color=color, alpha=0.2)
    for ax in axes:
        ax.set_xlabel("step")
    title = "phase change: " + "; ".join(found) if found else "no phase change in any curve (" + ", ".join(sorted(changes)) + ")"
    fig.suptitle(f"{a['model']} on {a['task']}: {title}", fontsize=9)
    fig.tight_layout()
    fig.savefig(f"{out}/over_training.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[2] == "--over-training":
        over_training(sys.argv[1])
    elif len(sys.argv) == 2:
        main(sys.argv[1])
    else:
        sys.exit(__doc__)
