#!/usr/bin/env bash
# `make images`: build every service image and the tools image from the repository root.
#   TAG=0.1.0 REGISTRY=registry.example.com/ deploy/scripts/build_images.sh [--push]
# Needs a Docker engine with BuildKit (the Dockerfiles use cache mounts).
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG="${TAG:-dev}"
REGISTRY="${REGISTRY:-}"
PUSH="${1:-}"
uv run python deploy/scripts/gen_dockerfiles.py --check
build() {  # name dockerfile
  local image="${REGISTRY}perpsignal/$1:${TAG}"
  echo "==> ${image}"
  DOCKER_BUILDKIT=1 docker build --file "$2" --tag "${image}" .
  if [ "${PUSH}" = "--push" ]; then docker push "${image}"; fi
}
for svc in ingestor scorer judge outcomes notifier gateway; do
  build "${svc}" "services/${svc}/Dockerfile"
done
build tools deploy/docker/tools.Dockerfile
