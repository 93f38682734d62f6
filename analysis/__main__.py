"""``python -m analysis`` runs the analysis commands (analyze, figures, report)."""

import sys

from analysis.cli import main

sys.exit(main())
