"""Byte-level pieces of docs/format.md: ELF patching, ustar headers, footer."""

from __future__ import annotations

import io
import struct
import tarfile

import pytest
from oci2bin.errors import UserError
from oci2bin.polyglot import format as fmt
from oci2bin_testrig import synthetic_elf  # pants: no-infer-dep


def test_parse_real_loader(loader_bytes):
    elf = fmt.parse_elf(loader_bytes)
    assert elf.arch in ("x86_64", "aarch64")
    assert elf.loader_offset >= 4096 and elf.loader_offset % 4096 == 0


def test_64k_alignment_sets_loader_offset():
    elf = fmt.parse_elf(synthetic_elf())
    assert elf.arch == "aarch64"
    assert elf.loader_offset == 0x10000


def test_relocation_and_header():
    data = synthetic_elf()
    elf = fmt.parse_elf(data)
    moved = fmt.relocate_loader(data, elf, 0x10000)
    for i in range(elf.phnum):
        before = fmt.PHDR.unpack_from(data, 64 + 56 * i)
        after = fmt.PHDR.unpack_from(moved, 64 + 56 * i)
        assert after[2] == before[2] + 0x10000
        assert after[:2] == before[:2] and after[3:] == before[3:]
    assert fmt.unrelocate_loader(moved, 0x10000) == data
    head = fmt.EHDR.unpack(fmt.head_elf_header(data, 0x10000))
    orig = fmt.EHDR.unpack_from(data, 0)
    assert head[5] == fmt.HEAD_PHDR_OFFSET  # e_phoff: the head table right after tar header #1
    assert head[10] == orig[10] + 1  # e_phnum: plus the head PT_LOAD
    assert head[6] == 0 and head[12] == 0 and head[13] == 0  # no section headers
    assert head[:5] == orig[:5] and head[7:10] == orig[7:10]


def test_head_table_maps_itself_below_the_loader():
    """AT_PHDR must be right both for Linux >= 5.18 (segment holding e_phoff) and for qemu-user/older kernels
    (lowest vaddr - its p_offset + e_phoff)."""
    data = synthetic_elf()
    elf = fmt.parse_elf(data)
    table = fmt.head_program_headers(data, elf, 0x10000)
    entries = [fmt.PHDR.unpack_from(table, i) for i in range(0, len(table), fmt.PHDR.size)]
    loads = [e for e in entries if e[0] == fmt.PT_LOAD]
    assert loads == sorted(loads, key=lambda e: e[3])  # sorted by vaddr
    head = loads[0]
    assert head[2] == 0 and head[4 + 1] >= fmt.HEAD_PHDR_OFFSET + len(table)  # maps the table
    at_phdr_new = fmt.HEAD_PHDR_OFFSET - head[2] + head[3]
    at_phdr_old = head[3] - head[2] + fmt.HEAD_PHDR_OFFSET
    assert at_phdr_new == at_phdr_old
    for e in entries:
        if e[0] == fmt.PT_PHDR:
            assert e[3] == at_phdr_new  # musl: load base = AT_PHDR - PT_PHDR.p_vaddr = 0
    originals = [fmt.PHDR.unpack_from(data, 64 + 56 * i) for i in range(elf.phnum)]
    for orig in originals:
        if orig[0] == fmt.PT_LOAD:
            assert (orig[0], orig[1], orig[2] + 0x10000, *orig[3:]) in entries


@pytest.mark.parametrize(
    "data,match",
    [
        (b"not an elf", "not an ELF"),
        (synthetic_elf(machine=3), "unsupported machine"),
        (synthetic_elf(interp=True), "dynamically linked"),
        (synthetic_elf(align=3000), "power of two"),
    ],
)
def test_bad_loaders(data, match):
    with pytest.raises(UserError, match=match):
        fmt.parse_elf(data)


def test_ustar_header_is_read_by_tarfile():
    name = b"\x7fELF\x02\x01\x01\x00" + bytes(range(1, 57))
    h = fmt.ustar_header(name, 5, 0o755, 1700000000)
    assert len(h) == 512 and h[257:265] == b"ustar\x0000"
    assert h[:64] == name
    ti = tarfile.TarInfo.frombuf(h, "utf-8", "surrogateescape")
    assert ti.size == 5 and ti.mode == 0o755 and ti.mtime == 1700000000 and ti.uid == 0
    assert ti.name == "\x7fELF\x02\x01\x01"
    buf = io.BytesIO(fmt.ustar_header(b"blobs/sha256/x", 3, 0o644, 0) + b"abc" + b"\0" * 509 + b"\0" * 1024)
    with tarfile.open(fileobj=buf) as tf:
        assert tf.getnames() == ["blobs/sha256/x"]


def test_big_size_field_uses_base256():
    h = fmt.ustar_header(b"big", 9 << 30, 0o644, 0)
    assert h[124] == 0x80
    assert tarfile.TarInfo.frombuf(h, "utf-8", "strict").size == 9 << 30


def test_footer_roundtrip():
    f = fmt.Footer(fmt.FLAG_VM, 123456, 789, 0, 0, 4096)
    raw = f.pack()
    assert len(raw) == 64 and raw[:8] == b"OCI2BIN\0" and raw[56:] == b"OCI2END\0"
    assert struct.unpack_from("<Q", raw, 48)[0] == 4096
    assert fmt.Footer.unpack(raw) == f
    assert fmt.Footer.unpack(b"x" * 64) is None


def test_head_load_is_aligned_when_first_segment_is_not_at_offset_0():
    """A loader whose lowest PT_LOAD starts at file offset 0x1000 (vaddr 0x401000): the head PT_LOAD must still
    satisfy p_vaddr == p_offset (mod p_align) and stay below the loader's first page."""
    data = bytearray(synthetic_elf(machine=fmt.EM_X86_64, align=0x1000))
    first = list(fmt.PHDR.unpack_from(data, 64))
    first[2], first[3], first[4] = 0x1000, 0x401000, 0x401000
    fmt.PHDR.pack_into(data, 64, *first)
    elf = fmt.parse_elf(bytes(data))
    table = fmt.head_program_headers(bytes(data), elf, elf.loader_offset)
    head = fmt.PHDR.unpack_from(table, 0)
    assert head[0] == fmt.PT_LOAD and head[2] == 0
    assert head[3] % head[7] == 0
    assert head[3] + head[5] <= 0x401000
