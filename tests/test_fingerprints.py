"""File fingerprints: content hashes remembered by (size, mtime, ctime), listings of (path, size, mtime)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from pait import fingerprints
from pait.fingerprints import ContentDigests, listing_digest


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
    data = os.urandom(3 * fingerprints.CHUNK + 17)  # several chunks and a remainder
    path.write_bytes(data)
    assert ContentDigests(tmp_path / "memo.json").sha256(path) == hashlib.sha256(data).hexdigest()


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


def test_a_listing_changes_with_a_size_an_mtime_or_a_name(tmp_path):
    a, b = tmp_path / "d" / "a.png", tmp_path / "d" / "b.png"
    a.parent.mkdir()
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    before = listing_digest([b, a])
    assert listing_digest([a, b]) == before
    stat = a.stat()
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    touched = listing_digest([a, b])
    assert touched != before
    a.write_bytes(b"11")
    resized = listing_digest([a, b])
    assert resized not in (before, touched)
    c = a.rename(tmp_path / "d" / "c.png")  # same size and mtime, another name
    assert listing_digest([b, c]) not in (before, touched, resized)
