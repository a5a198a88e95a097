"""Turn a pasted list or a CSV file into invitee rows, naming the row of every problem."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import urllib.parse
from dataclasses import dataclass

from invite_desk.services.errors import DomainError

# Header names as office software writes them, in the languages members' offices use.
EMAIL_HEADERS = {"email", "e-mail", "mail", "email address", "e-mail address", "courriel",
                 "adresse", "adresse e-mail", "adresse électronique", "e-mail-adresse",
                 "e-mailadresse", "e-mailadres", "emailadres", "correo", "correo electrónico",
                 "correo electronico", "indirizzo email", "indirizzo e-mail",
                 "endereço de e-mail", "endereço de email", "e-post", "e-postadress"}
NAME_HEADERS = {"name", "full name", "fullname", "nom", "invitee", "display name",
                "nom complet", "nombre", "nombre completo", "nome", "nome completo", "naam",
                "volledige naam", "vollständiger name", "namn", "navn"}
# Beside a given-name or a surname column these name the other half ("Vorname;Name").
_BARE_NAME_HEADERS = {"name", "nom", "nombre", "nome", "naam", "namn", "navn"}
FIRST_HEADERS = {"first name", "firstname", "given name", "prénom", "prenom", "vorname",
                 "voornaam", "primer nombre", "primo nome", "förnamn", "fornavn"}
LAST_HEADERS = {"last name", "lastname", "surname", "family name", "nom de famille", "nachname",
                "familienname", "achternaam", "apellido", "apellidos", "cognome", "sobrenome",
                "apelido", "efternamn", "etternavn"}
MESSAGE_HEADERS = {"message", "personal message", "note", "nachricht", "mensaje", "messaggio",
                   "bericht", "mensagem", "meddelande", "melding"}

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
# Invisible characters that copy-paste and Windows editors leave around addresses (a byte
# order mark, zero-width spaces, word joiners, soft hyphens): never part of an address or name.
_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u2060\u00ad"))
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
    problem: str = ""  # why this row cannot be read as one invitee (pre-flight: invalid)


@dataclass(frozen=True)
class ImportResult:
    rows: tuple[InviteeInput, ...]
    notes: tuple[str, ...] = ()  # e.g. "read as Latin-1", "no header row"


def clean_name(text: str) -> str:
    """One line, no control characters: a name may end up in a header, so CR/LF never survive."""
    text = text.replace("\r", " ").replace("\n", " ").translate(_INVISIBLE)
    return _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()


def _visible(text: str) -> str:
    return text.translate(_INVISIBLE)


def clean_message(text: str) -> str:
    """Keep line breaks (the message is body text), drop other control characters."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text).strip()


# Between invitees on one line: commas, semicolons, tabs (and, between bare addresses, spaces).
# Full-width and ideographic commas and semicolons, and the Arabic comma, as CJK and
# Arabic keyboards type them: separators, never part of an address anyone has.
_WIDE_SEPARATORS = "\uff0c\uff1b\u3001\u060c"
_SEPARATORS = ",;\t" + _WIDE_SEPARATORS
_MAILTO = re.compile(r"^mailto:", re.IGNORECASE)
# Around a bare address: quotes, brackets and sentence punctuation that are not part of it.
_LEADING = "\"(<["
_TRAILING = "\"'.,;:!?)>]}\u3002" + _WIDE_SEPARATORS
_MAILBOX = re.compile(r'\s*(?P<name>(?:"(?:[^"\\]|\\.)*"|[^<"])*?)\s*<(?P<email>[^<>]*)>')
# The common case, read without the general parser: one address and nothing around it.
_PLAIN = re.compile(r"[^\s,;:<>\"()\[\]@\uff0c\uff1b\u3001\u060c]+@"
                    r"[^\s,;:<>\"'()\[\]@\uff0c\uff1b\u3001\u060c]*[A-Za-z0-9]")
_LOOKS_LIKE_ADDRESS = re.compile(r"[^@\s\"]+@[^@\s\"]+\.[^@\s\"]+")
_LEADING_ADDRESSES = re.compile(r"\s*(?:[^@\s\"<>]+@[^@\s\"<>]+\.[^@\s\"<>]+(?:\s+|$))+")


