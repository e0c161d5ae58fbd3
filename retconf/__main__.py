"""``python -m retconf`` is the ``retconf`` command."""
import sys

from .cli import main

sys.exit(main())
