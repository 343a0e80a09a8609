"""The course VM's Vagrantfile: valid for Vagrant itself (Debian's vagrant package), and
provisioned by the same script as CI and the README (not a copy of its steps), in its
--course mode; and the Vagrantfile packed into a class's box."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_vagrant_validate_passes():
    vagrant = shutil.which("vagrant")
    assert vagrant, "vagrant is missing: apt-get install vagrant (vagrant/provision.sh installs it)"
    # --ignore-provider: a CI machine has neither VirtualBox nor libvirt, and without it
    # `vagrant validate` stops at "No usable default provider" before reading the file
    r = subprocess.run(
        [vagrant, "validate", "--ignore-provider"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and "Vagrantfile validated successfully" in r.stdout, r.stdout + r.stderr


def test_the_vm_is_provisioned_by_provision_sh_for_both_providers():
    text = (REPO / "Vagrantfile").read_text()
    assert 'config.vm.provision "shell", inline: "/vagrant/vagrant/provision.sh --course"' in text
    assert 'config.vm.provider "virtualbox"' in text and 'config.vm.provider "libvirt"' in text
    assert (REPO / "vagrant" / "provision.sh").stat().st_mode & 0o111


def test_the_box_vagrantfile_is_valid_and_mounts_nothing_over_vagrant(tmp_path):
    # what `vagrant package --vagrantfile vagrant/course-box.Vagrantfile` puts in the box,
    # loaded as Vagrant loads it: before the student's own Vagrantfile, which names the box
    vagrant = shutil.which("vagrant")
    assert vagrant, "vagrant is missing: apt-get install vagrant (vagrant/provision.sh installs it)"
    box_file = REPO / "vagrant" / "course-box.Vagrantfile"
    assert 'config.vm.synced_folder ".", "/vagrant", disabled: true' in box_file.read_text()
    (tmp_path / "Vagrantfile").write_text(
        f'load "{box_file}"\nVagrant.configure("2") do |config|\n  config.vm.box = "minidocker-course"\nend\n'
    )
    r = subprocess.run(
        [vagrant, "validate", "--ignore-provider"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and "Vagrantfile validated successfully" in r.stdout, r.stdout + r.stderr
