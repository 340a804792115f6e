#!/usr/bin/env bash
# Provisions the ONNX Runtime C library that backend/ort loads at run time.
#
# Debian has no onnxruntime package and no other reachable registry ships the
# Linux library, so it is taken from the npm package onnxruntime-node (which
# bundles it), fetched with `npm pack` so that no install script runs, and
# checked against a pinned sha256 before it is used.
#
# Usage: provision.sh CACHE_DIR   (writes CACHE_DIR/libonnxruntime.so.1)
set -euo pipefail

version=1.24.1
lib_sha256=53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4
member=package/bin/napi-v6/linux/x64/libonnxruntime.so.1

dest=${1:?usage: provision.sh CACHE_DIR}
lib="$dest/libonnxruntime.so.1"

if [ -f "$lib" ] && echo "$lib_sha256  $lib" | sha256sum --check --status; then
  exit 0
fi
case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) echo "provision.sh: ONNX Runtime is provisioned for Linux x86-64 only; on $(uname -s)/$(uname -m) set REWORD_ORT_LIB to your own libonnxruntime $version" >&2; exit 1 ;;
esac
command -v npm >/dev/null || { echo "provision.sh: npm is needed to fetch onnxruntime-node@$version (apt-get install npm)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetching ONNX Runtime $version (npm pack onnxruntime-node@$version)..." >&2
(cd "$work" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
tar -xzf "$work"/onnxruntime-node-"$version".tgz -C "$work" "$member"
got=$(sha256sum "$work/$member" | cut -d' ' -f1)
if [ "$got" != "$lib_sha256" ]; then
  echo "provision.sh: sha256 mismatch for $member: got $got, want $lib_sha256" >&2
  exit 1
fi
mkdir -p "$dest"
install -m 0644 "$work/$member" "$lib.tmp"
mv "$lib.tmp" "$lib"
echo "ONNX Runtime $version installed at $lib" >&2
