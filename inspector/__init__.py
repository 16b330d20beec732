"""The top layer: the `inspector` command line (inspector/cli.py) and the launcher for distributed training."""
