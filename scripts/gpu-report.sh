#!/usr/bin/env bash
# The GPU report: one prepared command (docs/gpu-report.md).
#
#   scripts/gpu-report.sh --prepare [--shared DIR]   here, with network: fill .gpu-report/
#   scripts/gpu-report.sh [--shared DIR] [--out DIR] on the device: from .gpu-report/ alone
#   scripts/gpu-report.sh --local [--shared DIR] [--out DIR]   here: tiny fixtures, CPU peer
#
# The device has no network and gets only the working tree plus carried ignored paths (64 MiB
# in all), so --prepare packs what the run needs into the git-ignored .gpu-report/: the Deno
# binary (xz), a DENO_DIR holding the engine's npm dependencies only (the benchmark peers'
# packages are hundreds of MiB, and the report does not use them), the Vulkan loader .debs
# (/work/.library/device/README.md), the fixture generator and the required conformance cases.
# Results go to $OUT (default results/gpu-report/): report.json, report.md, gpu-report.log.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUNDLE="${GPU_REPORT_BUNDLE:-$REPO/.gpu-report}"
WORK="${GPU_REPORT_WORK:-/tmp/gpu-report}"
LIMIT_BYTES=$((64 * 1024 * 1024))
# The peers' packages are left out of the report's import map (see above).
PEER_PACKAGES='onnxruntime|tensorflow'

mode=device
shared="${SHARED_DIR:-}"
out="${OUT:-$REPO/results/gpu-report}"
budget=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prepare) mode=prepare ;;
    --local) mode=local ;;
    --shared) shared="$2"; shift ;;
    --out) out="$2"; shift ;;
    --budget-s) budget="$2"; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "gpu-report.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "gpu-report: $*"; }

# xz where installed, else Python's lzma (the device image is not ours to install into).
unxz_to() {
  if command -v xz >/dev/null; then xz -dc "$1" >"$2"
  else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],"wb"))' "$1" "$2"; fi
}
untar_xz() {
  mkdir -p "$2"
  if command -v xz >/dev/null; then tar -xJf "$1" -C "$2"
  else python3 -c 'import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"; fi
}

