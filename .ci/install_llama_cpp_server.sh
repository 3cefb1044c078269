#!/usr/bin/env bash
# Installs llama-cpp-python's OpenAI-compatible server into the active venv.
#
# Why a script: the package ships only as an sdist, and compiling llama.cpp
# takes many minutes on a 2-core CI machine. The wheel is built once into a
# cache directory and reused by later runs on the same machine; on a fresh
# machine it is built again.
#
# Portability: GGML_NATIVE=OFF stops -march=native, so the binary does not pick
# up instructions of the build machine (AVX-512 on a newer host would crash on
# an AVX2-only runner). AVX, AVX2, FMA, F16C and BMI2 are switched on by hand:
# that is the x86-64-v3 level every CI machine here has. Checked on the built 0.3.36 wheel:
# `objdump -d llama_cpp/lib/libggml-cpu.so | grep -c zmm` is 0 (no AVX-512), ymm (AVX2) is used.
# Measured: 1481 s to build on this project's 2-core machine under load; 6 s to reinstall from cache.
# LLAVA_BUILD=OFF skips the multimodal library (imported lazily, never used).
#
# Usage: . .venv/bin/activate && .ci/install_llama_cpp_server.sh
# Env:   SPECFUSE_WHEEL_CACHE (default ~/.cache/specfuse/wheels)
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE="${SPECFUSE_WHEEL_CACHE:-$HOME/.cache/specfuse/wheels}"
mkdir -p "$CACHE"

wheel="$(ls "$CACHE"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -n1 || true)"
if [[ -z "$wheel" ]]; then
    echo "building llama-cpp-python $VERSION (slow: compiles llama.cpp)" >&2
    start=$(date +%s)
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        pip wheel --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -w "$CACHE"
    echo "built in $(( $(date +%s) - start )) s" >&2
    wheel="$(ls "$CACHE"/llama_cpp_python-"$VERSION"-*.whl | head -n1)"
fi

# The wheel itself carries no dependencies (built with --no-deps): install the
# runtime and server dependencies explicitly, then the cached wheel.
pip install "numpy>=1.20" "diskcache>=5.6.1" "jinja2>=2.11.3" "typing-extensions>=4.5" \
    "uvicorn>=0.22" "fastapi>=0.100" "pydantic-settings>=2.0.1" "sse-starlette>=1.6.1" \
    "starlette-context>=0.3.6,<0.4" "PyYAML>=5.1"
pip install --no-deps "$wheel"
python -c "import llama_cpp, llama_cpp.server.app; print('llama-cpp-python', llama_cpp.__version__)"
