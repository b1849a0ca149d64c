"""The Python bindings against the CLI and against numpy (pytest; CTest runs it with PYTHONPATH=build/python and
MIXLAB_BINARY=build/mixlab).

One small run is trained once by the CLI (softmax attention, no positional encoding, step-0 and final checkpoints)
and read from both sides."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import mixlab

MIXLAB = os.environ.get("MIXLAB_BINARY", str(pathlib.Path(__file__).resolve().parents[2] / "build" / "mixlab"))
RUN_FLAGS = {"task": "mqar", "mixer": "softmax", "pos": "none", "d-model": 32, "softmax.n-heads": 2, "steps": 60,
             "batch": 16, "train-len": 32, "eval-lens": "32,64", "threads": 1, "log-every": 1, "eval-every": 30,
             "snapshot-every": 60, "val-answers": 64, "test-answers": 256}


def cli(*args, check=True):
    p = subprocess.run([MIXLAB, *map(str, args)], capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"mixlab {' '.join(map(str, args))} exited {p.returncode}: {p.stderr[-2000:]}")
    return p


def flag_list(config):
    return [x for k, v in config.items() for x in (f"--{k}", str(v))]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bindings") / "run"
    cli("train", *flag_list(RUN_FLAGS), "--out", out)
    return out


def without_timings(lines):
    return [{k: v for k, v in line.items() if k != "tokens_per_s"} for line in lines]


def tensors(path):
    raw = pathlib.Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    return {k: raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in header.items()
            if k != "__metadata__"}


def test_evaluation_and_logits_equal_the_cli(run_dir, tmp_path):
    """`mixlab eval` and Model.evaluate score the same set to the same bits; a numpy cross-entropy over
    Model.forward's logits on the test stream's sequences (tasks.stream, batch 1) gives the CLI's loss."""
    cli("eval", "--checkpoint", run_dir / "model.safetensors", "--eval-lens", "32", "--threads", "1",
        "--out", tmp_path / "eval.json")
    ours = json.loads((tmp_path / "eval.json").read_text())["test"]["32"]
    model = mixlab.load(run_dir / "model.safetensors", threads=1)
    theirs = model.evaluate(32)
    assert (theirs["loss"], theirs["accuracy"], theirs["correct"], theirs["scored"]) == \
           (ours["loss"], ours["accuracy"], ours["correct"], ours["scored"])

    stream = mixlab.tasks.stream("mqar", length=32, batch=1, seed=0, split="test")
    nll, correct, scored = 0.0, 0, 0
    while scored < RUN_FLAGS["test-answers"]:
        b = next(stream)
        logits = model.forward(b["tokens"])[0].astype(np.float64)
        logp = logits - logits.max(-1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
        for t in np.nonzero(b["mask"][0])[0]:
            nll -= logp[t, b["targets"][0, t]]
            correct += int(np.argmax(logits[t]) == b["targets"][0, t])
            scored += 1
    assert scored == ours["scored"] and correct == ours["correct"]
    assert nll / scored == pytest.approx(ours["loss"], rel=1e-5)


def test_forward_equals_numpy_attention(run_dir):
    """Layer 0's mixer output from Model.forward equals softmax attention recomputed in numpy from the parameters:
    LayerNorm of the residual stream, Q K V projections, causal softmax(q k^T / sqrt(dh)) per head, output projection."""
    model = mixlab.load(run_dir / "model.safetensors", threads=1)
    p = model.parameters()
    tokens = mixlab.tasks.sample("mqar", length=32, batch=2, seed=3, split="test")["tokens"]
    out = model.forward(tokens, residuals=True)
    x = out["residuals"][0].astype(np.float64)
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    h = (x - mean) / np.sqrt(var + 1e-5) * p["layers.0.norm1.weight"] + p["layers.0.norm1.bias"]
    q, k, v = (h @ p[f"layers.0.mixer.{w}"] for w in ("wq", "wk", "wv"))
    B, T, D = q.shape
    H = 2
    dh = D // H
    q, k, v = (a.reshape(B, T, H, dh).transpose(0, 2, 1, 3) for a in (q, k, v))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh)
    scores[:, :, np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] = -np.inf
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    o = (weights @ v).transpose(0, 2, 1, 3).reshape(B, T, D)
    expected = o @ p["layers.0.mixer.wo"]
    assert np.abs(out["mixer_outputs"][0] - expected).max() < 1e-5 * max(1.0, np.abs(expected).max())
    assert np.allclose(out["residuals"][1] - out["residuals"][0], 0) is False  # the block changed the stream
    # the maps are those weights
    maps = model.mixing(tokens[0], 0)
    assert np.abs(maps - weights[0]).max() < 1e-5


def test_mixing_maps_equal_analyze(run_dir, tmp_path):
    """Model.mixing on the first test sequence (tasks.sample, batch 1) reproduces analyze's maps in analysis.json."""
    cli("analyze", run_dir / "model.safetensors", "--out", tmp_path / "analysis", "--plots", "false",
        "--threads", "1")
    analysis = json.loads((tmp_path / "analysis" / "analysis.json").read_text())
    model = mixlab.load(run_dir / "model.safetensors", threads=1)
    T = analysis["length"]
    tokens = mixlab.tasks.sample("mqar", length=T, batch=1, seed=0, split="test")["tokens"][0]
    for layer, layer_maps in enumerate(analysis["maps"]):
        ours = model.mixing(tokens, layer)
        theirs = np.array(layer_maps, dtype=np.float32)
        n = theirs.shape[-1]
        assert ours.shape[0] == theirs.shape[0]
        assert np.abs(ours[:, :n, :n] - theirs).max() < 1e-6


