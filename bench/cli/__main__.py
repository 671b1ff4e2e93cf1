"""``python -m bench.cli``: the ``lrbench`` command."""
from . import main

main()
