"""minidocker: a small, real container runtime, written to be read.

Start at ``minidocker/api.py``: every command of the CLI is one function there.
"""

__version__ = "0.1.0"
