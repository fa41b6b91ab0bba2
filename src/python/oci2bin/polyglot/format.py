"""Constants and byte-level helpers of the polyglot format (docs/format.md), shared by writer and reader."""

from __future__ import annotations

import os
import struct

from oci2bin.errors import UserError
from oci2bin.record import Record

FORMAT_VERSION = 1
FOOTER_MAGIC = b"OCI2BIN\0"
FOOTER_END_MAGIC = b"OCI2END\0"
FOOTER = struct.Struct("<8sIIQQQQQ8s")  # magic, version, flags, tar_end, m_size, sig_off, sig_len, l_off, end
FOOTER_SIZE = FOOTER.size
assert FOOTER_SIZE == 64
FLAG_VM = 1 << 0

BLOCK = 512
TAR_EOF = b"\0" * (2 * BLOCK)
MIN_LOADER_OFFSET = 4096
ENTRY_MODE = 0o644
LOADER_MODE = 0o755

# ---------------------------------------------------------------------------------------------------- ELF

ELF_MAGIC = b"\x7fELF"
EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # ELF64 header
PHDR = struct.Struct("<IIQQQQQQ")  # ELF64 program header
PT_LOAD = 1
PT_INTERP = 3
EM_X86_64 = 62
EM_AARCH64 = 183
ELF_ARCH = {EM_X86_64: "x86_64", EM_AARCH64: "aarch64"}
# `uname -m` name -> OCI architecture
OCI_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


class Elf(Record):
    __slots__ = ("machine", "arch", "phoff", "phnum", "phentsize", "max_load_align")
    _fields = __slots__
    machine: int
    arch: str  # uname -m style: x86_64 / aarch64
    phoff: int
    phnum: int
    phentsize: int
    max_load_align: int

    @property
    def loader_offset(self) -> int:
        """L_OFF = max(4096, largest PT_LOAD p_align)."""
        return max(MIN_LOADER_OFFSET, self.max_load_align)


def parse_elf(data: bytes, what: str = "loader") -> Elf:
    """Validate a static little-endian ELF64 executable and return what the writer needs."""
    if len(data) < EHDR.size or not data.startswith(ELF_MAGIC):
        raise UserError(f"{what} is not an ELF file", "pass the oci2bin loader binary with --loader")
    if data[4] != 2 or data[5] != 1:
        raise UserError(
            f"{what} is not a little-endian ELF64 file",
            "build the loader for x86_64 or aarch64",
        )
    (_, e_type, machine, _, _, phoff, _, _, _, phentsize, phnum, _, _, _) = EHDR.unpack_from(data, 0)
    if e_type not in (2, 3):
        raise UserError(
            f"{what} is not an executable (ELF type {e_type})",
            "pass the loader executable",
        )
    if machine not in ELF_ARCH:
        raise UserError(
            f"{what} is for unsupported machine {machine}",
            "use an x86_64 or aarch64 loader",
        )
    if phentsize != PHDR.size or phnum == 0 or phoff + phnum * phentsize > len(data):
        raise UserError(f"{what} has no valid program header table", "the loader binary is corrupt")
    max_align = 0
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz, _, p_align = PHDR.unpack_from(data, phoff + i * phentsize)
        if p_type == PT_INTERP:
            raise UserError(
                f"{what} is dynamically linked",
                "the loader must be a static executable",
            )
        if p_type == PT_LOAD:
            if p_align and p_align & (p_align - 1):
                raise UserError(
                    f"{what} has a PT_LOAD alignment {p_align} that is not a power of two",
                    "relink it",
                )
            if p_offset + p_filesz > len(data):
                raise UserError(
                    f"{what} has a segment beyond the end of the file",
                    "the loader binary is truncated",
                )
            max_align = max(max_align, p_align)
    return Elf(machine, ELF_ARCH[machine], phoff, phnum, phentsize, max_align)


def relocate_loader(data: bytes, elf: Elf, l_off: int) -> bytes:
    """The loader as embedded at L_OFF: every program header's p_offset += L_OFF, nothing else changed."""
    out = bytearray(data)
    for i in range(elf.phnum):
        at = elf.phoff + i * elf.phentsize + 8  # p_offset follows p_type and p_flags
        (p_offset,) = struct.unpack_from("<Q", out, at)
        struct.pack_into("<Q", out, at, p_offset + l_off)
    return bytes(out)


def unrelocate_loader(data: bytes, l_off: int) -> bytes:
    """Inverse of relocate_loader: the original loader file from its embedded copy."""
    elf = parse_elf_unchecked(data)
    out = bytearray(data)
    for i in range(elf.phnum):
        at = elf.phoff + i * elf.phentsize + 8
        (p_offset,) = struct.unpack_from("<Q", out, at)
        struct.pack_into("<Q", out, at, p_offset - l_off)
    return bytes(out)


def parse_elf_unchecked(data: bytes) -> Elf:
    (_, _, machine, _, _, phoff, _, _, _, phentsize, phnum, _, _, _) = EHDR.unpack_from(data, 0)
    return Elf(machine, ELF_ARCH.get(machine, str(machine)), phoff, phnum, phentsize, 0)


PT_PHDR = 6
PF_R = 4
HEAD_PHDR_OFFSET = BLOCK  # the head program header table sits right after tar header #1


