"""`accelerate launch [--config_file launch/X.yaml] -m dlcot.train recipe=R [overrides]` and `python -m dlcot.train`.

Every rank composes the same config and run directory (Hydra overrides pass through accelerate unchanged);
only rank 0 writes dlcot's files.
"""
import sys

from dlcot.cli import entry

if __name__ == "__main__":
    sys.exit(entry(["train", *sys.argv[1:]]))