@dataclass(frozen=True)
class _Piece:
    """One invitee candidate read from text: an address (maybe with a name), or text without one."""

    text: str  # as written, for messages
    email: str = ""
    name: str = ""
    bracketed: bool = False  # written as Name <address>
    problem: str = ""
    loose: bool = False  # `address Name` / `Name address`: the name is the words around it


def _bare(word: str) -> str:
    """A word that carries an address, without mailto: or the punctuation around it."""
    word = word.strip()
    while word and word[0] in _LEADING:
        word = word[1:]
    if len(word) > 1 and word[0] == "'" and word[-1] == "'":
        word = word[1:-1]
    if _MAILTO.match(word):
        word = urllib.parse.unquote(_MAILTO.sub("", word).split("?", 1)[0])
    while word and word[-1] in _TRAILING:
        if word[-1] == "]" and "[" in word:  # an IP-literal domain: validation judges it
            break
        if word[-1] == "'" and word.count("'") % 2 == 0:
            break
        word = word[:-1]
    return word


def _split_outside(text: str, separators: str) -> list[str]:
    """Split on any of `separators` outside "quoted names" and <angle addresses>."""
    parts: list[str] = []
    current: list[str] = []
    quoted = angle = escaped = curly = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif curly and char in "\u201d\u201c\u00bb" and not quoted and not angle:
            curly = False
        elif char in "\u201c\u201e\u00ab" and not quoted and not angle:
            curly = True  # double ones only: ‘ and ’ are apostrophes too (O’Brien)
        elif curly:
            pass  # a separator inside “Lee, Ann” is part of the name
        elif char == '"' and not angle:
            quoted = not quoted
        elif char == "<" and not quoted:
            angle = True
        elif char == ">" and not quoted:
            angle = False
        elif char in separators and not quoted and not angle:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


# Quotes as word processors and keyboards type them: “…”, „…“, «…», ‘…’, ‚…‘, ‹…›.
_CURLY_OPENING = "\u201c\u201e\u00ab\u2018\u201a\u2039"
_CURLY_CLOSING = "\u201d\u201c\u00bb\u2019\u2018\u203a"


def _curly_wrapped(text: str) -> str | None:
    """The text inside one pair of curly quotes around all of it, else None."""
    if len(text) >= 2 and text[0] in _CURLY_OPENING and text[-1] in _CURLY_CLOSING:
        inner = text[1:-1]
        if not any(c in _CURLY_OPENING or c in _CURLY_CLOSING for c in inner):
            return inner
    return None


def _unquote_name(text: str) -> str:
    text = text.strip()
    curly = _curly_wrapped(text)
    if curly is not None:
        text = curly
    elif len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = re.sub(r"\\(.)", r"\1", text[1:-1])
    elif len(text) >= 2 and text[0] == "(" and text[-1] == ")" and "(" not in text[1:]:
        text = text[1:-1]  # `jane@x.org (Jane Doe)`, the old way of writing a name
    return clean_name(text)


