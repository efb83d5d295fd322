"""Stand-in for transformers' `utils/fetch_hub_objects_for_ci.py` (read by `test_processing_common` at import time),
which its source distribution does not ship: URLs stay URLs (the tests of this package never download them)."""


def url_to_local_path(url: str, return_url_if_not_found: bool = True) -> str:
    return url
