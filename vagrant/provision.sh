#!/usr/bin/env bash
# Make a fresh Debian 12 machine ready for minidocker: system packages, a virtualenv in
# <repo>/.venv with minidocker and its test tools, and `minidocker` on PATH.
# Used by the README, by .ci/run and by the Vagrantfile (the course VM). Safe to run again.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "provision.sh: run as root (sudo $0)" >&2
  exit 1
fi

packages=(
  python3 python3-venv python3-dev gcc libcap-dev   # python-prctl builds from source
  docker-registry skopeo umoci                      # the local registry and OCI tools
  busybox-static debootstrap                        # base images built offline (images/)
  podman crun uidmap                                # peers for the benchmarks
  apache2-utils                                     # htpasswd, for the basic-auth registry
  iproute2 iptables util-linux procps tar gzip zstd libseccomp2  # pyseccomp loads libseccomp.so.2
  qemu-system-x86 qemu-utils e2fsprogs              # the cgroup v2 guest (tests/v2guest, .ci/run)
  vagrant                                           # `vagrant validate` of the course VM's Vagrantfile
)
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

python=${PYTHON:-python3}
if [ ! -x "$repo/.venv/bin/python" ]; then
  "$python" -m venv "$repo/.venv"
fi
"$repo/.venv/bin/pip" install -q --upgrade pip >/dev/null
# compat mode: a plain .pth path entry, not an import hook (which costs ~15 ms at every start)
"$repo/.venv/bin/pip" install -q -e "$repo[test]" --config-settings editable_mode=compat
# nothing at run time needs setuptools (pip builds in isolated environments), and its
# distutils-precedence.pth runs an import at every interpreter start, on every container start
"$repo/.venv/bin/pip" uninstall -q -y setuptools >/dev/null 2>&1 || true
# bytecode ahead of time: with PYTHONDONTWRITEBYTECODE set, every start would compile again
"$repo/.venv/bin/python" -m compileall -q "$repo/minidocker" >/dev/null
ln -sf "$repo/.venv/bin/minidocker" /usr/local/bin/minidocker
echo "provision.sh: ready ($("$repo/.venv/bin/minidocker" --version))"