def test_task_stream_is_what_training_drew(run_dir):
    """Batch 0 of tasks.stream(train split) scored by the step-0 snapshot gives the loss metrics.jsonl logged for step
    1 (log-every 1), to the bit: the same tokens, targets and mask as the trainer's first batch."""
    first = mixlab.read_metrics(run_dir)[0]
    assert first["step"] == 1
    snapshot = mixlab.load(run_dir / "snapshots" / "step_00000000.safetensors", threads=1)
    b = mixlab.tasks.sample("mqar", length=32, batch=16, seed=0, split="train")
    assert np.float32(snapshot.loss(b["tokens"], b["targets"], b["mask"])) == np.float32(first["loss"])
    other = mixlab.tasks.sample("mqar", length=32, batch=16, seed=1, split="train")
    assert np.float32(snapshot.loss(other["tokens"], other["targets"], other["mask"])) != np.float32(first["loss"])


def test_training_from_python_is_bit_identical_to_the_cli(run_dir, tmp_path):
    run = mixlab.train({**RUN_FLAGS, "out": str(tmp_path / "py")})
    assert without_timings(run.metrics) == without_timings(mixlab.read_metrics(run_dir))
    assert tensors(pathlib.Path(run.dir) / "model.safetensors") == tensors(run_dir / "model.safetensors")
    assert run.results["test"] == mixlab.read_results(run_dir)["test"]


def test_compare_from_python(tmp_path):
    experiment = mixlab.compare({"tasks": "mqar", "mixers": "softmax,gla", "steps": 20, "batch": 16, "train-len": 32,
                                 "eval-lens": [32], "d-model": 32, "threads": 1, "plots": False, "analyze": False,
                                 "out": str(tmp_path / "cmp")})
    assert pathlib.Path(experiment.report).exists()
    assert len(experiment.runs) == 2 and all(r.results["steps_done"] == 20 for r in experiment.runs)


def test_bad_input_raises_value_error_with_the_cli_message(run_dir, tmp_path):
    p = cli("train", "--mixer", "nonsense", "--out", tmp_path / "x", check=False)
    with pytest.raises(ValueError) as error:
        mixlab.train({"mixer": "nonsense", "out": str(tmp_path / "y")})
    assert p.returncode == 2 and p.stderr.strip() == "mixlab train: " + str(error.value)
    model = mixlab.load(run_dir / "model.safetensors")
    for call in (lambda: mixlab.load(tmp_path / "missing.safetensors"), lambda: model.forward([[99]]),
                 lambda: model.mixing([1, 2, 3], 7), lambda: model.parameter("no.such"),
                 lambda: mixlab.tasks.sample("mqar", length=1, batch=1), lambda: model.evaluate(split="train")):
        with pytest.raises(ValueError):
            call()


def test_parameters_are_writable_views(run_dir):
    model = mixlab.load(run_dir / "model.safetensors", threads=1)
    before = model.evaluate(32)["loss"]
    wo = model.parameter("layers.1.mixer.wo")
    assert not wo.flags["OWNDATA"] and wo.flags["WRITEABLE"]
    wo[:16] = 0  # head 0 of layer 1 (d_head 16) removed
    assert np.all(model.parameter("layers.1.mixer.wo")[:16] == 0)
    assert model.evaluate(32)["loss"] != before


def test_generate_matches_the_cli(run_dir):
    model = mixlab.load(run_dir / "model.safetensors", threads=1)
    p = cli("generate", run_dir / "model.safetensors", "--prompt-tokens", "1,2,3,4", "--tokens", "8", "--threads",
            "1")
    generated = model.generate([1, 2, 3, 4], 8)
    assert len(generated) == 8
    assert " ".join(map(str, generated)) in p.stdout


def test_listing_names_every_mixer_and_task():
    names = {m["name"] for m in mixlab.mixers("sequence")}
    assert names == set(cli("list", "--names", "sequence").stdout.split())
    softmax = next(m for m in mixlab.mixers() if m["name"] == "softmax")
    assert any(o["name"] == "n-heads" and o["default"] for o in softmax["options"])
    assert set(mixlab.tasks.names()) == set(cli("list", "--names", "task").stdout.split())
    assert {t["name"] for t in mixlab.list()["tasks"]} == set(mixlab.tasks.names())


def test_ctrl_c_stops_training_cleanly(tmp_path):
    """SIGINT during mixlab.train: KeyboardInterrupt at a step boundary, the last checkpoint intact, resume finishes."""
    out = tmp_path / "interrupted"
    config = {**RUN_FLAGS, "steps": 100000, "eval-every": 20, "out": str(out)}
    script = f"import mixlab\ntry:\n    mixlab.train({config!r})\nexcept KeyboardInterrupt:\n    print('stopped')\n"
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=os.environ)
    deadline = time.time() + 120
    while not (out / "model.safetensors").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    stdout, _ = child.communicate(timeout=60)
    assert child.returncode == 0 and "stopped" in stdout
    last_step = mixlab.read_metrics(out)[-1]["step"]
    assert 20 <= last_step < 100000
    resumed = mixlab.train({**config, "steps": last_step + 20, "resume": True})
    assert resumed.results["resumed_from"] >= 20 and resumed.results["steps_done"] == last_step + 20
