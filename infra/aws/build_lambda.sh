#!/usr/bin/env bash
# Builds build/lambda.zip for the Lambda functions in serverless.yml: the code that runs (core/, functions/) and
# its dependencies for Linux on the Lambda Python runtime, with bytecode compiled ahead.
#
#   infra/aws/build_lambda.sh                     arm64 (what serverless.yml deploys), Python 3.12
#   LAMBDA_ARCH=x86_64 infra/aws/build_lambda.sh  what the deploy check runs on this machine's CPU
#
# Settings: LAMBDA_ARCH (arm64 | x86_64), LAMBDA_PYTHON (3.12), LAMBDA_EXTRAS (socketio: the Socket.IO publisher's
# SDKs; Ably and Pusher are plain dependencies), VENV (.venv: the venv the tests ran in, whose versions the zip pins),
# LAMBDA_NO_DEPS=1 (our own modules only, in seconds: to look at what the zip ships of the source),
# LAMBDA_OUT (build: the directory emptied and written, lambda.zip in it), LAMBDA_COMPILE=0 (ship the .pyc pip
# writes instead of compiling ahead: the build before the bytecode fix, which the deploy check times for contrast).
#
# Why each step:
# - build/ is emptied first: setuptools reuses build/lib, so a module deleted from the source stayed in the zip.
# - Dependency versions are constrained to `pip freeze` of the test venv: the zip runs what the tests ran, not
#   whatever the newest wheel for the platform is (manylinux2014 alone made pip pick psycopg 3.2 on arm64).
#   Lambda's python3.12+ runtimes are Amazon Linux 2023 (glibc 2.34), so manylinux_2_28 wheels are valid there.
# - Bytecode: `compileall -f` with unchecked-hash .pyc, by the target Python. Timestamp .pyc go stale through
#   zip (2-second times), and /var/task is read-only, so each cold start would compile them again.
set -euo pipefail
cd "$(dirname "$0")/../.."

arch="${LAMBDA_ARCH:-arm64}"
python_version="${LAMBDA_PYTHON:-3.12}"
extras="${LAMBDA_EXTRAS:-socketio}"
venv="${VENV:-.venv}"
case "$arch" in
  arm64) machine=aarch64 ;;
  x86_64) machine=x86_64 ;;
  *) echo "LAMBDA_ARCH must be arm64 or x86_64, not '$arch'" >&2; exit 2 ;;
esac

# The target Python itself compiles the bytecode (a .pyc is specific to its minor version).
# pyenv's shims exist for versions that are not selected, so the interpreter is asked to run before it is chosen.
python_bin=""
for candidate in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$python_version".*/bin/python 2>/dev/null | sort -V -r) \
  "python$python_version"; do
  if "$candidate" -c pass 2>/dev/null; then
    python_bin="$candidate"
    break
  fi
done
if [ -z "$python_bin" ]; then
  echo "Python $python_version is needed to build the zip (on PATH as python$python_version, or under pyenv)" >&2
  exit 2
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "$venv is missing: run 'make install' (the zip pins the versions the tests run with)" >&2
  exit 2
fi

build="${LAMBDA_OUT:-build}"
compile="${LAMBDA_COMPILE:-1}"
# setuptools' own build/lib (a stale module's hiding place) is in the source tree, whatever LAMBDA_OUT says.
rm -rf "$build" build/lib build/bdist.*
out="$build/lambda"
mkdir -p "$out"
"$venv/bin/python" -m pip freeze --exclude-editable --all | grep -v '^hafi-realtime' >"$build/constraints.txt"

options=()
if [ "${LAMBDA_NO_DEPS:-0}" = 1 ]; then options+=(--no-deps); fi
if [ "$compile" = 1 ]; then options+=(--no-compile); fi
"$python_bin" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$out" \
  "${options[@]}" --platform "manylinux_2_28_$machine" --platform "manylinux2014_$machine" --implementation cp \
  --python-version "$python_version" --only-binary=:all: --constraint "$build/constraints.txt" ".[${extras}]"

# Only what a function runs: the CLI's migrations and scripts are not (the package finder ships infra/).
rm -rf "$out"/bin "$out"/infra "$out"/pgserver* "$out"/tests "$out"/web "$out"/bench "$out"/docs "$out"/standins
# The browser client and the SDK builds it loads, which the API serves at /web/ (core/web.py); not the demo pages.
mkdir -p "$out/web"
cp -R web/realtime.js web/vendor "$out/web/"
if [ "$compile" = 1 ]; then
  "$python_bin" -m compileall -q -f -j 0 --invalidation-mode unchecked-hash "$out"
fi
(cd "$out" && zip -q -r -X ../lambda.zip .)
echo "$build/lambda.zip ($arch, Python $python_version): $(du -h "$build/lambda.zip" | cut -f1)"
