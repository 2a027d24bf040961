#!/bin/sh
# Installs the Debian packages iapo needs to build, test and benchmark, and only
# those that are missing. Uses sudo when not root. Safe to run repeatedly.
#   scripts/install-deps.sh          build + run dependencies
#   scripts/install-deps.sh --test   also the test oracles (PyTorch, Node.js/npm),
#                                    the fuzzers' clang + libFuzzer + OpenMP and
#                                    Chromium (renders the HTML reports headless)
#   scripts/install-deps.sh --bench  also the benchmark's PyTorch peer (+ jemalloc)
set -eu

pkgs="build-essential pkg-config libopenblas0-openmp libopenblas-openmp-dev \
libcjson-dev libpcre2-dev libutf8proc-dev libopenmpi-dev openmpi-bin"
if [ "${1:-}" = "--test" ]; then
	pkgs="$pkgs python3-torch python3-numpy nodejs npm clang libclang-rt-14-dev libomp-dev chromium"
elif [ "${1:-}" = "--bench" ]; then
	pkgs="$pkgs python3-torch libjemalloc2"
fi

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
# nodejs/npm may come from elsewhere (nvm, a distro build); accept working binaries.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
	missing=$(echo "$missing" | tr ' ' '\n' | grep -v -x -e nodejs -e npm | tr '\n' ' ')
fi
missing=$(echo "$missing" | tr -s ' ')
[ -z "${missing# }" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "install-deps: installing:$missing" >&2
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >&2
