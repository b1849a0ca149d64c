"""mixlab from Python: the C++ engine (the same code as the CLI) with numpy arrays in and out.

    import sys; sys.path.insert(0, "build/python")   # or PYTHONPATH=build/python
    import mixlab
    model = mixlab.load("runs/compare/<run>/model.safetensors")
    logits = model.forward(tokens)                   # (B, T, V)
    maps = model.mixing(tokens[0], layer=1)          # (heads, T, T), rows summing to 1
    model.parameter("layers.1.mixer.wo")[:16] = 0    # a writable view of the model's own weights
    print(model.evaluate())                          # the run's task, the set `mixlab eval` scores

Bad input raises ValueError with the CLI's one-line message. Computation releases the GIL; Ctrl-C during train() or
compare() stops at the next step boundary (the run directory keeps its last checkpoint; resume=True continues it)
and raises KeyboardInterrupt.
"""
import builtins
import json
import os

import numpy as np

from . import _core

__all__ = ["load", "Model", "tasks", "train", "compare", "read_metrics", "read_results", "mixers", "list"]


def _flags(config):
    """{"d-model": 64, "mixer": "gla", "eval_lens": [64, 128]} -> ["--d-model", "64", ...] (underscores become dashes,
    lists are comma-separated, booleans true/false): the CLI's flags, so the same names and checks apply."""
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict of flag names to values, not {type(config).__name__}")
    flags = []
    for name, value in config.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (builtins.list, tuple)):
            text = ",".join(str(v) for v in value)
        else:
            text = str(value)
        flags += ["--" + str(name).replace("_", "-"), text]
    return flags


class Model:
    """A trained checkpoint (RUN/model.safetensors or a snapshot) in memory."""

    def __init__(self, checkpoint, threads=2):
        self._model = _core.Model(os.fspath(checkpoint), int(threads))
        self.config = json.loads(self._model.config_json)
        self.step = self._model.step
        self.vocab = self._model.vocab
        self.n_layers = self._model.n_layers

    def parameter_names(self):
        return self._model.parameter_names()

    def parameter(self, name):
        """The parameter as a numpy view of the model's own buffer: writing to it changes the model."""
        return self._model.parameter(name)

    def parameters(self):
        """Every parameter by name (views, as parameter())."""
        return {name: self._model.parameter(name) for name in self._model.parameter_names()}

    def forward(self, tokens, residuals=False):
        """Logits (B, T, V) for tokens (B, T) or (T,). With residuals=True a dict: logits, residuals (n_layers + 1
        arrays (B, T, D): the stream entering each layer, then the last block's output) and mixer_outputs (one per
        layer, before it joins the stream)."""
        return self._model.forward(np.asarray(tokens, dtype=np.int32), bool(residuals))

    def loss(self, tokens, targets, mask=None):
        """Mean masked cross-entropy (plus auxiliary losses), as training computes it without dropout."""
        tokens = np.asarray(tokens, dtype=np.int32)
        mask = np.ones(tokens.shape, dtype=np.float32) if mask is None else np.asarray(mask, dtype=np.float32)
        return self._model.loss(tokens, np.asarray(targets, dtype=np.int32), mask)

    def mixing(self, tokens, layer, normalized=True):
        """Layer `layer`'s mixing maps on one sequence: (heads or channel groups, T, T); row t is how position t reads
        the positions <= t. normalized=True scales |rows| to sum to 1, as `mixlab analyze` does."""
        return self._model.mixing(np.asarray(tokens, dtype=np.int32), int(layer), bool(normalized))

    def generate(self, prompt, n_new, temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.0,
                 no_repeat_ngram=0, beam_width=0, length_alpha=0.0, seed=0):
        """The tokens generated after `prompt` with `mixlab generate`'s strategies (greedy when temperature is 0)."""
        s = _core.DecodeSettings()
        s.temperature, s.top_k, s.top_p = float(temperature), int(top_k), float(top_p)
        s.repetition_penalty, s.no_repeat_ngram = float(repetition_penalty), int(no_repeat_ngram)
        s.beam_width, s.length_alpha, s.seed = int(beam_width), float(length_alpha), int(seed)
        return self._model.generate([int(t) for t in prompt], int(n_new), s)

    def evaluate(self, length=0, answers=0, split="test"):
        """The run's task at `length` (0 = the training length) on the fixed set `mixlab eval` scores: loss, accuracy,
        its 95% interval, counts and the majority baseline."""
        return self._model.evaluate(int(length), int(answers), split)