def _pieces(entry: str) -> list[_Piece]:
    """The invitees of one entry (the text between separators): `Name <a>`, `a`, `a Name`,
    `Name a`, or addresses separated by spaces."""
    text = entry.strip()
    inner = (text[1:-1] if len(text) > 2 and text[0] == text[-1] and text[0] in "\"'"
             else _curly_wrapped(text))
    if inner is not None and _PLAIN.fullmatch(inner):
        return [_Piece(text, inner)]  # "ann@x.org", as spreadsheets quote a cell
    pieces: list[_Piece] = []
    position = 0
    while position < len(text):
        match = _MAILBOX.match(text, position)
        if not match:
            break
        raw_name = match["name"]
        # `a@x.org Ann <b@y.org>` (addresses separated by spaces, as some programs copy
        # them): the bare addresses before the name are invitees of their own.
        lead = _LEADING_ADDRESSES.match(raw_name)
        if lead:
            raw_name = raw_name[lead.end():]
            # `a@x.org Jane <b@y.org>`: is Jane a's name or b's? Both rows say so.
            pieces.extend(_Piece(w, _bare(w), loose=bool(raw_name.strip()))
                          for w in lead.group(0).split())
        name = _unquote_name(raw_name)
        email = _bare(match["email"])
        problem = ""
        if not raw_name.strip().startswith('"') and _LOOKS_LIKE_ADDRESS.search(raw_name):
            problem = (f"\u201c{clean_name(match.group(0))}\u201d has an address in the name; "
                       "put the name in quotes, or each invitee on a line of their own.")
            # The addresses in that name are shown too, each as a row with the problem.
            pieces.extend(_Piece(w, _bare(w), "", False, problem) for w in raw_name.split()
                          if _LOOKS_LIKE_ADDRESS.search(w) and not w.startswith('"'))
        if name.lower() == email.lower():
            name = ""
        pieces.append(_Piece(match.group(0).strip(), email, name, True, problem))
        position = match.end()
        while position < len(text) and text[position] in " \t,;":
            position += 1
    rest = text[position:].strip()
    if not rest or not any(ch.isalnum() for ch in rest):  # e.g. the full stop after a list
        return pieces
    words = rest.split()
    addresses = [w for w in words if "@" in w and not w.startswith('"')]
    if not addresses:  # a name, a typo, or part of a line we cannot read
        return [*pieces, _Piece(rest)]
    if len(addresses) == len(words):
        return [*pieces, *(_Piece(w, _bare(w)) for w in words)]
    if len(addresses) == 1 and not pieces:
        name = " ".join(w for w in words if w is not addresses[0])
        return [_Piece(rest, _bare(addresses[0]), _unquote_name(name), loose=True)]
    problem = (f"\u201c{clean_name(rest)}\u201d mixes addresses and a name; write one invitee "
               "per line, or Name <address> for each.")
    return [*pieces, *(_Piece(rest, _bare(a), "", False, problem) for a in addresses)]


def _merge_names(pieces: list[_Piece]) -> list[_Piece]:
    """`Doe, Jane <jane@x.org>`: text without an address just before a named mailbox is the
    start of its name, the way mail programs show "Last, First"."""
    merged: list[_Piece] = []
    for piece in pieces:
        previous = merged[-1] if merged else None
        if (previous is not None and not previous.email and "@" not in previous.text
                and piece.bracketed and piece.name and not piece.problem):
            merged[-1] = _Piece(f"{previous.text}, {piece.text}", piece.email,
                                clean_name(f"{previous.text}, {piece.name}"), True)
            continue
        merged.append(piece)
    return merged


def split_addresses(text: str) -> list[_Piece]:
    """Every invitee in a line or a cell, in order: commas, semicolons, tabs and spaces
    separate them, outside "quoted names" and <addresses>. `Doe, Jane <jane@x.org>` (how
    Outlook copies "Last, First") keeps the comma in the name. Curly and angle double quotes
    (what Word and Outlook type for ") are quotes too."""
    text = _visible(text)
    plain = text.strip()
    if _PLAIN.fullmatch(plain):
        return [_Piece(plain, plain)]
    pieces: list[_Piece] = []
    for entry in _split_outside(text, _SEPARATORS):
        pieces.extend(_pieces(entry))
    pieces = _merge_names(pieces)
    loose = any(p.loose and (p.name or not p.bracketed) for p in pieces)
    if sum(1 for p in pieces if p.email) > 1 and (
            (loose and any(p.bracketed for p in pieces))
            or any(p.problem and not p.bracketed for p in pieces)):
        # `a@x.org Lee, Ann <b@y.org>`: whose name is "Lee"? Several addresses on a line
        # with names written around them can be read more than one way: ask.
        problem = (f"\u201c{clean_name(text)[:80]}\u201d mixes several addresses with names "
                   "that are not in Name <address> form; put each invitee on a line of their "
                   "own, or write \"Name\" <address> for each.")
        pieces = [dataclasses.replace(p, problem=p.problem or problem) if p.email else p
                  for p in pieces]
    return pieces


def _no_address(text: str) -> str:
    shown = clean_name(text)
    shown = shown if len(shown) <= 60 else shown[:59] + "…"
    return (f"\u201c{shown}\u201d has no email address. If it is part of a name, put the name "
            "in quotes: \"Doe, Jane\" <jane@example.org>.")


