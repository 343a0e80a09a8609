#!/usr/bin/env bash
# The main job, offline: build the busybox image from Debian's busybox-static (images/),
# serve it from a local registry on 127.0.0.1, pull it with minidocker, list it, run a
# container from it (with --explain: every kernel step narrated), then change a container,
# commit it to a new image, push that to the registry and run it.
# Run as root after vagrant/provision.sh.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py="$repo/.venv/bin/python"
image=${1:-busybox}
cd "$repo"
exec "$py" - "$image" <<'PY'
import subprocess, sys, tempfile
from pathlib import Path
from images.build import build_image
from tests.support.registry import start_registry

name = sys.argv[1]
layout = build_image(name)
with tempfile.TemporaryDirectory(prefix="minidocker-demo-") as tmp:
    reg = start_registry(Path(tmp))
    try:
        reg.seed(layout, name, "latest")
        ref = f"{reg.host}/{name}:latest"
        print(f"$ minidocker pull {ref}", flush=True)
        subprocess.run(["minidocker", "pull", ref], check=True)
        print("$ minidocker images", flush=True)
        subprocess.run(["minidocker", "images"], check=True)
        script = "echo hello from $(hostname), I am PID $$; ls /"
        print(f"$ minidocker run --rm --explain {ref} sh -c '{script}'", flush=True)
        subprocess.run(["minidocker", "run", "--rm", "--explain", ref, "sh", "-c", script], check=True)
        # change a container, commit it to a new image, push that, and run it
        mine = f"{reg.host}/{name}-greeting:1"
        steps = [["run", "--name", "demo-greeting", ref, "sh", "-c", "echo hello from a committed layer > /greeting"],
                 ["diff", "demo-greeting"],
                 ["commit", "-c", 'CMD ["cat", "/greeting"]', "demo-greeting", mine],
                 ["push", mine],
                 ["run", "--rm", mine],
                 ["history", mine]]
        subprocess.run(["minidocker", "rm", "-f", "demo-greeting"], capture_output=True)
        try:
            for step in steps:
                print(f"$ minidocker {' '.join(step)}", flush=True)
                subprocess.run(["minidocker", *step], check=True)
        finally:
            subprocess.run(["minidocker", "rm", "-f", "demo-greeting"], capture_output=True)
        print(f"$ minidocker run -it --rm {ref} sh    # try it yourself", flush=True)
    finally:
        reg.stop()
PY
