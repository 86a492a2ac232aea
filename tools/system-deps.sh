#!/usr/bin/env bash
# Debian packages the tests need (DEVELOPERS: installed by the project's own set-up when missing).
# Each entry is "command package": the package is installed only when the command is absent, so a
# machine that has them (or a CI run after a session) does nothing and needs no network.
set -euo pipefail
wanted=(
  "redis-server redis-server"
  "chromium chromium"
)
missing=()
for entry in "${wanted[@]}"; do
  read -r cmd pkg <<<"$entry"
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "system-deps: missing ${missing[*]} and not root: install them with apt-get" >&2
  exit 1
fi
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
echo "system-deps: installing ${missing[*]} (Debian packages, once)"
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq >/dev/null
as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
