"""`python -m transformers_groma.evaluation` = `groma-eval`."""

from .cli import main


main()