def _spreadsheet_row(number: int, text: str) -> InviteeInput | None:
    """A row copied from a spreadsheet (cells separated by tabs) with one address cell first
    or last: one invitee, named by the other cells (First | Last | Email, Email | Name)."""
    cells = [c.strip() for c in text.split("\t") if c.strip()]
    holding = [i for i, c in enumerate(cells) if "@" in c]
    if len(cells) < 2 or len(holding) != 1 or holding[0] not in (0, len(cells) - 1):
        return None
    pieces = split_addresses(cells[holding[0]])
    if len(pieces) != 1 or not _is_bare(pieces[0]):
        return None
    name = " ".join(c for i, c in enumerate(cells) if i != holding[0])
    return InviteeInput(number, pieces[0].email, clean_name(name))


def _invitees(number: int, text: str) -> list[InviteeInput]:
    """The rows of one pasted line; anything unclear becomes a row with a problem."""
    if "\t" in text:
        row = _spreadsheet_row(number, text)
        if row is not None:
            return [row]
    pieces = split_addresses(text)
    if len(pieces) >= 2:
        # The `email, Name` / `email<TAB>Name` formats (the name may hold commas), and
        # `Name, email`.
        first, rest = pieces[0], pieces[1:]
        if _is_bare(first) and not any(p.email or "@" in p.text for p in rest):
            return [InviteeInput(number, first.email, clean_name(_after_first_separator(text)))]
        if len(pieces) == 2 and _is_bare(pieces[1]) and not first.email and "@" not in first.text:
            return [InviteeInput(number, pieces[1].email, clean_name(first.text))]
    rows = [
        InviteeInput(number, p.email, p.name, problem=p.problem) if p.email
        else InviteeInput(number, p.text.strip(), problem=_no_address(p.text))
        for p in pieces
    ]
    if len(rows) == 1 and not pieces[0].email:  # one line of text without an address
        rows = [InviteeInput(number, text.strip())]  # validation says why
    return rows


def _is_bare(piece: _Piece) -> bool:
    return bool(piece.email) and not piece.name and not piece.bracketed and not piece.problem


def _after_first_separator(text: str) -> str:
    parts = re.split(f"[{_SEPARATORS}]", text.strip(), maxsplit=1)
    return parts[1] if len(parts) == 2 else ""


def email_cell(number: int, cell: str, name: str, message: str) -> list[InviteeInput]:
    """The invitee of a CSV email cell; a cell with several addresses never becomes one
    invitee: each address is shown with the problem."""
    pieces = split_addresses(cell)
    addresses = [p for p in pieces if p.email]
    if len(addresses) > 1:
        listed = ", ".join(p.email for p in addresses)
        problem = (f"The email cell holds {len(addresses)} addresses ({listed}); put each "
                   "invitee on a row of their own.")
        return [InviteeInput(number, p.email, p.name or name, message, problem) for p in addresses]
    if len(addresses) == 1:
        only = addresses[0]
        others = [p for p in pieces if not p.email]
        problem = only.problem or (f"The email cell also holds \u201c{clean_name(others[0].text)}"
                                   "\u201d; keep only the address in it." if others else "")
        written = cell.strip()
        if not problem and written.endswith(".") and not only.bracketed:
            # In a column of addresses a final period is a typo, not the end of a sentence
            # (as in a pasted "Write to ann@x.org."): an address cannot end with one, so the
            # row is shown, not quietly mailed to what it might have meant.
            problem = (f"The address ends with a period (\u201c{clean_name(written)}\u201d); "
                       "an address cannot: remove it if it is a typo.")
        return [InviteeInput(number, only.email, name or only.name, message, problem)]
    return [InviteeInput(number, cell.strip(), name, message)]


# `To:`, `Cc:` as copied with the addresses from a mail's header (also German An:, French À:,
# Spanish Para:, Dutch Aan:): a label, not part of the first invitee's name.
_HEADER_LABEL = re.compile(r"^(?:to|cc|bcc|an|à|para|aan)\s*:\s*(?=\S)", re.IGNORECASE)


def _column_titles(line: str) -> bool:
    """A first pasted line that only names columns, one of them the address column."""
    cells = [_norm_header(c) for c in re.split(f"[{_SEPARATORS}]", line) if c.strip()]
    known = EMAIL_HEADERS | NAME_HEADERS | FIRST_HEADERS | LAST_HEADERS | MESSAGE_HEADERS
    return any(c in EMAIL_HEADERS for c in cells) and all(c in known for c in cells)


