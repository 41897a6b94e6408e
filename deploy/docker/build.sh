#!/usr/bin/env bash
# Builds the ICE container image (`make image`). No registry is needed: the
# static binaries are built here on the host and copied into a FROM scratch
# image (deploy/docker/Dockerfile) from a temporary build context.
#
# Environment:
#   ICE_IMAGE              image to build (default ice:dev)
#   ICE_IMAGE_VERSION_TAG  1 (default): also tag ice:$(git describe), when git
#                          can describe the checkout; 0: only ICE_IMAGE
#   GO                     the go command (default go)
set -euo pipefail
cd "$(dirname "$0")/../.."

image=${ICE_IMAGE:-ice:dev}
go=${GO:-go}
version=dev
if [ "${ICE_IMAGE_VERSION_TAG:-1}" = 1 ] && command -v git >/dev/null 2>&1; then
	if v=$(git describe --tags --always --dirty 2>/dev/null); then
		# A docker tag allows [A-Za-z0-9_.-], at most 128 characters.
		version=$(printf '%s' "$v" | tr -c 'A-Za-z0-9_.-' '-' | cut -c1-128)
	fi
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

build() { # output package
	echo "CGO_ENABLED=0 $go build -trimpath -ldflags='-s -w' -o $1 $2"
	CGO_ENABLED=0 "$go" build -trimpath -ldflags='-s -w' -o "$ctx/$1" "$2"
}
build ice ./cmd/ice
mkdir -p "$ctx/plugins"
for dir in plugins/examples/*/; do
	name=$(basename "$dir")
	build "plugins/$name" "./plugins/examples/$name"
done

cp deploy/docker/Dockerfile deploy/docker/passwd deploy/docker/group "$ctx/"
chmod 0644 "$ctx/passwd" "$ctx/group"
mkdir -p "$ctx/dirs/data" "$ctx/dirs/tmp" "$ctx/dirs/tls"
chmod 0750 "$ctx/dirs/data" "$ctx/dirs/tls"
chmod 1777 "$ctx/dirs/tmp"
# Equal inputs, equal layers: a rebuild of unchanged binaries hits the cache.
find "$ctx" -exec touch -h -d @0 {} +

docker build --build-arg "VERSION=$version" -t "$image" "$ctx"
if [ "$version" != dev ]; then
	docker tag "$image" "${image%%:*}:$version"
	echo "tagged ${image%%:*}:$version"
fi
