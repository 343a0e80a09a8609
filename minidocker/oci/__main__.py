"""python -m minidocker.oci: minidocker-runc."""

from minidocker.oci.cli import entry

entry()