def parse_pasted(text: str) -> ImportResult:
    """Every invitee on every line: `email`, `Name <email>`, `email, Name`, `email<TAB>Name`,
    or several addresses separated by commas, semicolons, tabs or spaces (as mail programs
    copy them). Text that cannot be read as invitees becomes a row with a problem."""
    rows: list[InviteeInput] = []
    first = True
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = _visible(line).strip()
        if not stripped:
            continue
        if first and _column_titles(stripped):
            first = False
            continue  # "First name<TAB>Last name<TAB>Email" copied with the rows below it
        first = False
        if stripped.startswith("#") and "@" not in stripped.split()[0]:
            # A comment (`#ann@x.org` is an address: # may start one). An address on a comment
            # (`# ann@x.org`, `#1 ann@x.org`) is neither invited nor dropped unseen: it is a
            # row that says why.
            rows.extend(
                InviteeInput(number, p.email, problem=(
                    f"This line starts with #, as a comment does, so {p.email} was not read "
                    "as an invitee; remove the # to invite them."))
                for p in split_addresses(stripped.lstrip("#")) if "@" in p.email)
            continue
        rows.extend(_invitees(number, _HEADER_LABEL.sub("", stripped)))
    return ImportResult(tuple(rows))


_WORKBOOK_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")  # .xlsx/.ods (zip), .xls


