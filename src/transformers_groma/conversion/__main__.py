"""`python -m transformers_groma.conversion` == `groma-convert`."""

from .convert_groma_to_hf import main


main()
