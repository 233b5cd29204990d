#!/usr/bin/env bash
# Installs what `cargo build --features cuda|cudnn` needs from NVIDIA's PyPI wheels (no GPU, no
# driver, no root), then prints the environment to `eval`:
#
#   eval "$(scripts/cuda-toolkit.sh)"          # prefix ~/.cache/spat-cuda, or pass one as $1
#
# Why each step:
# * The wheels are pinned to the CUDA 13.0 line: candle embeds PTX that the driver compiles at load
#   time, and a driver rejects PTX from a newer nvcc (driver 580 = CUDA 13.0).
# * The wheels ship only versioned sonames (libcublas.so.13); the linker asks for libcublas.so.
# * No wheel ships libcuda (it comes with the driver), but candle links it: a stub library that
#   defines every driver entry point of cuda.h satisfies the linker. It must never be on
#   LD_LIBRARY_PATH at run time (every call would fail with CUDA_ERROR_STUB_LIBRARY).
# * Without a GPU, candle's kernel build cannot ask nvidia-smi for the compute capability:
#   CUDA_COMPUTE_CAP (default 90: H100/H200) says it.
# Environment: SPAT_CUDA_CUDNN=0 skips cuDNN (then only --features cuda links); PYTHON (python3).
set -euo pipefail

prefix="${1:-${SPAT_CUDA_PREFIX:-$HOME/.cache/spat-cuda}}"
python="${PYTHON:-python3}"
cap="${CUDA_COMPUTE_CAP:-90}"
wheels=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
  nvidia-cuda-nvrtc==13.0.88
  nvidia-curand==10.4.0.35
  nvidia-cublas==13.0.2.14
)
[ "${SPAT_CUDA_CUDNN:-1}" = 0 ] || wheels+=(nvidia-cudnn-cu13==9.13.0.50)

say() { echo "cuda-toolkit: $*" >&2; }

mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
site="$prefix/site"
want="$(printf '%s\n' "${wheels[@]}")"
if [ "$(cat "$prefix/.installed" 2>/dev/null)" != "$want" ] || [ ! -x "$site/nvidia/cu13/bin/nvcc" ]; then
  say "installing ${#wheels[@]} wheels into $site (about 1 GB to download)"
  rm -rf "$site.partial"
  PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --disable-pip-version-check \
    --no-deps --no-compile --only-binary=:all: --target "$site.partial" "${wheels[@]}" >&2
  rm -rf "$site" && mv "$site.partial" "$site"
  echo "$want" > "$prefix/.installed"
fi

toolkit="$site/nvidia/cu13"
cudnn="$site/nvidia/cudnn"
for pair in libcudart.so:libcudart.so.13 libcublas.so:libcublas.so.13 \
  libcublasLt.so:libcublasLt.so.13 libcurand.so:libcurand.so.10 libnvrtc.so:libnvrtc.so.13; do
  [ -e "$toolkit/lib/${pair#*:}" ] && ln -sfn "${pair#*:}" "$toolkit/lib/${pair%%:*}"
done
[ -e "$cudnn/lib/libcudnn.so.9" ] && ln -sfn libcudnn.so.9 "$cudnn/lib/libcudnn.so"

stubs="$toolkit/lib/stubs"
if [ ! -f "$stubs/libcuda.so" ] || [ "$toolkit/include/cuda.h" -nt "$stubs/libcuda.so" ]; then
  say "building the link-time libcuda stub"
  mkdir -p "$stubs"
  work="$(mktemp -d)"
  # Every cu* identifier of the driver API headers becomes a function returning
  # CUDA_ERROR_STUB_LIBRARY (34); extra names (types, macros) are harmless.
  headers=("$toolkit/include/cuda.h")
  [ -f "$toolkit/include/cudaProfiler.h" ] && headers+=("$toolkit/include/cudaProfiler.h")
  cat "${headers[@]}" |
    grep -oE '\bcu[A-Z][A-Za-z0-9_]*\b' | sort -u |
    sed 's/.*/int &(void) { return 34; }/' > "$work/stub.c"
  ${CC:-cc} -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$work/stub.c"
  ln -sfn libcuda.so "$stubs/libcuda.so.1"
  rm -rf "$work"
fi

"$toolkit/bin/nvcc" --version | grep -q 'release 13.0' || { say "nvcc is not 13.0"; exit 1; }

link="$toolkit/lib:$stubs"
run="$toolkit/lib"
if [ -d "$cudnn/lib" ]; then
  link="$link:$cudnn/lib"
  run="$run:$cudnn/lib"
  echo "export CUDNN_LIB=\"$cudnn\""
fi
cat <<EOF
export PATH="$toolkit/bin:\${PATH}"
export CUDA_HOME="$toolkit" CUDA_PATH="$toolkit" CUDA_ROOT="$toolkit"
export CUDARC_CUDA_VERSION=13000
export CUDA_COMPUTE_CAP=$cap
export LIBRARY_PATH="$link\${LIBRARY_PATH:+:\${LIBRARY_PATH}}"
# to run the binary on a machine without CUDA 13 libraries of its own:
# export LD_LIBRARY_PATH="$run\${LD_LIBRARY_PATH:+:\${LD_LIBRARY_PATH}}"
EOF
say "ready: nvcc 13.0, CUDA_COMPUTE_CAP=$cap"
