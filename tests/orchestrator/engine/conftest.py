"""Puts this directory on ``sys.path`` so that the pipeline tests can import
their helpers from ``pipeline_support``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
