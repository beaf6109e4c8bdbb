"""``python -m edge_agent``: the same command line as the ``edge-agent`` script."""

import sys

from edge_agent.cli.main import main

sys.exit(main())
