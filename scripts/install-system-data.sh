#!/usr/bin/env bash
# Installs Fashion-MNIST from Debian's packages where apt-get is usable; otherwise says so and goes on.
set -u
dir=/usr/share/datasets/fashion-mnist
if [ -f "$dir/train-images-idx3-ubyte.gz" ]; then exit 0; fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 ||
   { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }) ||
    echo "pait: could not install dataset-fashion-mnist; the demo suite will use MNIST only"
else
  echo "pait: apt-get not usable here; install dataset-fashion-mnist for the clothing tasks"
fi
exit 0
