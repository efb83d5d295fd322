"""Publishing converted and trained folders to the Hugging Face Hub, card and code included.

`push_folder_to_hub(folder, repo_id)` (and `groma-convert ... --push_to_hub REPO`) uploads a folder as it is on disk:
weights, config, generation config, processor, tokenizer, chat template, the remote-code files and the model card,
in one commit. The `push_to_hub` of the package's models and processors goes through it too, so that their upload
carries the code files and keeps the repository's card instead of replacing it with a generic one.
"""

import tempfile
from fnmatch import fnmatch
from pathlib import Path

from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi

from .model_card import write_model_card


# A folder is published when it holds one of these (a model, a LoRA adapter, a processor or an image processor).
CONFIG_FILES = ("config.json", "adapter_config.json", "processor_config.json", "preprocessor_config.json")
# Training leftovers that do not belong in a published model repository.
IGNORED = ("checkpoint-*", "runs", ".*", "__pycache__")
CARD = "README.md"


def folder_files(folder: str | Path) -> list[str]:
    """The files `push_folder_to_hub` uploads: every file under `folder` (relative POSIX paths, sorted) except
    trainer checkpoints (`checkpoint-*`), TensorBoard logs (`runs`), caches and hidden files."""
    folder = Path(folder)
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(fnmatch(part, pattern) for part in relative.parts for pattern in IGNORED):
            files.append(relative.as_posix())
    return files


def push_folder_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    keep_remote_card: bool = False,
) -> CommitInfo:
    """Upload a converted or trained folder to the Hub repository `repo_id` (created if missing) in one commit.

    The model card's usage snippet names the folder (`repo = "FOLDER"`); the uploaded card names `repo_id` instead
    (the local file is left as it is).

    Args:
        folder: A folder written by `groma-convert`, a training script or `save_pretrained`.
        repo_id: `org/name` or `name` of the model repository.
        private, token, commit_description, revision, create_pr: As for `huggingface_hub.HfApi`.
        commit_message: Defaults to "Upload <folder name> with transformers-groma".
        keep_remote_card: Do not upload `README.md` when the repository already has one.

    Raises:
        FileNotFoundError: if `folder` holds no model, adapter, processor or image processor config.
    """
    folder = Path(folder)
    if not any((folder / name).is_file() for name in CONFIG_FILES):
        raise FileNotFoundError(
            f"{folder} holds none of {', '.join(CONFIG_FILES)}: pass a folder written by groma-convert, a training "
            "script or save_pretrained."
        )
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    skip_card = keep_remote_card and api.file_exists(repo_id, CARD, revision=revision)
    operations = []
    for name in folder_files(folder):
        if name == CARD:
            if skip_card:
                continue
            text = (folder / CARD).read_text(encoding="utf-8").replace(f'"{folder.resolve().name}"', f'"{repo_id}"')
            operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=text.encode("utf-8")))
        else:
            operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name)))
    return api.create_commit(
        repo_id,
        operations,
        commit_message=commit_message or f"Upload {folder.resolve().name} with transformers-groma",
        commit_description=commit_description,
        revision=revision,
        create_pr=create_pr,
    )


def push_to_hub(obj, repo_id: str, **kwargs) -> CommitInfo:
    """`push_to_hub` of the package's models and processors: save into a temporary folder (remote code included),
    add a model card for a model when the repository has none, and upload with [`push_folder_to_hub`]."""
    is_model = hasattr(obj, "config")
    save_kwargs = {"max_shard_size": kwargs.pop("max_shard_size")} if is_model and "max_shard_size" in kwargs else {}
    kwargs.pop("tags", None)  # the card's tags are the package's
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / repo_id.rsplit("/", 1)[-1]
        obj.save_pretrained(folder, **save_kwargs)
        if is_model:
            source = getattr(obj.config, "_name_or_path", None) or None
            write_model_card(folder, obj.config, "trained", source=source, repo_id=repo_id)
        return push_folder_to_hub(folder, repo_id, keep_remote_card=True, **kwargs)
