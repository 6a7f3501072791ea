"""File fingerprints: content hashes remembered by (size, mtime, ctime), listings of (path, content hash),
hashes of tensors in memory."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import torch

from pait import fingerprints
from pait.cache import CHUNK
from pait.fingerprints import ContentDigests, listing_digest, state_sha256


@pytest.fixture
def hashed(monkeypatch) -> list:
    """The paths whose bytes were hashed, in order."""
    calls = []
    real = fingerprints.file_sha256

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(fingerprints, "file_sha256", counting)
    return calls


def test_the_content_hash_is_the_sha256_of_the_bytes(tmp_path):
    path = tmp_path / "w.bin"
    data = os.urandom(3 * CHUNK + 17)  # several chunks and a remainder
    path.write_bytes(data)
    assert ContentDigests(tmp_path / "memo.json").sha256(path) == hashlib.sha256(data).hexdigest()


def test_an_unreadable_file_has_a_placeholder_digest_and_is_not_remembered(tmp_path, monkeypatch):
    good, bad = tmp_path / "a.png", tmp_path / "b.png"
    good.write_bytes(b"abc")
    bad.write_bytes(b"def")
    real = fingerprints.file_sha256

    def unreadable(path):
        if path == bad:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(fingerprints, "file_sha256", unreadable)
    memo = tmp_path / "memo.json"
    assert ContentDigests(memo).many([good, bad, tmp_path / "gone.png"]) == [
        hashlib.sha256(b"abc").hexdigest(), "unreadable:13", "unreadable:2"]
    assert list(json.loads(memo.read_text())) == [str(good)]


def test_a_remembered_hash_is_reused_while_the_file_is_unchanged(tmp_path, hashed):
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    memo = tmp_path / "memo.json"
    first = ContentDigests(memo).sha256(path)
    assert ContentDigests(memo).sha256(path) == first
    assert len(hashed) == 1
    assert json.loads(memo.read_text())[str(path.resolve())]["sha256"] == first


def test_a_changed_size_or_mtime_is_hashed_again(tmp_path, hashed):
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    digests = ContentDigests(tmp_path / "memo.json")
    first = digests.sha256(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: hashed again, same hash
    assert digests.sha256(path) == first and len(hashed) == 2
    path.write_bytes(b"abcd")
    assert digests.sha256(path) == hashlib.sha256(b"abcd").hexdigest() and len(hashed) == 3


def test_a_content_change_keeping_size_and_mtime_is_noticed_through_ctime(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    digests = ContentDigests(tmp_path / "memo.json")
    digests.sha256(path)
    stat = path.stat()
    path.write_bytes(b"xyz")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # mtime reset, as `cp -p` or `touch -d` would
    assert digests.sha256(path) == hashlib.sha256(b"xyz").hexdigest()


def test_an_unwritable_memo_is_not_an_error(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    (tmp_path / "file").write_text("")
    assert ContentDigests(tmp_path / "file" / "memo.json").sha256(path) == hashlib.sha256(b"abc").hexdigest()


def test_a_listing_changes_with_the_content_or_a_name_and_not_with_a_touch(tmp_path, hashed):
    a, b = tmp_path / "d" / "a.png", tmp_path / "d" / "b.png"
    a.parent.mkdir()
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    digests = ContentDigests(tmp_path / "memo.json")
    before = listing_digest([b, a], digests)
    assert listing_digest([a, b], digests) == before and len(hashed) == 2  # remembered, not hashed again
    stat = a.stat()
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert listing_digest([a, b], digests) == before  # touched: the same bytes, the same listing
    a.write_bytes(b"3")
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # rewritten in place, same size, mtime restored
    assert a.stat().st_size == stat.st_size and a.stat().st_mtime_ns == stat.st_mtime_ns
    rewritten = listing_digest([a, b], digests)
    assert rewritten != before
    a.write_bytes(b"11")
    resized = listing_digest([a, b], digests)
    assert resized not in (before, rewritten)
    c = a.rename(tmp_path / "d" / "c.png")  # same content, another name
    assert listing_digest([b, c], digests) not in (before, rewritten, resized)


def test_a_listing_is_the_same_in_a_copy_of_the_folder(tmp_path):
    for folder in ("one", "two"):
        (tmp_path / folder / "x").mkdir(parents=True)
        (tmp_path / folder / "x" / "a.png").write_bytes(b"same bytes")
    digests = ContentDigests(tmp_path / "memo.json")
    assert listing_digest([tmp_path / "one" / "x" / "a.png"], digests) == listing_digest([tmp_path / "two" / "x" / "a.png"], digests)


def test_a_damaged_memo_entry_is_hashed_again(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    memo = tmp_path / "memo.json"
    ContentDigests(memo).sha256(path)
    entries = json.loads(memo.read_text())
    for bad in (5, None, "zz", ["a"]):
        entries[str(path.resolve())]["sha256"] = bad
        memo.write_text(json.dumps(entries))
        assert ContentDigests(memo).sha256(path) == hashlib.sha256(b"abc").hexdigest()


def test_the_state_hash_covers_names_dtypes_shapes_and_values():
    state = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor(1, dtype=torch.int64)}
    base = state_sha256(state)
    assert state_sha256({k: v.clone() for k, v in state.items()}) == base
    assert state_sha256({"b": state["b"], "a": state["a"].t().contiguous().t()}) == base  # layout and order do not matter
    changed = [
        {**state, "a": state["a"].reshape(3, 2)},
        {**state, "a": state["a"].double()},
        {**state, "a": state["a"] + torch.tensor([[0, 0, 0], [0, 0, 2**-20]])},
        {"c": state["a"], "b": state["b"]},
        {**state, "a": state["a"].bfloat16()},
    ]
    assert len({base, *map(state_sha256, changed)}) == len(changed) + 1


def test_deferred_hashes_are_written_by_flush_only(tmp_path, hashed):
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    memo = tmp_path / "memo.json"
    digests = ContentDigests(memo, deferred=True)
    first = digests.sha256(path)
    assert digests.sha256(path) == first and len(hashed) == 1 and not memo.exists()  # pending, not written
    digests.flush()
    assert json.loads(memo.read_text())[str(path.resolve())]["sha256"] == first
    assert ContentDigests(memo).sha256(path) == first and len(hashed) == 1


def test_without_a_memo_every_file_is_hashed_and_nothing_written(tmp_path, hashed):
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    assert listing_digest([path]) == listing_digest([path], ContentDigests(tmp_path / "memo.json"))
    assert listing_digest([path]) == listing_digest([path]) and len(hashed) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memo.json", "w.bin"]  # only the memo asked for
