#!/usr/bin/env python3
"""mixlab under mpirun (Open MPI), run by CTest as `mpi_test.py MIXLAB_BINARY CASE`.

Every case starts `mpirun --allow-run-as-root --oversubscribe -q -np 2` (CI runs as root on 2 cores) with a timeout, so
a rank left waiting in a collective fails the test instead of hanging it:

  data_parallel_equals_grad_accum   np 2 and --grad-accum 2 in one process: the same losses, gradient norms,
                                    validation and test figures and checkpoint tensors, bit for bit (softmax with
                                    attention dropout, and softmax + MoE); and both within float32 rounding of one
                                    plain batch
  resume_across_rank_counts         a run trained on 2 ranks continues in one process with --grad-accum 2 (and back)
                                    exactly as it would have on the same count
  distributed_compare_equals_serial a compare over 2 ranks trains every run bit-identically to the serial compare and
                                    writes the same tables once; launched again after a run's results are lost (a node
                                    died), it trains that run alone
  errors_end_every_rank             a batch that does not divide by the ranks, a command that runs in one process only,
                                    and a directory rank 0 cannot create: one line, a non-zero exit, no hang
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-q", "-np", "2"]
TIMEOUT = 300
TINY = ["--train-len", "32", "--eval-lens", "32,64", "--threads", "1", "--d-model", "32", "--batch", "16",
        "--eval-every", "10", "--log-every", "5", "--val-answers", "128", "--test-answers", "256"]


def run(cmd, cwd, expect_ok=True):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    if expect_ok and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return p


def tensors(path):
    """The tensor bytes of a safetensors file, without its header (which names the run directory)."""
    raw = pathlib.Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items() if k != "__metadata__"}


def floats(blob):
    import struct
    return struct.unpack(f"<{len(blob) // 4}f", blob)


def training_lines(run_dir):
    """Every metrics line without its wall-clock figures."""
    lines = []
    for line in (pathlib.Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        j = json.loads(line)
        j.pop("tokens_per_s", None)
        lines.append(j)
    return lines


def figures(run_dir):
    r = json.loads((pathlib.Path(run_dir) / "results.json").read_text())
    return {k: r[k] for k in ("test", "validation", "steps_done", "steps_to_99", "mean_train_loss", "sweep")}


def assert_same_run(a, b):
    assert training_lines(a) == training_lines(b), f"metrics of {a} and {b} differ"
    assert figures(a) == figures(b), f"results of {a} and {b} differ"
    ta, tb = tensors(f"{a}/model.safetensors"), tensors(f"{b}/model.safetensors")
    assert ta == tb, f"checkpoint tensors of {a} and {b} differ: " + ", ".join(k for k in ta if ta[k] != tb.get(k))


def max_relative_difference(a, b):
    """Largest |x - y| / (max |x| over the tensor) over every parameter of two checkpoints."""
    worst = 0.0
    ta, tb = tensors(f"{a}/model.safetensors"), tensors(f"{b}/model.safetensors")
    for name in ta:
        x, y = floats(ta[name]), floats(tb[name])
        scale = max(max(abs(v) for v in x), 1e-12)
        worst = max(worst, max(abs(p - q) for p, q in zip(x, y)) / scale)
    return worst


def data_parallel_equals_grad_accum(mixlab, tmp):
    for name, model in [("softmax", ["--mixer", "softmax:dropout=0.1"]), ("moe", ["--channel", "moe"])]:
        args = [mixlab, "train", "--task", "mqar", "--steps", "20", *TINY, *model]
        run(MPIRUN + args + ["--out", f"{name}-np2"], tmp)
        run(args + ["--grad-accum", "2", "--out", f"{name}-ga2"], tmp)
        assert_same_run(f"{tmp}/{name}-np2", f"{tmp}/{name}-ga2")
        run(args + ["--out", f"{name}-plain"], tmp)
        diff = max_relative_difference(f"{tmp}/{name}-np2", f"{tmp}/{name}-plain")
        print(f"{name}: np 2 == --grad-accum 2 bit for bit; largest parameter difference to one plain batch after 20 "
              f"steps: {diff:.2e} of the tensor's largest entry")
        if name == "softmax":  # MoE's auxiliary losses and capacity are per micro-batch: not the plain batch's
            assert 0 < diff < 1e-4, diff


def resume_across_rank_counts(mixlab, tmp):
    args = [mixlab, "train", "--task", "mqar", *TINY]
    # 10 steps, then 10 more: on 2 ranks then in one process, and in one process throughout
    run(MPIRUN + args + ["--steps", "10", "--out", "switched"], tmp)
    run(args + ["--steps", "20", "--grad-accum", "2", "--resume", "true", "--out", "switched"], tmp)
    run(args + ["--steps", "10", "--grad-accum", "2", "--out", "same"], tmp)
    run(args + ["--steps", "20", "--grad-accum", "2", "--resume", "true", "--out", "same"], tmp)
    assert_same_run(f"{tmp}/switched", f"{tmp}/same")
    # and back: one process first, 2 ranks after
    run(args + ["--steps", "10", "--grad-accum", "2", "--out", "back"], tmp)
    run(MPIRUN + args + ["--steps", "20", "--resume", "true", "--out", "back"], tmp)
    assert_same_run(f"{tmp}/back", f"{tmp}/same")
    print("resumed across 2 ranks <-> 1 process x 2 micro-batches: bit-identical to an unchanged count")


def distributed_compare_equals_serial(mixlab, tmp):
    args = [mixlab, "compare", "--tasks", "mqar", "--mixers", "softmax,gla", "--seeds", "2", "--steps", "20",
            "--plots", "false", *TINY]
    run(args + ["--out", "serial"], tmp)
    p = run(MPIRUN + args + ["--out", "parallel"], tmp)
    assert [line.split(":")[0] for line in p.stdout.splitlines()] == ["report", "interactive report"], p.stdout
    runs = sorted(d.name for d in pathlib.Path(tmp, "serial").iterdir() if d.is_dir())
    assert len(runs) == 4 and runs == sorted(d.name for d in pathlib.Path(tmp, "parallel").iterdir() if d.is_dir())
    for name in runs:
        assert_same_run(f"{tmp}/serial/{name}", f"{tmp}/parallel/{name}")
        assert json.loads(pathlib.Path(tmp, "parallel", name, "analysis", "analysis.json").read_text())["heads"]

    def accuracy_rows(path):  # results.csv without wall-clock figures
        drop = ("tokens_per_s", "train_seconds", "load_average", "peak_rss_mb")
        return [row for row in pathlib.Path(path).read_text().splitlines() if not any(d in row for d in drop)]

    assert accuracy_rows(f"{tmp}/serial/results.csv") == accuracy_rows(f"{tmp}/parallel/results.csv")
    # a node died with one run unfinished: launching the same command again trains that run only
    lost = pathlib.Path(tmp, "parallel", runs[1])
    (lost / "results.json").unlink()
    p = run(MPIRUN + args + ["--out", "parallel"], tmp)
    assert p.stderr.count("finished earlier with the same config, skipped") == 3, p.stderr
    assert_same_run(f"{tmp}/serial/{runs[1]}", str(lost))
    print("compare over 2 ranks: 4 runs bit-identical to the serial compare; the relaunch trained the 1 lost run")


def errors_end_every_rank(mixlab, tmp):
    cases = [
        ([mixlab, "train", "--steps", "5", "--batch", "15", "--threads", "1", "--out", "odd"], "does not divide"),
        ([mixlab, "analyze", "--checkpoint", "missing.safetensors"], "runs in one process"),
        ([mixlab, "train", "--steps", "5", "--batch", "16", "--threads", "1", "--out", "/proc/mixlab-test"],
         "cannot create directory"),
    ]
    for cmd, expected in cases:
        p = run(MPIRUN + cmd, tmp, expect_ok=False)
        lines = [l for l in p.stderr.splitlines() if l.startswith("mixlab")]
        assert p.returncode != 0, f"{cmd}: exit 0"
        assert len(lines) == 1 and expected in lines[0], f"{cmd}: expected one line with '{expected}':\n{p.stderr}"
        print(f"{cmd[1]}: exit {p.returncode}: {lines[0]}")


CASES = {f.__name__: f for f in (data_parallel_equals_grad_accum, resume_across_rank_counts,
                                  distributed_compare_equals_serial, errors_end_every_rank)}

if __name__ == "__main__":
    binary, case = os.path.abspath(sys.argv[1]), sys.argv[2]
    if shutil.which("mpirun") is None:
        sys.exit("mpirun not found: install openmpi-bin (scripts/setup.sh does)")
    with tempfile.TemporaryDirectory() as tmp:
        CASES[case](binary, tmp)
