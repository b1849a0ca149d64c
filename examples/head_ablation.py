#!/usr/bin/env python3
"""A notebook-style tour of the Python bindings: load a trained checkpoint, plot one head's mixing map over the tokens
of a test sequence, ablate each head of the last layer by zeroing its rows of the output projection (editing the
model's own weights through a numpy view), and re-measure accuracy.

    cmake --build build && PYTHONPATH=build/python python3 examples/head_ablation.py [CHECKPOINT] [--out DIR]

Without a checkpoint it first trains one through mixlab.train (MQAR, 4 key-value pairs, 2-layer softmax attention,
d_model 128, 400 steps at lr 1e-3; about 10 seconds on 2 cores; the end-to-end test's recipe reaches 99% by step
150-250)."""
import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import mixlab  # noqa: E402


def trained_checkpoint(out):
    run = mixlab.train({"task": "mqar", "mqar.pairs": 4, "mqar.vocab": 16, "mixer": "softmax", "softmax.n-heads": 4,
                        "d-model": 128, "train-len": 32, "eval-lens": 32, "steps": 400, "batch": 64, "lr": 1e-3,
                        "warmup": 50, "eval-every": 100, "seed": 0, "out": os.path.join(out, "run")})
    return os.path.join(run.dir, "model.safetensors")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", nargs="?", help="RUN/model.safetensors (default: train one)")
    parser.add_argument("--out", default="runs/example_head_ablation", help="where figures (and the run) go")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    checkpoint = args.checkpoint or trained_checkpoint(args.out)

    model = mixlab.load(checkpoint)
    cfg = model.config
    task, length, seed = cfg["train"]["task"], int(cfg["train"]["train-len"]), int(cfg["train"]["seed"])
    layer = model.n_layers - 1
    heads = int(cfg["model"]["layers"][layer]["mixer_options"]["n-heads"])
    print(f"{checkpoint}: {cfg['model']['layers'][layer]['mixer']} x {model.n_layers} layers, step {model.step}, "
          f"task {task} at length {length}")

    # One test sequence of the run's task (the first one `mixlab analyze` draws) and the last layer's maps on it.
    sample = mixlab.tasks.sample(task, length=length, batch=1, seed=seed, split="test", **cfg["task_options"])
    tokens, mask = sample["tokens"][0], sample["mask"][0]
    maps = model.mixing(tokens, layer)
    query = int(np.nonzero(mask)[0][-1])  # the last scored position (a query of MQAR)
    head = int(np.argmax(maps[:, query, :query].max(axis=1)))  # the head that reads one earlier position most sharply
    fig, ax = plt.subplots(figsize=(6, 5.5))
    ax.imshow(maps[head], cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(length), tokens, fontsize=5)
    ax.set_yticks(range(length), tokens, fontsize=5)
    ax.set_xlabel("key (token)")
    ax.set_ylabel("query (token)")
    ax.set_title(f"layer {layer} head {head}: query {query} reads position {int(np.argmax(maps[head, query]))}")
    figure = os.path.join(args.out, f"layer{layer}_head{head}.png")
    fig.savefig(figure, dpi=150, bbox_inches="tight")
    print(f"wrote {figure}")

    # Ablate each head of the last layer: zero its rows of the output projection (a view of the model's weights).
    base = model.evaluate()
    print(f"test accuracy {base['accuracy']:.4f} on {base['scored']} answers (loss {base['loss']:.4f})")
    wo = model.parameter(f"layers.{layer}.mixer.wo")
    d_head = wo.shape[0] // heads
    for h in range(heads):
        rows = slice(h * d_head, (h + 1) * d_head)
        saved = wo[rows].copy()
        wo[rows] = 0
        ablated = model.evaluate()
        wo[rows] = saved
        print(f"  without layer {layer} head {h}: accuracy {ablated['accuracy']:.4f} "
              f"({ablated['accuracy'] - base['accuracy']:+.4f}), loss {ablated['loss']:.4f}")
    saved = wo.copy()
    wo[:] = 0
    ablated = model.evaluate()
    wo[:] = saved
    print(f"  without all {heads} heads of layer {layer}: accuracy {ablated['accuracy']:.4f}, loss {ablated['loss']:.4f}")
    restored = model.evaluate()
    assert restored["accuracy"] == base["accuracy"], "restoring the rows restores the model"


if __name__ == "__main__":
    main()
