#!/usr/bin/env python3
"""report.html and analysis.html in a real browser (headless Chromium, Debian `chromium`), run by CTest as
`html_report_test.py MIXLAB_BINARY SCREENSHOT_DIR`.

A small compare (softmax and gla on MQAR, analysed) writes report.html and one analysis.html per run; an analysis of
the softmax run at T = 512 writes a large one. Each page is loaded with #selftest, which hovers a query of the first
mixing map through a real mouse event and records what the page drew; the test asserts, from the DOM Chromium dumps:
no JavaScript error (window.onerror and console.error are both recorded), the map's pixel is the colour of its weight,
the hover tooltip names the hovered query, a header click sorted its table, and the canvases exist. It saves a
screenshot of each page with the hovered query to SCREENSHOT_DIR. Exit 77 (CTest: skipped) when Chromium is not
installed."""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def browser(exe, url, *flags):
    # --no-sandbox: CI runs as root; --disable-dev-shm-usage: containers often have a small /dev/shm
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", "--virtual-time-budget=5000", *flags, url], capture_output=True,
                          text=True, timeout=180)


def check_page(exe, page, screenshot):
    url = pathlib.Path(page).resolve().as_uri() + "#selftest"
    dom = browser(exe, url, "--dump-dom").stdout
    found = re.search(r'<pre id="selftest">([^<]*)</pre>', dom)
    assert found and found.group(1), f"{page}: the page did not run its self-test:\n{dom[-2000:]}"
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["errors"] == [], f"{page}: JavaScript errors: {result['errors']}"
    checks = result["checks"]
    for name in ("map_pixel_matches", "hover_tooltip", "sorted"):
        assert checks.get(name) is True, f"{page}: check {name} failed: {checks}"
    assert checks["canvases"] >= 3 and checks["tables"] >= 1, checks
    browser(exe, url, "--window-size=1300,1900", f"--screenshot={screenshot}")
    assert os.path.getsize(screenshot) > 10000, f"{screenshot} is empty"
    print(f"{page}: {os.path.getsize(page) / 1024:.0f} KB, checks {checks}, screenshot {screenshot}")


def main():
    mixlab, shots = sys.argv[1], pathlib.Path(sys.argv[2])
    exe = chromium()
    if exe is None:
        print("skipped: Chromium is not installed (scripts/setup.sh installs the Debian package `chromium`)")
        return SKIP
    shots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([mixlab, "compare", "--tasks", "mqar", "--mixers", "softmax,gla", "--steps", "60", "--batch",
                        "16", "--train-len", "32", "--eval-lens", "32,64", "--d-model", "32", "--threads", "1",
                        "--plots", "false", "--out", f"{tmp}/cmp"], check=True, capture_output=True, timeout=600)
        check_page(exe, f"{tmp}/cmp/report.html", shots / "report.png")
        runs = sorted(p.parent for p in pathlib.Path(tmp, "cmp").glob("*/analysis/analysis.html"))
        assert len(runs) == 2, runs
        for run in runs:
            check_page(exe, str(run / "analysis.html"), shots / f"analysis_{run.parent.name.split('-')[1]}.png")
        softmax = next(r for r in runs if "softmax" in r.parent.name)
        subprocess.run([mixlab, "analyze", str(softmax.parent / "model.safetensors"), "--length", "512", "--samples",
                        "2", "--plots", "false", "--threads", "1", "--out", f"{tmp}/long"], check=True,
                       capture_output=True, timeout=600)
        check_page(exe, f"{tmp}/long/analysis.html", shots / "analysis_T512.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
