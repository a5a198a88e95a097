"""Small, valid images built byte by byte (no Qt), for tests that need a logo."""

from __future__ import annotations

import struct
import zlib


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int = 2, height: int = 2, *, rgb: tuple[int, int, int] = (11, 122, 117),
        pixels: bytes | None = None, header_size: tuple[int, int] | None = None) -> bytes:
    """An RGB PNG of `width` × `height`; `pixels` replaces the compressed rows and
    `header_size` the size the header claims (to build broken or hostile files)."""
    claimed_width, claimed_height = header_size or (width, height)
    header = struct.pack(">IIBBBBB", claimed_width, claimed_height, 8, 2, 0, 0, 0)
    if pixels is None:
        row = b"\x00" + bytes(rgb) * width
        pixels = zlib.compress(row * height)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixels)
            + png_chunk(b"IEND", b""))


# The classic 1 × 1 transparent GIF.
GIF_1X1 = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")

PNG_LOGO = png(4, 4)
