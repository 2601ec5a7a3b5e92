#!/usr/bin/env bash
# The build stage of docker/Dockerfile: every shell command it runs is here, so that
# docker/check-build.sh runs the very same commands outside Docker.
#
#   docker/build.sh deps          install every dependency (the build needs the dev ones: tsc)
#   docker/build.sh app [ARCH]    compile to dist/, keep production dependencies only, and delete
#                                 onnxruntime-node's binaries for every OS but linux and every
#                                 CPU but ARCH
#
# Two steps, not one, so that Docker caches the installed dependencies while only sources change.
# ARCH is Docker's TARGETARCH (amd64, arm64) or onnxruntime's name (x64, arm64); empty means the
# architecture of the node running this script, which in a build stage is the target's.
# Run from the build context's copy (the Dockerfile's WORKDIR); it changes nothing outside it.
set -euo pipefail
shopt -s nullglob

step=${1:-}
case "$step" in
  deps)
    # npm 10 and earlier ignore package.json's "allowScripts", and .npmrc is not copied in:
    # skip onnxruntime-node's download of CUDA libraries the CPU image never loads.
    ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
    ;;

  app)
    arch=${2:-}
    case "$arch" in
      '') arch=$(node -p process.arch) ;;
      amd64 | x64) arch=x64 ;;
      arm64 | aarch64) arch=arm64 ;;
      *) echo "build.sh: onnxruntime-node has no linux binary for architecture '$arch' (only amd64/x64 and arm64)" >&2; exit 1 ;;
    esac

    ./node_modules/.bin/tsc -p tsconfig.build.json
    npm prune --omit=dev --no-audit --no-fund

    # onnxruntime-node ships every platform's binaries in bin/napi-v*/<platform>/<arch>/ and loads
    # bin/napi-v*/<process.platform>/<process.arch>/ at run time: the others are dead weight.
    mb() { du -sb "$@" | awk '{ b += $1 } END { printf "%.0f MB", b / 1e6 }'; }
    ort=node_modules/onnxruntime-node
    [ -d "$ort/bin" ] || { echo "build.sh: no $ort/bin: is onnxruntime-node still a production dependency?" >&2; exit 1; }
    kept=()
    for dir in "$ort"/bin/napi-v*/*/*/; do
      dir=${dir%/}
      platform=$(basename "$(dirname "$dir")")
      if [ "$platform" = linux ] && [ "$(basename "$dir")" = "$arch" ]; then
        kept+=("$dir")
      else
        echo "build.sh: removing $dir ($(mb "$dir"))"
        rm -rf "$dir"
      fi
    done
    # Directories left empty (darwin/, win32/) go too.
    find "$ort/bin" -mindepth 1 -type d -empty -delete
    [ "${#kept[@]}" -gt 0 ] && [ -f "${kept[0]}/onnxruntime_binding.node" ] \
      || { echo "build.sh: no onnxruntime-node binary for linux/$arch: the image could not run inference" >&2; exit 1; }
    echo "build.sh: kept ${kept[*]} ($(mb "${kept[@]}"))"
    ;;

  *)
    echo "usage: docker/build.sh deps | app [ARCH]" >&2
    exit 2
    ;;
esac