def _utf16_byte_order(data: bytes) -> str | None:
    """The codec of a UTF-16 file: by its byte order mark (Excel's "Unicode Text" has one), else
    by where the NUL bytes fall (every other byte is NUL in mostly-ASCII text); None if neither."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"  # the codec reads the mark and drops it
    sample = data[:4096]
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    half = len(sample) // 2
    if half and odd >= half * 0.3 and even == 0:
        return "utf-16-le"
    if half and even >= half * 0.3 and odd == 0:
        return "utf-16-be"
    return None


def decode_csv(data: bytes) -> tuple[str, list[str]]:
    """UTF-8 (with or without BOM), UTF-16 (Excel's "Unicode Text"), else Windows-1252 /
    Latin-1; the note says when the file was not read as UTF-8 or UTF-16."""
    if data.startswith(_WORKBOOK_MAGIC):
        raise ImportFailed(
            "This is an Excel workbook, not a CSV file. In Excel choose File > Save As > "
            "CSV UTF-8 (Comma delimited), then import that file."
        )
    codec = _utf16_byte_order(data)
    if codec is not None:
        try:
            return data.decode(codec).removeprefix("\ufeff"), []
        except UnicodeDecodeError as exc:
            raise ImportFailed(
                f"This UTF-16 file is damaged near byte {exc.start}: it cannot be read as text. "
                "Save it again as CSV UTF-8 and import it again."
            ) from None
    if b"\x00" in data[:4096]:
        raise ImportFailed(
            "This file looks binary (it contains NUL bytes), not like a CSV or text file. "
            "Save it as CSV UTF-8 and import it again."
        )
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        # Excel on Windows saves "CSV" in Windows-1252: Latin-1 plus curly quotes, dashes and
        # the euro sign where Latin-1 has invisible control characters.
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        return text, [
            f"The file is not valid UTF-8 (first problem on line {line}); it was read as Latin-1 "
            "(Windows-1252). Check accented names in the pre-flight table."
        ]


_SEP_LINE = re.compile(r"sep=(?P<sep>[^\r\n\"])[ \t]*(?:\r\n|\r|\n)", re.IGNORECASE)
_DELIMITERS = "\t;,|"  # on a tie, the one least likely inside a name


def _consistency(sample: str, delimiter: str) -> tuple[float, int]:
    """How well `delimiter` splits the sample's rows into the same number (> 1) of columns:
    the share of rows with the most common count, and that count."""
    lines = sample.splitlines()[:-1] if len(sample) >= 8192 else sample.splitlines()
    try:
        counts = [len(r) for r in csv.reader(lines[:100], delimiter=delimiter) if any(r)]
    except csv.Error:
        return 0.0, 0
    if not counts:
        return 0.0, 0
    mode = max(set(counts), key=counts.count)
    return (counts.count(mode) / len(counts), mode) if mode > 1 else (0.0, mode)


def _sniff(sample: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    # The sniffer counts characters: a tab or semicolon file whose names read "Lee, Ann"
    # looks comma-separated to it. Keep its choice only if no delimiter splits the rows
    # into columns more consistently.
    scores = {d: _consistency(sample, d)[0] for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: scores[d])
    if scores[best] > scores.get(dialect.delimiter, 0.0):
        class Chosen(csv.excel):
            delimiter = best
        return Chosen
    return dialect


def _norm_header(cell: str) -> str:
    """Lower case, single spaces, without the marks forms put after a title (`Email *`,
    `Name:`); `e_mail` reads as `e-mail`."""
    text = _SPACES.sub(" ", cell.strip().strip("\ufeff").lower().replace("_", " "))
    return re.sub(r"\be mail\b", "e-mail", text.rstrip(" :*."))


def _check_closed_quotes(text: str, dialect: type[csv.Dialect] | csv.Dialect,
                         table: list[tuple[int, list[str]]]) -> None:
    """A quote that is never closed makes the reader put the rest of the file in one cell;
    say so, naming the line where that quote opens."""
    if not table:
        return
    start, row = table[-1]
    lines = io.StringIO(text, newline="").readlines()
    if start > len(lines) or not row or not any("\n" in c or "\r" in c for c in row):
        return
    tail = "".join(lines[start - 1:])
    try:
        for _ in csv.reader(io.StringIO(tail, newline=""), dialect, strict=True):
            pass
    except csv.Error as exc:
        if "unexpected end of data" not in str(exc):
            return
        opened = start + sum(c.count("\n") + c.count("\r") - c.count("\r\n") for c in row[:-1])
        merged = len(lines) - opened + 1
        raise ImportFailed(
            f"Line {opened} opens a quote (\") that is never closed, so the {merged} lines from "
            "there to the end of the file would become one cell. Close or remove that quote, "
            "then import the file again."
        ) from None


# A word ending in a domain (example.org, ann(at)example.org): never a column title.
_DOMAIN_WORD = re.compile(r"(?:^|\s)[^\s@]*[A-Za-z0-9]\.[A-Za-z]{2,24}\s*$")


def _holds_addresses(body: list[tuple[int, list[str]]], index: int) -> bool:
    return any(index < len(r) and _LOOKS_LIKE_ADDRESS.search(r[index]) for _, r in body)


def _address_column(header: list[str], body: list[tuple[int, list[str]]]) -> int | None:
    """The column that holds the addresses when none is named "email": the one with the most
    cells holding an address, preferring a header that mentions mail."""
    best: tuple[int, int, int] | None = None
    for index, title in enumerate(header):
        count = sum(1 for _, r in body if index < len(r) and _LOOKS_LIKE_ADDRESS.search(r[index]))
        if not count:
            continue
        rank = (1 if "mail" in title or "courriel" in title else 0, count, -index)
        if best is None or rank > best:
            best = rank
    return -best[2] if best is not None else None


def _csv_invitees(line: int, email: str, name: str, message: str) -> list[InviteeInput]:
    """The invitees of one CSV row. A name cell that holds an address is never somebody's
    name: the row and that address are both shown with the problem."""
    rows = email_cell(line, email, clean_name(name), message)
    if "@" not in name:
        return rows
    strays = [p.email for p in split_addresses(name)
              if p.email and _LOOKS_LIKE_ADDRESS.fullmatch(p.email)]
    if not strays:
        return rows
    listed = ", ".join(strays)
    problem = (f"The name cell holds an address ({listed}); put each invitee on a row of their "
               "own, with the address in the email column.")
    known = {r.email.lower() for r in rows}
    return [*(dataclasses.replace(r, problem=r.problem or problem) for r in rows),
            *(InviteeInput(line, a, "", message, problem) for a in strays
              if a.lower() not in known)]


def parse_csv(data: bytes) -> ImportResult:
    """Columns email, name (or first/last name), message; header optional; delimiter sniffed."""
    text, notes = decode_csv(data)
    if not text.strip():
        raise ImportFailed("The file is empty.")
    directive = _SEP_LINE.match(text)
    dialect: type[csv.Dialect] | csv.Dialect
    if directive is not None:
        sep = directive["sep"]
        # `sep=;` (Excel writes it, and reads it, to name the delimiter): not a row. Its line
        # stays, empty, so rows keep the numbers an editor shows.
        class Named(csv.excel):
            delimiter = sep
        dialect = Named
        text = "\n" + text[directive.end():]
    else:
        dialect = _sniff(text[:8192])
    # The csv module refuses a cell over 128 KiB and would refuse the whole file; no cell is
    # longer than the file, so a long one becomes one row that validation calls invalid.
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
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
    _check_closed_quotes(text, dialect, table)
    table = [(n, r) for n, r in table if any(cell.strip() for cell in r)]
    if not table:
        raise ImportFailed("The file has no rows.")
    first = [_norm_header(c) for c in table[0][1]]
    columns: dict[str, int] = {}
    known = EMAIL_HEADERS | NAME_HEADERS | MESSAGE_HEADERS | FIRST_HEADERS | LAST_HEADERS
    # A first row without any address is a header row, even with names we do not know
    # ("Primary Email", "E-mail 1 - Value", "Emails"), unless it holds a domain
    # ("ann.example.org", "ann at example.org"): an invitee whose address lost its @, who
    # must be shown with the reason rather than taken for column titles.
    named = any(c in known for c in first)
    mistyped = not named and any(_DOMAIN_WORD.search(c) for c in table[0][1])
    has_header = named or (not mistyped and not any("@" in c for c in table[0][1]))
    if has_header:
        for index, cell in enumerate(first):
            for key, names in (("email", EMAIL_HEADERS), ("name", NAME_HEADERS),
                               ("first", FIRST_HEADERS), ("last", LAST_HEADERS),
                               ("message", MESSAGE_HEADERS)):
                if cell in names and key not in columns:
                    columns[key] = index
        if ("name" in columns and first[columns["name"]] in _BARE_NAME_HEADERS
                and ("first" in columns) != ("last" in columns)):
            # "Vorname;Name", "Prénom;Nom": beside a given name, "name" is the surname;
            # "Nombre;Apellidos", "Nome;Cognome": beside a surname, it is the given name.
            columns["last" if "first" in columns else "first"] = columns.pop("name")
        body = table[1:]
        if "email" not in columns:
            guessed = _address_column(first, body)
            if guessed is None:
                found = ", ".join(c for c in first if c) or "(empty)"
                raise ImportFailed(
                    f"No email column: the header row has {found}. Add a column named \"email\"."
                )
            columns["email"] = guessed
            notes.append(f"No column is named \"email\": the addresses were read from the "
                         f"column \"{table[0][1][guessed].strip()}\".")
        others = [table[0][1][i].strip() for i, c in enumerate(first)
                  if i != columns["email"] and "mail" in c and _holds_addresses(body, i)]
        if others:
            listed = ", ".join(f"\"{o}\"" for o in others)
            notes.append(f"Only the column \"{table[0][1][columns['email']].strip()}\" was "
                         f"read as addresses; {listed} also hold addresses and were not read "
                         "(one invitation per person).")
        if not named:
            titles = ", ".join(c.strip() for c in table[0][1] if c.strip())
            notes.append(f"Row 1 ({titles}) was read as column titles, not as an invitee.")
    else:
        notes.append("No header row found: columns read as email, name, message.")
        body = table

    def value(row: list[str], key: str) -> str:
        index = columns.get(key)
        return row[index] if index is not None and index < len(row) else ""

    rows: list[InviteeInput] = []
    for line, row in body:
        if has_header:
            email, name, message = (value(row, "email"),
                                    value(row, "name") or f"{value(row, 'first')} {value(row, 'last')}",
                                    value(row, "message"))
        else:
            # Without a header, each row's address is the cell that has one: `Name, email`
            # and `email, Name` rows may be mixed in one file.
            at = next((i for i, c in enumerate(row) if "@" in c),
                      next((i for i, c in enumerate(row) if _DOMAIN_WORD.search(c)), 0))
            rest = [c for i, c in enumerate(row) if i != at]
            email, name, message = row[at], rest[0] if rest else "", rest[1] if len(rest) > 1 else ""
        rows.extend(_csv_invitees(line, email, name, clean_message(message)))
    return ImportResult(tuple(rows), tuple(notes))
