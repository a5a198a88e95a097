"""Turn a pasted list or a CSV file into invitee rows, naming the row of every problem."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from invite_desk.services.errors import DomainError

EMAIL_HEADERS = {"email", "e-mail", "mail", "email address", "e-mail address", "courriel", "adresse"}
NAME_HEADERS = {"name", "full name", "fullname", "nom", "invitee", "display name"}
FIRST_HEADERS = {"first name", "firstname", "given name", "prénom", "prenom"}
LAST_HEADERS = {"last name", "lastname", "surname", "family name", "nom de famille"}
MESSAGE_HEADERS = {"message", "personal message", "note"}

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
_SPACES = re.compile(r"\s+")
_ANGLE = re.compile(r"^\s*(?P<name>.*?)\s*<(?P<email>[^<>]+)>\s*$")


class ImportFailed(DomainError):
    """The whole file cannot be read (e.g. no email column)."""


@dataclass(frozen=True)
class InviteeInput:
    """One invitee as entered; `row` is the 1-based line of the paste or the CSV file."""

    row: int
    email: str
    name: str = ""
    message: str = ""


@dataclass(frozen=True)
class ImportResult:
    rows: tuple[InviteeInput, ...]
    notes: tuple[str, ...] = ()  # e.g. "read as Latin-1", "no header row"


def clean_name(text: str) -> str:
    """One line, no control characters: a name may end up in a header, so CR/LF never survive."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", text.replace("\r", " ").replace("\n", " "))).strip()


def clean_message(text: str) -> str:
    """Keep line breaks (the message is body text), drop other control characters."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text).strip()


def parse_pasted(text: str) -> ImportResult:
    """One invitee per line: `email`, `Name <email>`, `email, Name` or `email<TAB>Name`."""
    rows: list[InviteeInput] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ANGLE.match(stripped)
        if match:
            rows.append(InviteeInput(number, match["email"].strip(),
                                     clean_name(match["name"].strip('"\' '))))
            continue
        parts = [p.strip() for p in re.split(r"[,;\t]", stripped, maxsplit=1)]
        if len(parts) == 2 and "@" not in parts[0] and "@" in parts[1]:
            parts.reverse()
        if len(parts) == 2 and "@" in parts[0] and parts[1] and " " not in parts[0]:
            rows.append(InviteeInput(number, parts[0], clean_name(parts[1])))
            continue
        # A line of several addresses separated by commas/spaces.
        tokens = [t for t in re.split(r"[\s,;]+", stripped) if t]
        if len(tokens) > 1 and all("@" in t for t in tokens):
            rows.extend(InviteeInput(number, t) for t in tokens)
        else:
            rows.append(InviteeInput(number, stripped))
    return ImportResult(tuple(rows))


def decode_csv(data: bytes) -> tuple[str, list[str]]:
    """UTF-8 (with or without BOM), else Latin-1; the note says which was used."""
    if b"\x00" in data[:4096]:
        raise ImportFailed(
            "This file looks binary or UTF-16 encoded (it contains NUL bytes). "
            "Save it as CSV UTF-8 and import it again."
        )
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return data.decode("latin-1"), [
            f"The file is not valid UTF-8 (first problem on line {line}); it was read as Latin-1. "
            "Check accented names in the pre-flight table."
        ]


def _sniff(sample: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def _norm_header(cell: str) -> str:
    return _SPACES.sub(" ", cell.strip().strip("\ufeff").lower().replace("_", " "))


def parse_csv(data: bytes) -> ImportResult:
    """Columns email, name (or first/last name), message; header optional; delimiter sniffed."""
    text, notes = decode_csv(data)
    if not text.strip():
        raise ImportFailed("The file is empty.")
    dialect = _sniff(text[:8192])
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    table: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for row in reader:
            # A quoted cell may span lines: name a row by the line it starts on.
            table.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ImportFailed(f"The file is not readable as CSV (line {reader.line_num}): {exc}") from None
    table = [(n, r) for n, r in table if any(cell.strip() for cell in r)]
    if not table:
        raise ImportFailed("The file has no rows.")
    first = [_norm_header(c) for c in table[0][1]]
    columns: dict[str, int] = {}
    has_header = any(c in EMAIL_HEADERS | NAME_HEADERS | MESSAGE_HEADERS | FIRST_HEADERS |
                     LAST_HEADERS for c in first)
    if has_header:
        for index, cell in enumerate(first):
            for key, names in (("email", EMAIL_HEADERS), ("name", NAME_HEADERS),
                               ("first", FIRST_HEADERS), ("last", LAST_HEADERS),
                               ("message", MESSAGE_HEADERS)):
                if cell in names and key not in columns:
                    columns[key] = index
        if "email" not in columns:
            found = ", ".join(c for c in first if c) or "(empty)"
            raise ImportFailed(
                f"No email column: the header row has {found}. Add a column named \"email\"."
            )
        body = table[1:]
    else:
        notes.append("No header row found: columns read as email, name, message.")
        email_col = next((i for i, c in enumerate(table[0][1]) if "@" in c), None)
        if email_col is None:
            raise ImportFailed(
                "No email column: the first row has no header named \"email\" and no address."
            )
        columns = {"email": email_col}
        others = [i for i in range(len(table[0][1])) if i != email_col]
        if others:
            columns["name"] = others[0]
        if len(others) > 1:
            columns["message"] = others[1]
        body = table

    def value(row: list[str], key: str) -> str:
        index = columns.get(key)
        return row[index] if index is not None and index < len(row) else ""

    rows = []
    for line, row in body:
        name = value(row, "name") or f"{value(row, 'first')} {value(row, 'last')}"
        rows.append(InviteeInput(line, value(row, "email").strip(), clean_name(name),
                                 clean_message(value(row, "message"))))
    return ImportResult(tuple(rows), tuple(notes))
