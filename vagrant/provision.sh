#!/usr/bin/env bash
# Make a fresh Debian 12 machine ready for minidocker: system packages, a virtualenv in
# <repo>/.venv with minidocker and its test tools, and `minidocker` on PATH.
# Used by the README and by .ci/run. Safe to run again.
#
#   vagrant/provision.sh                   the development/CI machine (peers, qemu, test tools)
#   vagrant/provision.sh --course          a student's machine (the Vagrantfile's course VM):
#                                          the runtime's packages only, no [test] extra, and a
#                                          registry on 127.0.0.1:5000 seeded with images/, set
#                                          as minidocker's Docker Hub mirror (/etc/minidocker)
#   vagrant/provision.sh --course-packages print the course's Debian packages (for build.sh)
#
# MINIDOCKER_WHEELS=DIR installs the Python packages from the wheels in DIR only (pip
# --no-index): no internet, no compiler (python-prctl comes as a wheel). With it, a machine
# that already has the Debian packages provisions offline (tests/v2guest/test_course_vm.py).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

# What a student's machine needs: Python, the registry and the tool that seeds it, what
# images/build.py builds from, and what the runtime calls or loads.
course_packages=(
  python3 python3-venv                              # minidocker's interpreter and its venv
  docker-registry skopeo                            # the local registry and what seeds it
  busybox-static debootstrap                        # base images built offline (images/)
  iproute2 iptables util-linux procps tar gzip zstd libseccomp2 uidmap  # the runtime's tools
  fuse3                                             # lazy layers: libfuse 3 (mfusepy loads it), fusermount3
)
mode=dev
case "${1:-}" in
  "") ;;
  --course) mode=course ;;
  --course-packages) echo "${course_packages[*]}"; exit 0 ;;
  *) echo "usage: $0 [--course | --course-packages]" >&2; exit 2 ;;
esac
wheels=${MINIDOCKER_WHEELS:-}

if [ "$(id -u)" -ne 0 ]; then
  echo "provision.sh: run as root (sudo $0)" >&2
  exit 1
fi

if [ "$mode" = dev ]; then
  packages=(
    python3 python3-venv python3-dev gcc libcap-dev   # python-prctl builds from source
    docker-registry skopeo umoci                      # the local registry and OCI tools
    busybox-static debootstrap                        # base images built offline (images/)
    podman crun runc containerd uidmap                # peers for the benchmarks; containerd drives the OCI runtime (issue #15)
    apache2-utils                                     # htpasswd, for the basic-auth registry
    golang-go golang-github-containerd-stargz-snapshotter-dev  # eStargz blobs checked by the reference reader (tests/estargz-verify)
    curl                                              # fetches go-containerregistry's source (ggcr_source below)
    iproute2 iptables util-linux procps tar gzip zstd libseccomp2  # pyseccomp loads libseccomp.so.2
    qemu-system-x86 qemu-utils e2fsprogs              # the cgroup v2 guest (tests/v2guest, .ci/run)
    vagrant                                           # `vagrant validate` of the course VM's Vagrantfile
    fuse3 libfuse3-dev pkg-config                     # lazy layers; pyfuse3 builds against libfuse3-dev (bench/lazyfs)
  )
else
  packages=("${course_packages[@]}")
  # without a wheelhouse python-prctl is built from source here
  [ -n "$wheels" ] || packages+=(python3-dev gcc libcap-dev)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The Debian package starts a registry on :5000 through systemd; the tests start their own.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# --userns=auto takes blocks of 65,536 host IDs from the ranges lent to "minidocker"
# (runtime/idranges.py); lend it 100 blocks above the IDs people and packages use.
for f in /etc/subuid /etc/subgid; do
  grep -q '^minidocker:' "$f" 2>/dev/null || echo 'minidocker:1000000:6553600' >> "$f"
done

# ---- the development machine: go-containerregistry's source, for a registry with the referrers API ----

# The tests' registry with the OCI referrers API (tests/referrers-registry, built by
# tests/support/registry.py) is go-containerregistry's pkg/registry. Debian 12 has no package
# of it; trixie's is pure Go source (arch all) and builds with bookworm's Go 1.19 in GOPATH
# mode. So: that one .deb, pinned by size and sha256, unpacked (not installed: dpkg would want
# trixie's dependencies) under /var/cache/minidocker. The tests never use the network.
ggcr_version=0.20.1+ds1-1
ggcr_url=http://deb.debian.org/debian/pool/main/g/go-containerregistry/golang-github-google-go-containerregistry-dev_${ggcr_version}_all.deb
ggcr_size=214384
ggcr_sha256=4b7649e6939647fb3c18b6cb2d99973d63926b4276d4f70264c2701bc73e431b
ggcr_dir=/var/cache/minidocker/go-containerregistry-0.20.1