def head_program_headers(data: bytes, elf: Elf, l_off: int) -> bytes:
    """The program header table the kernel reads (at file offset 512, see docs/format.md).

    It is the loader's own table with every p_offset += L_OFF, plus one read-only PT_LOAD that maps the file's
    first L_OFF bytes (this table included) just below the loader's lowest segment. With it, AT_PHDR points
    at this table however it is computed: by the segment that holds e_phoff (Linux >= 5.18), or as
    "lowest vaddr - its p_offset + e_phoff" (older kernels, qemu-user). musl's static start-up walks AT_PHDR
    to find PT_TLS, so a wrong AT_PHDR crashes the loader before main().
    """
    entries = [list(PHDR.unpack_from(data, elf.phoff + i * elf.phentsize)) for i in range(elf.phnum)]
    loads = [e for e in entries if e[0] == PT_LOAD]
    min_vaddr = min(e[3] for e in loads)
    if e_type_of(data) != 2 or min_vaddr < l_off + 0x10000:
        raise UserError(
            "the loader is not a fixed-address static executable (ET_EXEC above 64 KiB)",
            "build it with the project's static_c_binary toolchain (-static, no PIE)",
        )
    # The head PT_LOAD maps file offset 0, so its vaddr must be a multiple of the alignment: put it L_OFF below
    # the page holding the lowest segment (= min_vaddr - L_OFF for the usual first segment at offset 0).
    align = max(elf.max_load_align, MIN_LOADER_OFFSET)
    head_vaddr = min_vaddr - (min_vaddr % align) - l_off
    size = (len(entries) + 1) * PHDR.size
    if HEAD_PHDR_OFFSET + size > l_off or head_vaddr < 0x10000:
        raise UserError(
            "the loader's program headers do not fit below its lowest segment",
            "link the loader higher or with fewer program headers",
        )
    out = []
    for e in entries:
        e[2] += l_off  # p_offset
        if e[0] == PT_PHDR:
            e = [
                PT_PHDR,
                PF_R,
                HEAD_PHDR_OFFSET,
                head_vaddr + HEAD_PHDR_OFFSET,
                head_vaddr + HEAD_PHDR_OFFSET,
                size,
                size,
                8,
            ]
        out.append(e)
    head_load = [
        PT_LOAD,
        PF_R,
        0,
        head_vaddr,
        head_vaddr,
        HEAD_PHDR_OFFSET + size,
        HEAD_PHDR_OFFSET + size,
        max(elf.max_load_align, MIN_LOADER_OFFSET),
    ]
    # PT_PHDR, if present, must precede every PT_LOAD; PT_LOADs must be sorted by vaddr.
    first_load = next(i for i, e in enumerate(out) if e[0] == PT_LOAD)
    out.insert(first_load, head_load)
    return b"".join(PHDR.pack(*e) for e in out)


def e_type_of(data: bytes) -> int:
    return EHDR.unpack_from(data, 0)[1]


def head_elf_header(data: bytes, l_off: int) -> bytes:
    """The 64-byte ELF header at file offset 0: the head program header table, no section headers."""
    fields = list(EHDR.unpack_from(data, 0))
    fields[5] = HEAD_PHDR_OFFSET  # e_phoff
    fields[6] = 0  # e_shoff
    fields[10] += 1  # e_phnum: the head PT_LOAD
    fields[12] = 0  # e_shnum
    fields[13] = 0  # e_shstrndx
    return EHDR.pack(*fields)


# ---------------------------------------------------------------------------------------------------- tar


def _octal(value: int, width: int) -> bytes:
    """A NUL-terminated octal field; base-256 (GNU) when the value does not fit."""
    if value < 0:
        raise ValueError("negative tar field")
    text = b"%0*o" % (width - 1, value)
    if len(text) <= width - 1:
        return text + b"\0"
    return b"\x80" + value.to_bytes(width - 1, "big")


def ustar_header(name: bytes, size: int, mode: int, mtime: int) -> bytes:
    """A ustar header for a regular file owned by 0:0. `name` is the raw 100-byte name field (or shorter)."""
    if len(name) > 100:
        raise ValueError(f"tar name too long: {name!r}")
    h = bytearray(BLOCK)
    h[0 : len(name)] = name
    h[100:108] = _octal(mode, 8)
    h[108:116] = _octal(0, 8)
    h[116:124] = _octal(0, 8)
    h[124:136] = _octal(size, 12)
    h[136:148] = _octal(max(0, mtime), 12)
    h[148:156] = b" " * 8
    h[156:157] = b"0"
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    h[329:337] = _octal(0, 8)
    h[337:345] = _octal(0, 8)
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def pad_len(n: int) -> int:
    return (-n) % BLOCK


# ---------------------------------------------------------------------------------------------------- footer


class Footer(Record):
    __slots__ = ("flags", "tar_end", "meta_size", "sig_offset", "sig_size", "loader_offset", "version")
    _fields = __slots__
    _defaults = {"version": FORMAT_VERSION}
    flags: int
    tar_end: int
    meta_size: int
    sig_offset: int
    sig_size: int
    loader_offset: int
    version: int

    def pack(self) -> bytes:
        return FOOTER.pack(
            FOOTER_MAGIC,
            self.version,
            self.flags,
            self.tar_end,
            self.meta_size,
            self.sig_offset,
            self.sig_size,
            self.loader_offset,
            FOOTER_END_MAGIC,
        )

    @staticmethod
    def unpack(data: bytes) -> Footer | None:
        """None when the bytes are not an oci2bin footer."""
        if len(data) != FOOTER_SIZE:
            return None
        magic, version, flags, tar_end, m_size, sig_off, sig_len, l_off, end = FOOTER.unpack(data)
        if magic != FOOTER_MAGIC or end != FOOTER_END_MAGIC:
            return None
        return Footer(flags, tar_end, m_size, sig_off, sig_len, l_off, version)


def source_date_epoch() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise UserError(
            f"SOURCE_DATE_EPOCH={value!r} is not an integer",
            "set it to seconds since 1970",
        ) from None
