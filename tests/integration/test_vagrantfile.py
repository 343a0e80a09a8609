"""The course VM's Vagrantfile: valid for Vagrant itself (Debian's vagrant package), and
provisioned by the same script as CI and the README (not a copy of its steps)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_vagrant_validate_passes():
    vagrant = shutil.which("vagrant")
    assert vagrant, "vagrant is missing: apt-get install vagrant (vagrant/provision.sh installs it)"
    r = subprocess.run([vagrant, "validate"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Vagrantfile validated successfully" in r.stdout, r.stdout + r.stderr


def test_the_vm_is_provisioned_by_provision_sh_for_both_providers():
    text = (REPO / "Vagrantfile").read_text()
    assert 'config.vm.provision "shell", inline: "/vagrant/vagrant/provision.sh"' in text
    assert 'config.vm.provider "virtualbox"' in text and 'config.vm.provider "libvirt"' in text
    assert (REPO / "vagrant" / "provision.sh").stat().st_mode & 0o111
