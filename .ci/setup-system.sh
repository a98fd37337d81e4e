#!/usr/bin/env bash
# Installs the system packages the test suite uses, from Debian's archive: Chromium (browser
# tests, driven by playwright-core), nginx (proxies for the client tests), xdelta3 (an independent VCDIFF decoder), and Java + Maven
# (the real Kafka broker the integration tests start from Maven Central artifacts); Nchan, the
# nginx module `npm run bench:peers` measures edgepush against; and Helm, see setup-helm.sh.
# Idempotent: installs only what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail

# Helm (the chart test) is not in Debian's archive: setup-helm.sh builds it with the machine's Go.
bash "$(dirname "$0")/setup-helm.sh"

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v xdelta3 >/dev/null 2>&1 || missing+=(xdelta3)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# nginx: the restrictive proxies of the client tests (test/helpers/nginx.ts); it lives in /usr/sbin.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
# Nchan for nginx (bench/nchan-server.ts loads the module from here with its own config).
[ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || missing+=(libnginx-mod-nchan)

if [ ${#missing[@]} -eq 0 ]; then
  echo "system test dependencies present"
  exit 0
fi

echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# A registry that hiccups once should not fail the run: three attempts, then give up loudly.
for attempt in 1 2 3; do
  if $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    exit 0
  fi
  echo "apt-get failed (attempt $attempt of 3)" >&2
  sleep $((attempt * 10))
done
echo "could not install: ${missing[*]}" >&2
exit 1
