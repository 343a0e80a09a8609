#!/usr/bin/env bash
# Run one command in the cgroup v2 guest (a Debian 12 guest under qemu -accel tcg, booted from a
# copy-on-write overlay of the image vagrant/v2-guest/build.sh caches).
#
#   vagrant/v2-guest/run.sh [--results DIR] -- CMD...
#
# Builds the image if needed, boots (25-90 s), copies the project (git HEAD plus the working
# tree's minidocker/ and tests/) to /root/minidocker on the guest's disk, runs CMD there as
# root with /opt/venv/bin first on PATH, copies the guest's /root/results to DIR (default
# ./v2guest-results), powers off and kills qemu by PID in every case. Exits with CMD's code
# (125 if the guest itself failed).
# Example: vagrant/v2-guest/run.sh -- python tests/v2guest/probe.py cpu
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
python=$repo/.venv/bin/python
[ -x "$python" ] || python=python3
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}
exec "$python" -m tests.v2guest.guest "$@"