def load(checkpoint, threads=2):
    """A checkpoint as a Model (threads: OpenMP threads of its computations)."""
    return Model(checkpoint, threads)


class _Tasks:
    """Every registered task's seeded batches: tasks.stream("mqar", length=64, batch=32, seed=0) yields the batches
    the trainer draws (batch i of the train split is step i's); the validation and test splits with batch=1 yield the
    sequences `mixlab eval` scores, in order."""

    def names(self):
        return _core.task_names()

    def info(self, name):
        return _core.task_info(name)

    def stream(self, name, length, batch, seed=0, split="train", **options):
        s = _core.TaskStream(name, {k.replace("_", "-"): str(v) for k, v in options.items()}, int(length),
                             int(batch), int(seed), split)
        while True:
            yield s.next()

    def sample(self, name, length, batch, seed=0, split="train", **options):
        """The first batch of stream(...)."""
        return next(self.stream(name, length, batch, seed, split, **options))


tasks = _Tasks()


def read_metrics(run_dir):
    """RUN/metrics.jsonl as a list of dicts (training lines and validation lines, in order)."""
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_results(run_dir):
    """RUN/results.json as a dict."""
    with open(os.path.join(run_dir, "results.json")) as f:
        return json.load(f)


class Run:
    """A run directory with its metrics and results."""

    def __init__(self, directory):
        self.dir = directory

    @property
    def metrics(self):
        return read_metrics(self.dir)

    @property
    def results(self):
        return read_results(self.dir)

    def load(self, threads=2):
        return load(os.path.join(self.dir, "model.safetensors"), threads)

    def __repr__(self):
        return f"mixlab.Run({self.dir!r})"


def train(config):
    """Trains one run as `mixlab train` does with the same flags (a dict: {"task": "mqar", "mixer": "gla",
    "steps": 300, "out": "runs/x"}); returns the Run."""
    directory = _core.train(_flags(config))
    return Run(directory) if directory else None


class Experiment:
    """A compare's directory: report.md, results.csv, one Run per trained configuration."""

    def __init__(self, directory):
        self.dir = directory

    @property
    def runs(self):
        with open(os.path.join(self.dir, "experiment.json")) as f:
            return [Run(spec["train"]["out"]) for spec in json.load(f)]

    @property
    def report(self):
        return os.path.join(self.dir, "report.md")

    def __repr__(self):
        return f"mixlab.Experiment({self.dir!r})"


def compare(config):
    """Runs `mixlab compare` with the same flags (a dict; {"preset": "zoology-mqar"} works); returns the Experiment."""
    flags = _flags(config)
    if _core.compare(flags) != 0:
        raise RuntimeError("mixlab compare failed")
    out = config.get("out") or (f"runs/{config['preset']}" if config.get("preset") else "runs/compare")
    return Experiment(out)


def mixers(kind=None):
    """Every registered mixer with its options and defaults: [{"name", "kind", "help", "positional", "options":
    [{"name", "type", "default", "help", "allowed"}]}], sequence mixers first; kind = "sequence" or "channel" to
    choose one kind."""
    kinds = [kind] if kind else ["sequence", "channel"]
    return [_core.mixer_info(name, k) for k in kinds for name in _core.mixer_names(k)]


def list():  # noqa: A001 - the CLI's `mixlab list`
    """{"mixers": mixers(), "tasks": [task info with options]}: what `mixlab list` prints."""
    return {"mixers": mixers(), "tasks": [_core.task_info(name) for name in _core.task_names()]}
