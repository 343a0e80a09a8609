"""Recipes for the base images minidocker's tests pull: OCI image layouts built offline.

``from images.build import build_image; build_image("busybox")`` returns the path of a
cached OCI image layout; see images/README.md.
"""
