"""`python -m conformance.validate ...`: the same as `conformance validate ...`."""
import sys

from conformance import cli

sys.exit(cli.main(["validate", *sys.argv[1:]]))
