"""``python -m minidocker`` runs the CLI."""

from minidocker.cli.main import main

if __name__ == "__main__":
    main()
