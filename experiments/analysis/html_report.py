#!/usr/bin/env python3
"""Interactive, self-contained HTML pages (inline JS and CSS, data embedded as JSON; no network):

  html_report.py DIR analysis   DIR/analysis.json + DIR/samples.json        -> DIR/analysis.html
  html_report.py DIR report     a compare directory (runs.json, each run's metrics.jsonl, results.json and
                                analysis/)                                 -> DIR/report.html

analysis.html: the mixing maps of every layer and head over the tokens of the analysed samples (hover a query to see
where it reads from, a key to see who reads it; pick the sample), the head scores as a layers x heads heat map that
selects the map, single-head ablations, the pruning curve and the logit lens. report.html: per task the comparison
table (sortable), training loss and test accuracy against length (hover for values, toggle variants), then every run's
analysis as above. Standard library only; the page is report_template.html with the data filled in."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCORES = ["previous_token", "duplicate_token", "induction", "answer_induction", "entropy", "entropy_ratio",
          "mean_distance", "sink_mass"]


def read_json(path):
    with open(path) as f:
        return json.load(f)


def run_analysis(directory):
    """One analysis directory as the page's run object, or None when it holds no analysis."""
    path = os.path.join(directory, "analysis.json")
    if not os.path.exists(path):
        return None
    a = read_json(path)
    samples_path = os.path.join(directory, "samples.json")
    samples = read_json(samples_path)["samples"] if os.path.exists(samples_path) else []
    return {"model": a.get("model", ""), "task": a.get("task", ""), "length": a["length"], "baseline": a["baseline"],
            "heads": a["heads"], "score_names": [s for s in SCORES if a["heads"] and s in a["heads"][0]],
            "samples": samples, "pruning": a.get("pruning", []), "logit_lens": a.get("logit_lens", []),
            "skipped": a.get("skipped", [])}


def training_loss(run_dir):
    points = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            j = json.loads(line)
            if "loss" in j:
                points.append([j["step"], j["loss"]])
    return points


def report_tasks(runs):
    """Per task: the table (one row per run) and the curves of the runs whose learning rate was selected."""
    tasks = {}
    for r in runs:
        res = r["results"]
        lengths = sorted(int(k) for k in res["test"])
        t = tasks.setdefault(r["task"], {"name": r["task"], "lengths": lengths, "rows": [], "loss": [],
                                         "accuracy": []})
        row = [r["label"], f"s{r['seed']} lr {r['lr']:g}" + (" (selected)" if r["selected"] else "")]
        row += [res["test"].get(str(n), {}).get("accuracy") for n in t["lengths"]]
        row += [res["steps_to_99"] if res["steps_to_99"] >= 0 else None, res["mean_train_loss"], res["params"],
                round(res["tokens_per_second"])]
        t["rows"].append(row)
        if r["selected"]:
            name = f"{r['label']} s{r['seed']}"
            t["loss"].append({"name": name, "points": training_loss(r["run_dir"])})
            t["accuracy"].append({"name": name, "points": [[n, res["test"][str(n)]["accuracy"]] for n in lengths]})
    for t in tasks.values():
        t["columns"] = ["variant", "seed, lr"] + [f"test acc @{n}" for n in t["lengths"]] + [
            "steps to 99%", "mean train loss", "params", "tokens/s"]
    return list(tasks.values())


def page(title, data):
    with open(os.path.join(HERE, "report_template.html")) as f:
        template = f.read()
    # "</" would end the <script> element holding the data early.
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return template.replace("__TITLE__", title).replace("__DATA__", text)


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("analysis", "report"):
        sys.exit("usage: html_report.py DIR analysis|report")
    directory, kind = sys.argv[1], sys.argv[2]
    if kind == "analysis":
        run = run_analysis(directory)
        if run is None:
            sys.exit(f"html_report.py: no analysis.json in {directory}")
        data = {"kind": "analysis", "runs": [{"name": directory, "analysis": run}]}
        out = os.path.join(directory, "analysis.html")
        write(out, page(f"mixlab analysis: {run['model']} on {run['task']}", data))
    else:
        runs = read_json(os.path.join(directory, "runs.json"))
        for r in runs:
            r["results"] = read_json(os.path.join(r["run_dir"], "results.json"))
        data = {"kind": "report", "tasks": report_tasks(runs),
                "runs": [{"name": f"{r['task']} {r['label']} s{r['seed']} lr {r['lr']:g}",
                          "analysis": run_analysis(os.path.join(r["run_dir"], "analysis"))} for r in runs]}
        out = os.path.join(directory, "report.html")
        write(out, page(f"mixlab compare: {os.path.basename(os.path.abspath(directory))}", data))


if __name__ == "__main__":
    main()