ggcr_source() (  # (a subshell: its EXIT trap removes the temp dir however it ends)
  if [ -d "$ggcr_dir" ]; then
    exit 0
  fi
  install -d -m 0755 "$(dirname "$ggcr_dir")"
  tmp=$(mktemp -d "$ggcr_dir.partial.XXXXXX")  # beside it: the same file system, so mv is atomic
  trap 'rm -rf "$tmp"' EXIT
  if ! curl -fsS --retry 3 -o "$tmp/ggcr.deb" "$ggcr_url"; then
    echo "provision.sh: could not download $ggcr_url" >&2
    exit 1
  fi
  size=$(stat -c %s "$tmp/ggcr.deb")
  if [ "$size" != "$ggcr_size" ] || ! echo "$ggcr_sha256  $tmp/ggcr.deb" | sha256sum --check --status; then
    echo "provision.sh: $ggcr_url is not the pinned file (want $ggcr_size bytes, sha256 $ggcr_sha256;" \
      "got $size bytes, sha256 $(sha256sum <"$tmp/ggcr.deb" | cut -d' ' -f1)): refusing it" >&2
    exit 1
  fi
  dpkg-deb -x "$tmp/ggcr.deb" "$tmp/tree"
  if [ ! -d "$tmp/tree/usr/share/gocode/src/github.com/google/go-containerregistry/pkg/registry" ]; then
    echo "provision.sh: $ggcr_url holds no usr/share/gocode/src/github.com/google/go-containerregistry/pkg/registry" >&2
    exit 1
  fi
  echo "$ggcr_version" >"$tmp/tree/version"  # (part of the key of the tests' cached binary)
  chmod 0755 "$tmp/tree"
  mv -T "$tmp/tree" "$ggcr_dir"
)

if [ "$mode" = dev ]; then
  ggcr_source
fi

# ---- the course VM: a registry on 127.0.0.1:5000, seeded, as minidocker's Docker Hub mirror ----

registry_port=5000
registry_data=/var/lib/minidocker-registry

# Debian's docker-registry, run by our own unit with our own config: it listens on the loopback
# address only (Debian's own unit, disabled above, listens on every address).
course_registry() {
  if [ ! -d /run/systemd/system ]; then
    echo "provision.sh: --course needs a machine booted with systemd (the registry is a unit)" >&2
    return 1
  fi
  install -d -m 0755 /etc/minidocker
  install -d -m 0750 -o docker-registry -g docker-registry "$registry_data"
  cat >/etc/minidocker/registry.yml <<EOF
# minidocker's course registry (vagrant/provision.sh --course): Docker Hub for this machine
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $registry_data
http:
  addr: 127.0.0.1:$registry_port
EOF
  cat >/etc/systemd/system/minidocker-registry.service <<EOF
[Unit]
Description=minidocker's course registry on 127.0.0.1:$registry_port (Docker Hub for the lessons)
After=network.target

[Service]
User=docker-registry
ExecStart=/usr/bin/docker-registry serve /etc/minidocker/registry.yml
Restart=on-failure

[Install]
WantedBy=multi-user.target
EOF
  # `minidocker pull debian` asks the mirror: the daemon.json docker itself reads, same key
  cat >/etc/minidocker/daemon.json <<EOF
{"registry-mirrors": ["http://127.0.0.1:$registry_port"]}
EOF
  systemctl daemon-reload
  systemctl enable -q minidocker-registry.service
  systemctl restart minidocker-registry.service
  local i
  for i in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$registry_port") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "provision.sh: the registry did not start: journalctl -u minidocker-registry" >&2
  return 1
}

# The images/ images, built offline (cached in /var/cache/minidocker/images) and pushed under
# Docker Hub's names: `minidocker run debian` pulls library/debian:latest from the mirror.
course_images() {
  local name layout dest
  for name in busybox debian; do
    layout=$(python3 "$repo/images/build.py" "$name")
    for dest in "library/$name:latest" "$name:latest"; do
      skopeo --insecure-policy copy -q --dest-tls-verify=false \
        "oci:$layout:latest" "docker://127.0.0.1:$registry_port/$dest"
    done
  done
  # `run` would pull it through the mirror, but a lesson check has 60 s for each command:
  # the lessons' image is in the store already
  "$repo/.venv/bin/minidocker" pull -q busybox >/dev/null
}

python=${PYTHON:-python3}
if [ ! -x "$repo/.venv/bin/python" ]; then
  "$python" -m venv "$repo/.venv"
fi
extra="[test]"
if [ "$mode" = course ]; then extra=""; fi
if [ -n "$wheels" ]; then
  # offline: every package (and the editable build's setuptools) from DIR, pip as it is
  pip_from=(--no-index --find-links "$wheels")
else
  pip_from=()
  "$repo/.venv/bin/pip" install -q --upgrade pip >/dev/null
fi
# compat mode: a plain .pth path entry, not an import hook (which costs ~15 ms at every start)
"$repo/.venv/bin/pip" install -q "${pip_from[@]}" -e "$repo$extra" --config-settings editable_mode=compat
# nothing at run time needs setuptools (pip builds in isolated environments), and its
# distutils-precedence.pth runs an import at every interpreter start, on every container start
"$repo/.venv/bin/pip" uninstall -q -y setuptools >/dev/null 2>&1 || true
# bytecode ahead of time: with PYTHONDONTWRITEBYTECODE set, every start would compile again
"$repo/.venv/bin/python" -m compileall -q "$repo/minidocker" >/dev/null
ln -sf "$repo/.venv/bin/minidocker" /usr/local/bin/minidocker
ln -sf "$repo/.venv/bin/minidocker-runc" /usr/local/bin/minidocker-runc  # the OCI runtime (podman --runtime, containerd)
if [ "$mode" = course ]; then
  course_registry
  course_images
fi
echo "provision.sh: ready ($("$repo/.venv/bin/minidocker" --version))"
