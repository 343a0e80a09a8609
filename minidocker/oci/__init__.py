"""minidocker-runc: the runc-compatible command over minidocker's own runtime (bundle.py
reads a bundle's config.json, cli.py is the command)."""
