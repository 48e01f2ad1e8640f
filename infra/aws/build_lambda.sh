#!/usr/bin/env bash
# Builds build/lambda.zip for the Lambda functions in serverless.yml: the package and its dependencies for
# Linux arm64 / Python 3.11, with bytecode compiled ahead (unchecked-hash .pyc: Lambda's file system is read-only
# and zip timestamps make ordinary .pyc stale, so a cold start would otherwise compile everything again).
#
#   infra/aws/build_lambda.sh [extras]     extras default to "ably,pusher,socketio"; e.g. "ably" for a smaller zip
set -euo pipefail
cd "$(dirname "$0")/../.."
extras="${1:-ably,pusher,socketio}"
platform="${LAMBDA_PLATFORM:-manylinux2014_aarch64}"
out=build/lambda
rm -rf "$out" build/lambda.zip
mkdir -p "$out"
python3 -m pip install --quiet --target "$out" --platform "$platform" --implementation cp --python-version 3.11 \
  --only-binary=:all: --upgrade ".[${extras}]"
# The CLI, migrations and dev server are not needed by a function; the package itself is.
rm -rf "$out"/bin "$out"/pgserver*
python3 -m compileall -q --invalidation-mode unchecked-hash "$out"
(cd "$out" && zip -q -r -X ../lambda.zip .)
echo "build/lambda.zip: $(du -h build/lambda.zip | cut -f1)"
