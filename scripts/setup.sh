#!/usr/bin/env bash
# Installs exactly the Debian packages mixlab needs, skipping those already installed. Idempotent.
#   scripts/setup.sh          build + test + plot dependencies
#   scripts/setup.sh --torch  also python3-torch (only needed to regenerate parity fixtures / run the peer)
set -euo pipefail
# ocl-icd-opencl-dev: Debian's oneDNN CMake package requires OpenCL (its GPU runtime), even for CPU use.
# libopenmpi-dev, openmpi-bin: data-parallel training and distributed sweeps under mpirun (tests run mpirun -np 2).
# pybind11-dev, python3-dev, python3-pytest: the Python package (build/python/mixlab) and its tests.
# chromium: the test that loads report.html and analysis.html in a headless browser.
packages=(build-essential cmake libeigen3-dev libdnnl-dev ocl-icd-opencl-dev libboost-program-options-dev
          libbenchmark-dev libgtest-dev nlohmann-json3-dev python3-matplotlib python3-numpy fortunes
          libopenmpi-dev openmpi-bin pybind11-dev python3-dev python3-pytest chromium)
# --torch: PyTorch for fixtures and the peer; OpenBLAS so it does not fall back to the reference BLAS.
[[ "${1:-}" == "--torch" ]] && packages+=(python3-torch libopenblas0-pthread)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""; [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all ${#packages[@]} packages present"
