"""`oci2bin prune` also drops the verified-blob memo's records of blob files deleted or changed since (and
`--dry-run` only reports them), counted in its freed total; records of unchanged blobs stay and still hit."""

from __future__ import annotations

import os
import shutil

from oci2bin.cli import cachecmd
from oci2bin.cli.common import human_size
from oci2bin.image import layout
from oci2bin.polyglot.writer import write_polyglot
from oci2bin.state import cache


def _records() -> dict[str, bytes]:
    d = cache.verified_dir()
    return {n: open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))}


def _blob_of(record: bytes) -> str:
    return os.fsdecode(record.partition(b"\n")[2].partition(b"\n")[2])


def test_prune_drops_memo_records_of_gone_or_changed_blobs(
    tmp_path, loader_bytes, images, monkeypatch, capsys
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(cache, "RACY_NS", 0)  # the copied blobs are younger than the racy window
    kept, changed, gone = (os.path.realpath(tmp_path / n) for n in ("kept", "changed", "gone"))
    for lay in (kept, changed, gone):
        shutil.copytree(images.bb_oci, lay)
        im = layout.read_layout(layout.DirTree(lay))
        write_polyglot(lay + ".bin", loader_bytes, im)
    records = _records()
    by_layout = {
        os.path.dirname(os.path.dirname(os.path.dirname(_blob_of(r)))): n for n, r in records.items()
    }
    assert len(records) == 3 and set(by_layout) == {kept, changed, gone}  # one per layout: its layer blob
    open(os.path.join(cache.verified_dir(), "0" * 64), "wb").close()  # an empty record of an older version

    shutil.rmtree(gone)
    os.chmod(os.path.join(changed, "blobs/sha256", im.layers[0].digest[7:]), 0o600)  # a new ctime
    stale = {by_layout[changed], by_layout[gone], "0" * 64}
    freed = sum(len(records.get(n, b"")) for n in stale)

    cachecmd.run_prune(["--dry-run"])
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"would remove {len(stale)} stale verified-blob records ({human_size(freed)}) {cache.verified_dir()}",
        f"0 entries, {len(stale)} records, would free {human_size(freed)}",
    ]
    assert set(_records()) == set(records) | {"0" * 64}  # nothing removed

    cachecmd.run_prune([])
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"0 entries, {len(stale)} records, freed {human_size(freed)}"
    assert set(_records()) == {by_layout[kept]}
    blob = im.layers[0]  # the same in every layout; kept's copy is unchanged: still a memo hit
    assert cache.is_verified(
        os.stat(os.path.join(kept, "blobs/sha256", blob.digest[7:])), 0, blob.size, blob.digest
    )

    cachecmd.run_prune([])  # nothing left to drop
    assert capsys.readouterr().out == "0 entries, 0 records, freed 0 B\n"
    assert set(_records()) == {by_layout[kept]}
