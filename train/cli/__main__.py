"""``python -m relaxomap.train.cli ...`` (and ``torchrun ... -m relaxomap.train.cli train ...``)."""
from __future__ import annotations

from relaxomap.train.cli import main

if __name__ == "__main__":
    main()
