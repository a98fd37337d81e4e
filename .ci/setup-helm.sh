#!/usr/bin/env bash
# Installs Helm into .cache/bin for the chart test (test/deploy/manifests.test.ts renders
# deploy/helm/edgepush with it). Helm is not in Debian's archive: it is built from its Go module
# with the machine's Go. Without Go it says so, and the test skips the rendering (the plain
# manifests are still checked). Idempotent; run by setup-system.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

version=v3.21.4
# A binary built by go install does not know its own patch version: a stamp beside it does.
if [ -x .cache/bin/helm ] && [ "$(cat .cache/bin/helm.version 2>/dev/null)" = "$version" ]; then
  echo "helm ${version} present"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "no Go toolchain: helm not installed, the chart test will skip its rendering" >&2
  exit 0
fi
echo "building helm ${version} from its Go module (a few minutes the first time)"
# A registry that hiccups once should not fail the run: three attempts, then give up loudly.
for attempt in 1 2 3; do
  if GOBIN="$PWD/.cache/bin" go install "helm.sh/helm/v3/cmd/helm@${version}"; then
    echo "$version" > .cache/bin/helm.version
    exit 0
  fi
  echo "go install failed (attempt $attempt of 3)" >&2
  sleep $((attempt * 10))
done
# The chart test then skips its rendering and says why; the plain manifests are still checked.
echo "could not build helm ${version}: the chart test will skip its rendering" >&2
exit 0
