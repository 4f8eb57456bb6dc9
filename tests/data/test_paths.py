"""Finding, verifying and (simulated) downloading of raw data files."""

from __future__ import annotations

import shutil
import urllib.error
from pathlib import Path

import pytest

from ppl_fewshot.data import (
    KNOWN_FILES,
    DataError,
    DataNotFoundError,
    cache_dir,
    fetch,
    load_split,
    resolve_data_dir,
    verify,
)
from ppl_fewshot.data import paths as paths_mod
from ppl_fewshot.data.paths import open_zip

LABELS = "mnist/t10k-labels-idx1-ubyte.gz"


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("PPL_FEWSHOT_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("PPL_FEWSHOT_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir() == tmp_path / "xdg" / "ppl_fewshot" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_data_dir() == Path.home() / ".cache" / "ppl_fewshot" / "data"


def test_cache_dir_env_and_default(tmp_path, monkeypatch):
    assert cache_dir() == tmp_path / "cache"  # set by the autouse fixture
    monkeypatch.delenv("PPL_FEWSHOT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "ppl_fewshot"


def test_known_files_agree_with_shipped_checksums(data_dir):
    listed = {}
    for line in (data_dir / "SHA256SUMS").read_text().splitlines():
        sha, rel = line.split()
        listed[rel] = sha
    assert len(listed) == 14
    for rel, sha in listed.items():
        known = KNOWN_FILES[rel]
        assert sha in known.sha256, rel
        assert (data_dir / rel).stat().st_size in known.sizes, rel
        assert known.urls and known.urls[0].startswith(("https://", "http://"))
    assert KNOWN_FILES["omniglot/images_background.zip"].urls[0] == (
        "https://github.com/brendenlake/omniglot/raw/master/python/images_background.zip")
    assert KNOWN_FILES["gmn/train_small.npz"].urls[0] == (
        "https://github.com/sbos/gmn/raw/master/data/train_small.npz")


def test_verify_hashes_once_then_remembers(tmp_path, data_dir, monkeypatch):
    root = tmp_path / "data"
    (root / "mnist").mkdir(parents=True)
    shutil.copy(data_dir / LABELS, root / LABELS)
    calls = []
    real_hash = paths_mod._hash_file
    monkeypatch.setattr(paths_mod, "_hash_file", lambda p: calls.append(p) or real_hash(p))
    assert verify(LABELS, root) == root / LABELS
    assert fetch(LABELS, root) == root / LABELS
    assert len(calls) == 1  # the second check is a stat against the memo
    assert (cache_dir() / "verified.json").is_file()
    (root / LABELS).touch()  # new mtime: hash again
    fetch(LABELS, root)
    assert len(calls) == 2
    verify(LABELS, root, force=True)
    assert len(calls) == 3


def test_fetch_finds_flat_basename(tmp_path, data_dir):
    shutil.copy(data_dir / LABELS, tmp_path / "t10k-labels-idx1-ubyte.gz")
    assert fetch(LABELS, tmp_path) == tmp_path / "t10k-labels-idx1-ubyte.gz"


def test_corrupt_known_file_is_a_data_error(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / LABELS).write_bytes(b"\0" * 4542)  # right size, wrong bytes
    with pytest.raises(DataError, match="sha256"):
        fetch(LABELS, tmp_path)
    (tmp_path / LABELS).write_bytes(b"\0" * 10)
    with pytest.raises(DataError, match="bytes"):
        fetch(LABELS, tmp_path)
    assert issubclass(DataError, ValueError)


def test_corrupt_zip_is_a_data_error(tmp_path):
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"this is not a zip archive" * 100)
    with pytest.raises(DataError, match="not a readable zip"):
        open_zip(bad)


def _offline(monkeypatch, calls):
    def fail(url, dest, timeout=0):
        calls.append(url)
        raise urllib.error.URLError("simulated: no network")

    monkeypatch.delenv("PPL_FEWSHOT_OFFLINE")
    monkeypatch.setattr(paths_mod, "download_url", fail)


def test_missing_data_dir_gives_helpful_message(tmp_path, monkeypatch):
    calls = []
    _offline(monkeypatch, calls)
    missing = tmp_path / "no_such_dir"
    with pytest.raises(DataNotFoundError) as info:
        load_split("gmn28", "train", data_dir=missing)
    msg = str(info.value)
    assert "\n" not in msg
    assert "gmn/train_small.npz" in msg and str(missing / "gmn" / "train_small.npz") in msg
    assert "PPL_FEWSHOT_DATA" in msg and "--data-dir" in msg
    assert "simulated: no network" in msg
    assert calls == [KNOWN_FILES["gmn/train_small.npz"].urls[0]]
    assert isinstance(info.value, FileNotFoundError)
    assert not list((missing / "gmn").glob("*"))  # no partial file left behind


def test_download_disabled(tmp_path, monkeypatch):
    calls = []
    _offline(monkeypatch, calls)
    with pytest.raises(DataNotFoundError, match="disabled"):
        fetch(LABELS, tmp_path, download=False)
    monkeypatch.setenv("PPL_FEWSHOT_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match="disabled"):
        fetch(LABELS, tmp_path)
    assert calls == []


def test_simulated_download_is_checked_and_atomic(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv("PPL_FEWSHOT_OFFLINE")
    seen = []

    def fake_download(url, dest, timeout=0):
        seen.append(Path(dest))
        assert Path(dest) != tmp_path / LABELS  # writes a temp file, never the target
        shutil.copy(data_dir / LABELS, dest)

    monkeypatch.setattr(paths_mod, "download_url", fake_download)
    assert fetch(LABELS, tmp_path) == tmp_path / LABELS
    assert (tmp_path / LABELS).read_bytes() == (data_dir / LABELS).read_bytes()
    assert not seen[0].exists()

    def garbage(url, dest, timeout=0):
        Path(dest).write_bytes(b"<html>rate limited</html>")

    monkeypatch.setattr(paths_mod, "download_url", garbage)
    other = "mnist/t10k-images-idx3-ubyte.gz"
    with pytest.raises(DataNotFoundError, match="bytes"):
        fetch(other, tmp_path)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == [Path(LABELS).name]


def test_unknown_file_without_source(tmp_path):
    with pytest.raises(DataNotFoundError, match="no download source"):
        fetch("elsewhere/thing.bin", tmp_path)


def test_data_package_does_not_import_pyro():
    import subprocess
    import sys

    code = ("import sys, ppl_fewshot.data as d; assert 'load_split' in d.__all__; "
            "bad = [m for m in sys.modules if m.split('.')[0] == 'pyro' "
            "or m.startswith(('ppl_fewshot.models', 'ppl_fewshot.inference'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
