"""The organization's logo: only real PNG, JPEG, GIF or WebP images of bounded size are
stored, and their type is read from the bytes, never taken from the caller (issue 8)."""

from __future__ import annotations

import struct
import time
import zlib

import pytest
from PySide6.QtCore import QBuffer, QByteArray, QIODevice
from PySide6.QtGui import QColor, QImage
from sqlalchemy import select

from invite_desk.services import organization
from invite_desk.services.errors import ValidationFailed
from invite_desk.services.logo import MAX_LOGO_SIDE, inspect_logo
from invite_desk.services.models import AuditLog, Organization
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork
from tests.images import GIF_1X1, png, png_chunk


def encoded(fmt: str, width: int = 120, height: int = 40) -> bytes:
    """A real image written by Qt's encoders (outside the services, which never import Qt)."""
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor("#0B7A75"))
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    assert image.save(buffer, fmt), fmt
    buffer.close()
    return bytes(data.data())


def stored(uow: UnitOfWork, admin: Operator) -> tuple[bytes | None, str | None]:
    with uow:
        org = uow.session.get(Organization, admin.organization_id)
        assert org is not None
        return org.logo, org.logo_mime


def refused(uow: UnitOfWork, admin: Operator, data: bytes, mime: str = "image/png") -> str:
    """Try to store `data` as the logo; return the reason it was refused (nothing changed)."""
    before = stored(uow, admin)
    with pytest.raises(ValidationFailed) as caught:
        organization.update_organization(uow, admin, {"logo": data, "logo_mime": mime})
    assert stored(uow, admin) == before
    return caught.value.errors["logo"]


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"),
                                           ("WEBP", "image/webp")])
@pytest.mark.parametrize("size", [(1, 1), (120, 40), (MAX_LOGO_SIDE, 3)])
def test_real_images_are_stored_with_the_type_their_bytes_say(
    qapp: object, uow: UnitOfWork, admin: Operator, fmt: str, mime: str, size: tuple[int, int]
) -> None:
    data = encoded(fmt, *size)
    assert inspect_logo(data).width == size[0] and inspect_logo(data).height == size[1]
    # The caller's MIME type is a guess and is ignored.
    info = organization.update_organization(uow, admin, {"logo": data,
                                                         "logo_mime": "image/svg+xml"})
    assert (info.logo, info.logo_mime) == (data, mime)
    assert stored(uow, admin) == (data, mime)


def test_gif_and_hand_built_png_are_accepted_and_removing_the_logo_clears_its_type(
    uow: UnitOfWork, admin: Operator
) -> None:
    info = organization.update_organization(uow, admin, {"logo": GIF_1X1})
    assert info.logo_mime == "image/gif"
    info = organization.update_organization(uow, admin, {"logo": png(7, 3),
                                                         "logo_mime": "text/html"})
    assert info.logo_mime == "image/png"
    info = organization.update_organization(uow, admin, {"logo": None})
    assert (info.logo, info.logo_mime) == (None, None)
    assert stored(uow, admin) == (None, None)


def test_a_png_signature_followed_by_nothing_real_is_refused(
    uow: UnitOfWork, admin: Operator
) -> None:
    assert "not a valid one" in refused(uow, admin, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    assert "not a valid one" in refused(uow, admin, b"\x89PNG\r\n\x1a\n")


def test_an_html_page_named_logo_png_is_refused(uow: UnitOfWork, admin: Operator) -> None:
    page = b"<!doctype html><html><script>alert(document.cookie)</script></html>"
    reason = refused(uow, admin, page, "image/png")
    assert "PNG, JPEG, GIF or WebP" in reason and "whatever its name says" in reason


@pytest.mark.parametrize("svg", [
    b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    b'\xef\xbb\xbf<?xml version="1.0"?>\n<!DOCTYPE svg><svg onload="alert(1)"/>',
    b'  <SVG xmlns="http://www.w3.org/2000/svg"><image href="https://tracker.example/x"/></SVG>',
])
def test_svg_is_refused_with_a_reason(uow: UnitOfWork, admin: Operator, svg: bytes) -> None:
    reason = refused(uow, admin, svg, "image/svg+xml")
    assert "SVG logos are not accepted" in reason and "PNG" in reason


@pytest.mark.parametrize("claimed", [(100_000, 100_000), (MAX_LOGO_SIDE + 1, 1),
                                     (1, MAX_LOGO_SIDE + 1), (0, 10), (2**31, 2**31)])
def test_a_png_header_claiming_huge_dimensions_is_refused_before_decompressing(
    uow: UnitOfWork, admin: Operator, claimed: tuple[int, int]
) -> None:
    data = png(2, 2, header_size=claimed)
    reason = refused(uow, admin, data)
    assert f"{claimed[0]:,} × {claimed[1]:,} pixels" in reason and "2,048 × 2,048" in reason


def test_a_png_whose_pixels_inflate_beyond_its_size_is_refused_quickly(
    uow: UnitOfWork, admin: Operator
) -> None:
    # 2048 × 2048 claimed, but the compressed stream inflates to ~400 MB of zeros.
    bomb = zlib.compress(b"\x00" * (400 * 1024 * 1024 // 8), 9) * 8
    assert len(bomb) < 512 * 1024
    data = png(2048, 2048, pixels=bomb)
    started = time.monotonic()
    assert "pixels do not match" in refused(uow, admin, data)
    assert time.monotonic() - started < 5


def test_damaged_and_truncated_images_are_refused(qapp: object, uow: UnitOfWork,
                                                  admin: Operator) -> None:
    good = png(10, 10)
    flipped = bytearray(good)
    flipped[20] ^= 0xFF  # inside IHDR: the checksum no longer matches
    assert "checksum" in refused(uow, admin, bytes(flipped))
    assert "not a valid one" in refused(uow, admin, good[:-12])  # no IEND
    for fmt in ("JPEG", "WEBP"):
        data = encoded(fmt)
        assert "not a valid one" in refused(uow, admin, data[: len(data) // 3])
    assert "not a valid one" in refused(uow, admin, GIF_1X1[:-1])


def test_jpeg_gif_and_webp_headers_claiming_huge_dimensions_are_refused(
    qapp: object, uow: UnitOfWork, admin: Operator
) -> None:
    gif = bytearray(GIF_1X1)
    gif[6:10] = struct.pack("<HH", 60_000, 60_000)
    assert "60,000 × 60,000 pixels" in refused(uow, admin, bytes(gif))
    jpeg = bytearray(encoded("JPEG", 16, 16))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = struct.pack(">HH", 65_000, 65_000)
    assert "65,000 × 65,000 pixels" in refused(uow, admin, bytes(jpeg))
    webp = encoded("WEBP", 3000, 2)  # Qt writes it; we refuse its width
    assert "3,000 × 2 pixels" in refused(uow, admin, webp)


def test_a_logo_over_the_size_cap_is_refused(uow: UnitOfWork, admin: Operator) -> None:
    padding = png_chunk(b"tEXt", b"Comment\x00" + b"x" * (520 * 1024))
    data = png(4, 4)
    big = data[:-12] + padding + data[-12:]
    reason = refused(uow, admin, big)
    assert "at most 512 KB" in reason


def test_a_refused_logo_writes_no_audit_row(uow: UnitOfWork, admin: Operator) -> None:
    refused(uow, admin, b"GIF89a not really")
    with uow:
        assert uow.session.scalars(select(AuditLog).where(
            AuditLog.action == "organization.update")).first() is None
