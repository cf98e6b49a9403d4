"""Which config files beside a run are read: the quick local look equals ``storage.exists`` per name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from warmcheck import storage
from warmcheck.readers.runconfig_files import NAMES, _present


def _plain(directory: str) -> list[str]:
    return [name for name in NAMES if storage.exists(storage.join(directory, name))]


@pytest.mark.parametrize("suffix", ["", "/"])
def test_present_names_are_the_regular_files_storage_exists_sees(tmp_path: Path, suffix: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    assert _present(str(run) + suffix) == _plain(str(run) + suffix) == []
    (run / "hparams.yaml").write_text("a: 1\n")
    (run / "args.json").write_text("{}")
    (run / "config.yaml").mkdir()  # a directory of that name is not a config file
    (run / "params.yaml").symlink_to(run / "hparams.yaml")  # a link to a file is one
    (run / "config.json").symlink_to(run / "missing.json")  # a broken link is not
    (run / "Training_Args.json").write_text("{}")  # another name (on a case-sensitive file system)
    for directory in (str(run) + suffix, "file://" + str(run) + suffix, str(tmp_path / "absent")):
        assert _present(directory) == _plain(directory)
    assert _present(str(run)) == ["hparams.yaml", "args.json", "params.yaml"] or os.path.normcase("A") == "a"
    monkeypatch.chdir(run)  # a run in the working directory: its dirname is ""
    assert _present("") == _plain("")
    assert _present("") == _present(str(run))
