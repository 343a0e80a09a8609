#!/bin/sh
# Offline build of the OCI runtime-tools validation suite at 0105384f with Debian's Go 1.19
# (apt-get install golang-go): build.sh [DIR]; DIR (default /var/cache/minidocker/rtools)
# holds src/, the tree at that commit, e.g. from a git mirror:
#   git --git-dir=MIRROR archive 0105384f | tar -x -C DIR/src
# Its code is not ours and stays out of the project; README.md here says how it is run.
set -e
dir=${1:-/var/cache/minidocker/rtools}
cd "$dir/src"
export GOFLAGS=-mod=vendor GOPROXY=off GOCACHE="$dir/.gocache" GOPATH="$dir/.gopath"
C=0105384f
V=$(cat VERSION)
go build -tags "netgo osusergo" -ldflags "-extldflags -static -X main.gitCommit=$C -X main.version=$V" \
    -o runtimetest ./cmd/runtimetest
for f in $(find ./validation/ -name '*.go' | grep -v util | sort); do
    go build -ldflags "-X main.gitCommit=$C -X main.version=$V" -o "${f%.go}.t" "$f"
done
ls validation/*/*.t | wc -l
