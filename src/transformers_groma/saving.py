"""`save_pretrained` and `push_to_hub` for every saved class of the package: the folder also gets the remote-code
bundle and `auto_map` (see `transformers_groma.remote_code`), so it loads with `trust_remote_code=True` where the
package is missing, and the upload keeps the package's model card."""

import importlib
import os


class RemoteCodeSavingMixin:
    """Put first in the bases of a model, processor or sub-processor class.

    In a remote-code copy of the classes (this package not installed) saving is transformers' own: it copies the
    modules the class came from.
    """

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        try:
            save_remote_code = importlib.import_module("transformers_groma.remote_code").save_remote_code
        except ImportError:
            return super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("push_to_hub"):
            raise ValueError(
                "`save_pretrained(..., push_to_hub=True)` would upload the folder before its remote code is written: "
                "save it, then publish the folder with `transformers_groma.hub.push_folder_to_hub` (or call "
                "`push_to_hub`)."
            )
        result = super().save_pretrained(save_directory, *args, **kwargs)
        save_remote_code(save_directory, self)
        return result

    def push_to_hub(self, repo_id: str, **kwargs):
        """Upload to the Hub with the remote code, keeping the repository's model card (a model without one gets the
        package's card rather than a generic one); see `transformers_groma.hub.push_to_hub`."""
        try:
            push_to_hub = importlib.import_module("transformers_groma.hub").push_to_hub
        except ImportError:
            return super().push_to_hub(repo_id, **kwargs)
        return push_to_hub(self, repo_id, **kwargs)