prepare() {
  local deno_bin; deno_bin="$(command -v deno)" || { echo "gpu-report.sh: deno not on PATH" >&2; exit 2; }
  shared="${shared:-$REPO/../shared}"
  mkdir -p "$BUNDLE"
  grep -qx '/.gpu-report/' "$REPO/.gitignore" || log "warning: .gpu-report/ is not in .gitignore"
  log "deno $("$deno_bin" --version | head -1) -> deno.xz"
  xz -T0 -9 -c "$deno_bin" >"$BUNDLE/deno.xz"
  log "engine dependencies -> deno-dir.tar.xz"
  "$deno_bin" eval --quiet '
    const d = JSON.parse(Deno.readTextFileSync(Deno.args[0]));
    const peers = new RegExp(Deno.args[2]);
    const imports = Object.fromEntries(Object.entries(d.imports).filter(([k]) => !peers.test(k)));
    Deno.writeTextFileSync(Deno.args[1], JSON.stringify({ imports }, null, 1) + "\n");
  ' "$REPO/deno.json" "$BUNDLE/deno.json" "$PEER_PACKAGES"
  local dd; dd="$(mktemp -d)"
  rm -f "$BUNDLE/deno.lock"
  (cd "$REPO" && DENO_DIR="$dd" "$deno_bin" cache --quiet --config "$BUNDLE/deno.json" \
    --lock "$BUNDLE/deno.lock" scripts/gpu_report.ts)
  tar -C "$dd" -cJf "$BUNDLE/deno-dir.tar.xz" npm
  rm -rf "$dd"
  log "Vulkan loader packages -> gl/"
  rm -rf "$BUNDLE/gl"; mkdir -p "$BUNDLE/gl" /tmp/amd64/partial
  local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
  apt-get "${o[@]}" update -qq
  (cd "$BUNDLE/gl" && apt-get "${o[@]}" download -qq libvulkan1 libegl1 libglvnd0 libopengl0 \
    libgl1 libglx0 libgles2)
  log "fixture generator and required conformance cases"
  rm -rf "$BUNDLE/generator"; cp -r "$shared/fixtures/generator" "$BUNDLE/generator"
  rm -rf "$BUNDLE/generator/__pycache__"
  local t="$shared/onnx-backend-tests" lists=()
  for pair in required-node.txt:node required-pytorch-converted.txt:pytorch-converted; do
    local list="${pair%%:*}" dir="${pair#*:}"
    lists+=("$list")
    while read -r c; do [ -n "$c" ] && lists+=("$dir/$c"); done <"$t/$list"
  done
  tar -C "$t" -cJf "$BUNDLE/conformance.tar.xz" "${lists[@]}"
  local size; size=$(du -sb "$BUNDLE" | cut -f1)
  log "$(du -sh "$BUNDLE" | cut -f1) in $BUNDLE ($size bytes of the 64 MiB that may travel):"
  (cd "$BUNDLE" && du -sh ./* | sed 's/^/  /')
  if [ "$size" -gt "$LIMIT_BYTES" ]; then echo "gpu-report.sh: bundle over 64 MiB" >&2; exit 1; fi
}

# Deno from the bundle when there is one, else the one on PATH (here).
deno_cmd=()
find_deno() {
  if [ -f "$BUNDLE/deno.xz" ]; then
    mkdir -p "$WORK"
    [ -x "$WORK/deno" ] || { unxz_to "$BUNDLE/deno.xz" "$WORK/deno"; chmod +x "$WORK/deno"; }
    [ -d "$WORK/deno-dir/npm" ] || untar_xz "$BUNDLE/deno-dir.tar.xz" "$WORK/deno-dir"
    export DENO_DIR="$WORK/deno-dir" DENO_NO_UPDATE_CHECK=1
    deno_cmd=("$WORK/deno" run --cached-only --config "$BUNDLE/deno.json" --lock "$BUNDLE/deno.lock" -A)
  else
    command -v deno >/dev/null || { echo "gpu-report.sh: no deno (run --prepare first)" >&2; exit 2; }
    deno_cmd=(deno run -A)
  fi
}

# The loader from the carried .debs when the image has none (device README), and the NVIDIA ICD
# where the loader does not find a driver by itself.
vulkan_setup() {
  # Not `ldconfig -p | grep -q`: grep quitting early fails the pipeline under pipefail.
  if [[ "$(ldconfig -p 2>/dev/null)" != *libvulkan.so.1* ]]; then
    if compgen -G "$BUNDLE/gl/*.deb" >/dev/null; then
      for f in "$BUNDLE"/gl/*.deb; do dpkg -x "$f" /; done
      ldconfig
    else
      log "no libvulkan and no carried loader packages (run --prepare where apt-get works)"
    fi
  fi
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; fi
  local egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  if [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && [ -f "$egl" ]; then
    export __EGL_VENDOR_LIBRARY_FILENAMES="$egl"
  fi
}

# The device runs one command for at most 10 minutes: setup and model generation come out of
# that, and the measured sections get what is left (at most 8 minutes), with a minute to spare.
COMMAND_S=600
SPARE_S=60
run_device() {
  local start=$SECONDS
  mkdir -p "$out"
  vulkan_setup
  find_deno
  # Refuse a software adapter before spending minutes on model generation.
  set +e
  (cd "$REPO" && "${deno_cmd[@]}" scripts/gpu_report.ts --check-adapter)
  local rc=$?
  set -e
  [ "$rc" -eq 0 ] || exit "$rc"
  if [ -z "$shared" ]; then
    shared="$WORK/shared"
    [ -d "$shared/onnx-backend-tests" ] ||
      untar_xz "$BUNDLE/conformance.tar.xz" "$shared/onnx-backend-tests"
  fi
  local generator="$BUNDLE/generator"
  [ -d "$generator" ] || generator="$shared/fixtures/generator"
  local models="${FULL_MODELS_DIR:-$WORK/models}"
  if [ ! -f "$models/aux_resnet50/manifest.json" ]; then
    log "generating full-size models in $models"
    local t0=$SECONDS
    PYTHONUNBUFFERED=1 python3 "$REPO/scripts/gpu_report_export.py" "$generator" --full "$models"
    log "models generated in $((SECONDS - t0)) s"
  fi
  if [ -z "$budget" ]; then
    budget=$((COMMAND_S - SPARE_S - (SECONDS - start)))
    [ "$budget" -le 480 ] || budget=480
    log "$((SECONDS - start)) s of setup; $budget s for the report's sections"
  fi
  (cd "$REPO" && "${deno_cmd[@]}" scripts/gpu_report.ts --out "$out" --shared "$shared" \
    --models "$models" --generator "$generator" --python python3 --budget-s "$budget")
}

run_local() {
  shared="${shared:-$REPO/../shared}"
  find_deno
  (cd "$REPO" && "${deno_cmd[@]}" scripts/gpu_report.ts --local --out "$out" --shared "$shared" \
    ${budget:+--budget-s "$budget"})
}

case "$mode" in
  prepare) prepare ;;
  local) mkdir -p "$out"; run_local 2>&1 | tee "$out/gpu-report.log" ;;
  device) mkdir -p "$out"; set -o pipefail; run_device 2>&1 | tee "$out/gpu-report.log" ;;
esac
