"""Publishing: `push_folder_to_hub`, `groma-convert --push_to_hub` and the models' and processors' `push_to_hub` upload
the whole folder (code and card included) in one commit. The Hub is a stand-in recording the commits (no network)."""

from pathlib import Path

import pytest
from huggingface_hub import CommitInfo, HfApi, ModelCard
from huggingface_hub.hf_api import RepoUrl

from transformers_groma.hub import push_folder_to_hub
from transformers_groma.model_card import write_model_card
from transformers_groma.tiny import tiny_groma_model, tiny_groma_processor

from .fixtures import GROMA_FIXTURE, requires_groma_fixture


# The code files of a Groma folder (`trust_remote_code=True`).
GROMA_CODE = {
    "cache_api.py",
    "configuration_groma.py",
    "configuration_vicuna.py",
    "dtypes.py",
    "folder_checks.py",
    "generation.py",
    "image_inputs.py",
    "image_processing_groma.py",
    "loss.py",
    "modeling_groma.py",
    "modeling_outputs.py",
    "modeling_validation.py",
    "processing_groma.py",
    "processing_grounding.py",
    "processing_prompts.py",
    "processing_tokenization.py",
    "region_encoder.py",
    "region_proposer.py",
    "region_selection.py",
    "saving.py",
    "sequence.py",
    "tokens.py",
    "vision.py",
}
MODEL_FILES = {"config.json", "generation_config.json", "model.safetensors"}
PROCESSOR_FILES = {"processor_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}


class StandInHub:
    """Replaces the `HfApi` calls the package makes (on every instance); records each commit as {path: bytes}."""

    def __init__(self, monkeypatch, existing_files: set[str] = frozenset()):
        self.commits, self.repos, self.existing_files = [], [], set(existing_files)
        monkeypatch.setattr(HfApi, "create_repo", self.create_repo)
        monkeypatch.setattr(HfApi, "create_commit", self.create_commit)
        monkeypatch.setattr(HfApi, "file_exists", self.file_exists)

    def create_repo(self, repo_id, **kwargs):
        self.repos.append((repo_id, kwargs.get("private")))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def file_exists(self, repo_id, filename, **kwargs):
        return filename in self.existing_files

    def create_commit(self, repo_id, operations, **kwargs):
        files = {}
        for operation in operations:
            source = operation.path_or_fileobj
            files[operation.path_in_repo] = source if isinstance(source, bytes) else Path(source).read_bytes()
        self.commits.append({"repo_id": repo_id, "files": files, **kwargs})
        url = f"https://huggingface.co/{repo_id}/commit/0"
        return CommitInfo(commit_url=url, commit_message=kwargs["commit_message"], commit_description="", oid="0")


@pytest.fixture
def hub(monkeypatch):
    return StandInHub(monkeypatch)


def saved_folder(path):
    model, processor = tiny_groma_model(), tiny_groma_processor()
    model.save_pretrained(path)
    processor.save_pretrained(path)
    write_model_card(path, model.config, "trained", source="me/base", repo_id=path.name)
    return path


def test_a_folder_is_uploaded_whole_without_training_leftovers(tmp_path, hub):
    folder = saved_folder(tmp_path / "my-groma")
    (folder / "checkpoint-10").mkdir()
    (folder / "checkpoint-10" / "model.safetensors").write_bytes(b"old")
    (folder / "runs").mkdir()
    (folder / "runs" / "events").write_bytes(b"log")
    push_folder_to_hub(folder, "me/my-groma", private=True)

    (commit,) = hub.commits
    assert hub.repos == [("me/my-groma", True)] and commit["repo_id"] == "me/my-groma"
    assert set(commit["files"]) == MODEL_FILES | PROCESSOR_FILES | GROMA_CODE | {"README.md"}
    assert commit["files"]["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    # The uploaded card loads the repository; the local card still loads the folder.
    assert 'repo = "me/my-groma"' in commit["files"]["README.md"].decode()
    assert 'repo = "my-groma"' in (folder / "README.md").read_text()


def test_a_folder_without_a_config_is_refused(tmp_path, hub):
    with pytest.raises(FileNotFoundError, match="none of config.json"):
        push_folder_to_hub(tmp_path, "me/empty")
    assert not hub.commits


def test_model_push_to_hub_carries_code_and_the_package_card(hub):
    tiny_groma_model().push_to_hub("me/tiny-groma")
    (commit,) = hub.commits
    assert set(commit["files"]) == MODEL_FILES | GROMA_CODE | {"README.md"}
    card = ModelCard(commit["files"]["README.md"].decode())
    assert card.data.license == "llama2" and "transformers-groma" in card.data.tags
    assert "[](" not in card.text


def test_push_to_hub_keeps_the_repository_card(monkeypatch):
    hub = StandInHub(monkeypatch, existing_files={"README.md"})
    tiny_groma_model().push_to_hub("me/tiny-groma")
    tiny_groma_processor().push_to_hub("me/tiny-groma")
    model_commit, processor_commit = hub.commits
    assert set(model_commit["files"]) == MODEL_FILES | GROMA_CODE
    assert set(processor_commit["files"]) == PROCESSOR_FILES | GROMA_CODE


def test_save_pretrained_with_push_to_hub_points_to_the_folder_upload(tmp_path):
    with pytest.raises(ValueError, match="push_folder_to_hub"):
        tiny_groma_processor().save_pretrained(tmp_path, push_to_hub=True)


@requires_groma_fixture
def test_groma_convert_push_to_hub(tmp_path, hub):
    from transformers_groma.conversion.convert_groma_to_hf import main

    tiny = ["--image_size", "112", "--override", "region_fuse_groups=8"]
    output = tmp_path / "groma-tiny-native"
    main(["--input_dir", str(GROMA_FIXTURE), "--output_dir", str(output), *tiny, "--push_to_hub", "me/groma-tiny"])
    (commit,) = hub.commits
    assert set(commit["files"]) == MODEL_FILES | PROCESSOR_FILES | GROMA_CODE | {"README.md"}
    assert {path.name for path in output.iterdir()} == set(commit["files"])
    card = ModelCard(commit["files"]["README.md"].decode())
    assert 'repo = "me/groma-tiny"' in card.text and card.data.license == "llama2"
