#!/usr/bin/env bash
# Installs the emoji sets of the emoji10 suite (pinned npm packages) into VENV/emoji/node_modules, where
# the suite looks for them; installs Debian's npm first where it is missing and apt-get is usable.
# A failure is reported and the set-up goes on: the suite then names what is missing.
set -u
venv=${1:-.venv}
dest="$venv/emoji"
packages="emoji-datasource-google@16.0.0 emoji-datasource-twitter@16.0.0 fluentui-emoji@1.3.0"
have=1
for p in $packages; do
  name=${p%@*}; version=${p##*@}
  grep -qs "\"version\": \"$version\"" "$dest/node_modules/$name/package.json" || have=0
done
if [ "$have" = 1 ]; then exit 0; fi
if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq npm >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq npm >/dev/null 2>&1; }
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "pait: npm not found; install it for the emoji10 suite's sets ($packages)"
  exit 0
fi
mkdir -p "$dest"
# shellcheck disable=SC2086
npm install --prefix "$dest" --no-save --no-package-lock --no-audit --no-fund --ignore-scripts $packages >/dev/null 2>&1 ||
  echo "pait: could not install $packages; the emoji10 suite will use the sets that are present"
exit 0
