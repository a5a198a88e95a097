"""Reading pasted lists and CSV files: encodings, delimiters, headers, and bad input named by row."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invite_desk.services.invitations.importing import ImportFailed, parse_csv, parse_pasted


def test_utf8_bom_semicolons_header_and_multiline_message() -> None:
    data = "\ufeffE-mail;Name;Message\nzoe@example.org;Zoë Martin;Hi!\nsam@example.org;Sam;\"two\nlines\"\n"
    result = parse_csv(data.encode("utf-8"))
    assert [(r.row, r.email, r.name, r.message) for r in result.rows] == [
        (2, "zoe@example.org", "Zoë Martin", "Hi!"),
        (3, "sam@example.org", "Sam", "two\nlines"),
    ]
    assert result.notes == ()


def test_latin1_file_is_read_with_a_note() -> None:
    result = parse_csv("email,name\nrene@example.org,René Müller\n".encode("latin-1"))
    assert result.rows[0].name == "René Müller"
    assert "Latin-1" in result.notes[0] and "line 2" in result.notes[0]


def test_no_header_tab_delimited() -> None:
    result = parse_csv(b"Ann\tann@example.org\tWelcome\nBo\tbo@example.org\t\n")
    assert [(r.email, r.name, r.message) for r in result.rows] == [
        ("ann@example.org", "Ann", "Welcome"), ("bo@example.org", "Bo", "")]
    assert any("No header" in n for n in result.notes)


def test_first_and_last_name_columns() -> None:
    result = parse_csv(b"First Name,Last Name,Email\nAda,Lovelace,ada@example.org\n")
    assert result.rows[0].name == "Ada Lovelace"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"name,message\nAnn,hi\n", 'No email column: the header row has name, message'),
        (b"", "empty"),
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00", "Excel workbook"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00", "Excel workbook"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b"\xff\xfee\x00m\x00\x00\xd8", "UTF-16"),  # a surrogate half at the end
        (b"just,some,words\nno,addresses,here\n", "No email column"),
    ],
)
def test_unreadable_files_say_why(data: bytes, expected: str) -> None:
    with pytest.raises(ImportFailed, match=expected):
        parse_csv(data)


def test_header_injection_in_names_is_flattened_and_messages_keep_their_lines() -> None:
    data = b'email,name,message\nx@example.org,"Eve\r\nBcc: all@example.org","Hi\r\nBcc: y@example.org"\n'
    row = parse_csv(data).rows[0]
    assert "\n" not in row.name and "\r" not in row.name
    assert row.name == "Eve Bcc: all@example.org"
    assert row.message == "Hi\nBcc: y@example.org"  # body text only, never a header


def test_jinja_in_a_personal_message_is_kept_as_text() -> None:
    row = parse_csv(b"email,message\nx@example.org,{{ config }} {% for x in y %}\n").rows[0]
    assert row.message == "{{ config }} {% for x in y %}"


def test_fifty_thousand_rows() -> None:
    lines = ["email,name"] + [f"person{i}@example.org,Person {i}" for i in range(50_000)]
    result = parse_csv("\n".join(lines).encode())
    assert len(result.rows) == 50_000
    assert result.rows[-1].row == 50_001 and result.rows[-1].email == "person49999@example.org"


def test_pasted_formats() -> None:
    result = parse_pasted("a@example.org\nJoe Bloggs <joe@example.org>\nb@example.org, Bea\n"
                          "c@example.org d@example.org\n# a comment\n\nnot an address\n")
    assert [(r.row, r.email, r.name) for r in result.rows] == [
        (1, "a@example.org", ""), (2, "joe@example.org", "Joe Bloggs"), (3, "b@example.org", "Bea"),
        (4, "c@example.org", ""), (4, "d@example.org", ""), (7, "not an address", "")]


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
                min_size=1, max_size=5))
def test_any_csv_bytes_either_parse_or_fail_clearly(cells: list[str]) -> None:
    data = ("email," + ",".join(f'"{c}"' for c in cells) + "\n").encode("utf-8", "replace")
    try:
        result = parse_csv(data)
    except ImportFailed as exc:
        assert str(exc)
    else:
        assert all("\n" not in r.name for r in result.rows)


# -- address lists on one line (issue 8, item 4) -----------------------------------------------

def _read(text: str) -> list[tuple[str, str, bool]]:
    return [(r.email, r.name, bool(r.problem)) for r in parse_pasted(text).rows]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("a@x.org; b@y.org", [("a@x.org", "", False), ("b@y.org", "", False)]),
        ("a@x.org, b@y.org", [("a@x.org", "", False), ("b@y.org", "", False)]),
        ("a@x.org b@y.org\tc@z.org", [("a@x.org", "", False), ("b@y.org", "", False),
                                      ("c@z.org", "", False)]),
        ('"Doe, Jane" <jane@x.org>', [("jane@x.org", "Doe, Jane", False)]),
        ("Jane Doe <jane@x.org>, bob@y.org", [("jane@x.org", "Jane Doe", False),
                                              ("bob@y.org", "", False)]),
        ("Jane Doe <jane@x.org>; Bob <bob@y.org>;", [("jane@x.org", "Jane Doe", False),
                                                      ("bob@y.org", "Bob", False)]),
        ("Doe, Jane <jane@x.org>; Smith, Bob <bob@y.org>", [("jane@x.org", "Doe, Jane", False),
                                                            ("bob@y.org", "Smith, Bob", False)]),
        ("Doe, Jane <jane@x.org>", [("jane@x.org", "Doe, Jane", False)]),
        ("b@example.org, Bea", [("b@example.org", "Bea", False)]),
        ("b@example.org\tBea Smith", [("b@example.org", "Bea Smith", False)]),
        ("b@example.org, Smith, Bea", [("b@example.org", "Smith, Bea", False)]),
        ("Bea Smith, b@example.org", [("b@example.org", "Bea Smith", False)]),
        ("mailto:jane@x.org", [("jane@x.org", "", False)]),
        ("<mailto:jane@x.org>", [("jane@x.org", "", False)]),
        ("Write to jane@x.org.", [("jane@x.org", "Write to", False)]),
        ("(jane@x.org), <bob@y.org>;", [("jane@x.org", "", False), ("bob@y.org", "", False)]),
        ('"Jane @ Home" <jane@x.org>', [("jane@x.org", "Jane @ Home", False)]),
        ("Jane@Home <jane@x.org>", [("jane@x.org", "Jane@Home", False)]),
        ("a@x.org Bob c@y.org", [("a@x.org", "", True), ("c@y.org", "", True)]),
        ("Jane, Bob", [("Jane", "", True), ("Bob", "", True)]),
        ("a@x.org, Bob <bob@y.org>, Smith", [("a@x.org", "", False), ("bob@y.org", "Bob", False),
                                             ("Smith", "", True)]),
    ],
)
def test_a_pasted_line_gives_one_row_per_address(line: str, expected: list[tuple[str, str, bool]]) -> None:
    assert _read(line) == expected


def test_the_name_of_the_next_person_never_becomes_a_name() -> None:
    """The reported case: b was never invited and a's email greeted them as 'b@y.org'."""
    for line in ("a@x.org; b@y.org", "a@x.org, b@y.org", "a@x.org,b@y.org", "a@x.org;b@y.org"):
        rows = parse_pasted(line).rows
        assert [r.email for r in rows] == ["a@x.org", "b@y.org"]
        assert all("@" not in r.name for r in rows)


def test_text_without_an_address_is_a_problem_row_named_by_line() -> None:
    rows = parse_pasted("a@x.org\n\nplease invite the whole board\n").rows
    assert [(r.row, r.email) for r in rows] == [(1, "a@x.org"), (3, "please invite the whole board")]


def test_an_address_in_an_unquoted_name_is_a_problem() -> None:
    # Is Jane a@x.org's name or jane@x.org's? Both addresses are rows, both with the problem.
    rows = parse_pasted("a@x.org Jane <jane@x.org>").rows
    assert [r.email for r in rows] == ["a@x.org", "jane@x.org"]
    assert all("a@x.org" in r.problem for r in rows)


@pytest.mark.parametrize("text", [
    "a@x.org <b@y.org>",
    "a@x.org c@z.org <b@y.org>",
    "<a@x.org> c@z.org <b@y.org>",
])
def test_bare_addresses_before_an_angle_address_are_invitees_of_their_own(text: str) -> None:
    rows = parse_pasted(text).rows
    assert sorted(r.email for r in rows) == sorted(
        w.strip("<>") for w in text.split())
    assert all(not r.problem and not r.name for r in rows)


@pytest.mark.parametrize("text", [
    "x@y.org Lee, Ann <b@z.org>",  # whose is "Lee"?
    "ann@x.org Ann\tLee <b@z.org>",
    "Bo <bo@x.org> o@x.org Smith; Bob <b@z.org>",
    "a@x.org Müller, Hans <b@z.org> Zoë <z@z.org>",
])
def test_names_around_bare_addresses_next_to_angle_addresses_are_never_guessed(text: str) -> None:
    rows = parse_pasted(text).rows
    addresses = [w.strip("<>;,") for w in text.split() if "@" in w]
    assert sorted(r.email for r in rows) == sorted(addresses)  # each once
    for row in rows:  # a name is never part of another invitee's name
        assert row.problem or not row.name or row.name in ("Bo", "Zoë")
    assert any(r.problem for r in rows)


_SEPARATOR = st.sampled_from([",", ";", " ", "\t", ", ", "; ", " ,", "  ", ",\t", ";;"])


@given(st.lists(st.emails(), min_size=1, max_size=8), st.data())
def test_any_list_of_addresses_joined_by_any_separator_reads_back_in_order(
    addresses: list[str], data: st.DataObject
) -> None:
    text = addresses[0]
    for address in addresses[1:]:
        text += data.draw(_SEPARATOR) + address
    text += data.draw(st.sampled_from(["", ";", ",", " "]))
    rows = parse_pasted(text).rows
    assert [r.email for r in rows] == addresses
    assert all(r.name == "" and r.problem == "" for r in rows)


@given(st.lists(st.tuples(st.emails(), st.from_regex(r"[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ ,.'-]{0,20}[A-Za-zÀ-ÿ]",
                                                      fullmatch=True)), min_size=1, max_size=5),
       st.sampled_from([", ", "; ", ",", ";"]))
def test_any_list_of_quoted_mailboxes_reads_back(pairs: list[tuple[str, str]], separator: str) -> None:
    text = separator.join(f'"{name}" <{email}>' for email, name in pairs)
    rows = parse_pasted(text).rows
    assert [(r.email, r.name) for r in rows] == [(e, " ".join(n.split())) for e, n in pairs]


def test_an_email_cell_with_two_addresses_is_never_one_invitee() -> None:
    result = parse_csv(b"email,name\n\"a@x.org; b@y.org\",Ann\nc@z.org,Cy\n")
    assert [(r.row, r.email, bool(r.problem)) for r in result.rows] == [
        (2, "a@x.org", True), (2, "b@y.org", True), (3, "c@z.org", False)]
    assert "2 addresses" in result.rows[0].problem


def test_an_email_cell_written_as_a_mailbox_keeps_the_name_column() -> None:
    result = parse_csv(b"email,name\nJane Doe <jane@x.org>,\nmailto:bob@y.org,Bob\n")
    assert [(r.email, r.name, r.problem) for r in result.rows] == [
        ("jane@x.org", "Jane Doe", ""), ("bob@y.org", "Bob", "")]


# -- a quote that is never closed (issue 8, item 10) -------------------------------------------

@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b'email,name\na@x.org,"Ann\nb@x.org,Bob\nc@x.org,Cy\n', 2),
        (b'email,name,message\na@x.org,Ann,"two\nlines"\nb@x.org,"Bob\nc@x.org,Cy', 4),
        (b'email;name\r\na@x.org;"x\r\ny";\r\nb@x.org;"Bo\r\nc@x.org;C\r\n\r\n', 4),
        (b'"a@x.org,Ann\nb@x.org,Bob\n', 1),
    ],
)
def test_an_unclosed_quote_fails_naming_the_line_it_opens_on(data: bytes, line: int) -> None:
    with pytest.raises(ImportFailed, match=rf"Line {line} opens a quote .* never closed"):
        parse_csv(data)


def test_closed_multi_line_quotes_at_the_end_still_read() -> None:
    result = parse_csv(b'email,message\na@x.org,"hi\nthere"\n')
    assert result.rows[0].message == "hi\nthere"


# Held-out lists (issue 8 review): exports and pastes as mail programs and editors make them.

@pytest.mark.parametrize("invisible", ["\ufeff", "\u200b", "\u2060", "\u00ad"])
def test_invisible_characters_around_pasted_addresses_are_dropped(invisible: str) -> None:
    # A list file saved by Notepad starts with a BOM; web pages leave zero-width spaces.
    text = (f"{invisible}ann@example.org\nbo@example.org{invisible}\n"
            f"Cy{invisible} Doe <cy@example.org>{invisible}; {invisible}dee@example.org\n")
    rows = parse_pasted(text).rows
    assert [(r.email, r.name, r.problem) for r in rows] == [
        ("ann@example.org", "", ""), ("bo@example.org", "", ""),
        ("cy@example.org", "Cy Doe", ""), ("dee@example.org", "", "")]


def test_an_old_style_name_in_parentheses_is_the_name() -> None:
    rows = parse_pasted("ann@example.org (Ann Lee); Bo <bo@example.org>\n").rows
    assert [(r.email, r.name) for r in rows] == [("ann@example.org", "Ann Lee"),
                                                 ("bo@example.org", "Bo")]


@pytest.mark.parametrize(
    ("header", "cell"),
    [
        ("Name,Given Name,Family Name,E-mail 1 - Type,E-mail 1 - Value", "Ann Lee,Ann,Lee,* Home,{}"),  # Gmail
        ("First Name,Last Name,Display Name,Nickname,Primary Email", "Ann,Lee,Ann Lee,,{}"),  # Thunderbird
        ("Emails,Names", "{},Ann Lee"),
        ("Mailadresse;Name", "{};Ann Lee"),  # headers no list knows: found by their cells
        ("Dirección de correo\tNombre", "{}\tAnn Lee"),
    ],
)
def test_an_address_column_with_another_header_is_found_and_named(header: str, cell: str) -> None:
    sep = "\t" if "\t" in header else (";" if ";" in header else ",")
    data = f"{header}\n{cell.format('ann@example.org')}\n{cell.format('bo@example.org')}\n"
    result = parse_csv(data.encode("utf-8"))
    assert [r.email for r in result.rows] == ["ann@example.org", "bo@example.org"]
    assert all(not r.problem for r in result.rows)
    column = header.split(sep)[[i for i, c in enumerate(cell.split(sep)) if c == "{}"][0]]
    assert any(f'"{column}"' in n for n in result.notes)


def test_a_second_address_column_is_not_read_and_the_note_says_so() -> None:
    data = ('"First Name","Last Name","E-mail Address","E-mail 2 Address"\n'
            '"Ann","Lee","ann@example.org","ann.lee@example.net"\n')
    result = parse_csv(data.encode())
    assert [(r.email, r.name) for r in result.rows] == [("ann@example.org", "Ann Lee")]
    assert any('"E-mail 2 Address"' in n and "not read" in n for n in result.notes)


@pytest.mark.parametrize("header", ["email,name\n", ""])
def test_a_name_cell_holding_an_address_never_names_another_invitee(header: str) -> None:
    data = f"{header}ann@example.org,bo@example.org\ncy@example.org,Cy\n".encode()
    rows = parse_csv(data).rows
    by_email = {r.email: r for r in rows}
    assert sorted(by_email) == ["ann@example.org", "bo@example.org", "cy@example.org"]
    assert "name cell holds an address" in by_email["ann@example.org"].problem
    assert "name cell holds an address" in by_email["bo@example.org"].problem
    assert by_email["bo@example.org"].name == ""
    assert (by_email["cy@example.org"].name, by_email["cy@example.org"].problem) == ("Cy", "")


def test_rows_without_a_header_may_put_the_name_first_or_second() -> None:
    rows = parse_csv(b"Ann Lee,ann@example.org\nbo@example.org,Bo\n").rows
    assert [(r.email, r.name, r.problem) for r in rows] == [
        ("ann@example.org", "Ann Lee", ""), ("bo@example.org", "Bo", "")]


def test_windows_1252_csv_keeps_curly_quotes_and_no_control_characters() -> None:
    data = "email,name\nann@example.org,Ann “AJ” Lee – 5€\n".encode("cp1252")
    result = parse_csv(data)
    assert result.rows[0].name == "Ann “AJ” Lee – 5€"
    assert "Latin-1" in result.notes[0]


def test_c1_control_characters_never_reach_a_name() -> None:
    rows = parse_csv("email,name\nann@example.org,Ann\x85Lee\x9b\n".encode()).rows
    assert rows[0].name == "Ann Lee"


@pytest.mark.parametrize("delimiter", ["\t", ";", "|"])
def test_names_with_commas_do_not_make_the_file_comma_separated(delimiter: str) -> None:
    lines = ["Lee, Ann{d}ann@example.org", "Bo{d}bo@example.org", "Doe, Jr., Cy{d}cy@example.org",
             "dee@example.org", "Fay, Dr.{d}fay@example.org"]
    data = "\n".join(line.format(d=delimiter) for line in lines).encode()
    rows = parse_csv(data).rows
    assert [(r.email, r.name, r.problem) for r in rows] == [
        ("ann@example.org", "Lee, Ann", ""), ("bo@example.org", "Bo", ""),
        ("cy@example.org", "Doe, Jr., Cy", ""), ("dee@example.org", "", ""),
        ("fay@example.org", "Fay, Dr.", "")]


@pytest.mark.parametrize("text", [
    "张三@例子.中国，李四@例子.中国",
    "张三@例子.中国；李四@例子.中国、王五@例子.中国",
    "Zhang <张三@例子.中国>，Li <李四@例子.中国>。",
    "ann@example.org، bo@example.org",
    "Ann <ann@example.org>, Bo <bo@example.org>.",
])
def test_full_width_and_arabic_separators_split_addresses(text: str) -> None:
    rows = parse_pasted(text).rows
    assert all(not r.problem for r in rows), rows
    assert all(r.email.count("@") == 1 and r.email[-1].isalnum() for r in rows)
    assert len(rows) == text.count("@")


EXCEL_ROWS = [("Email", "Name", "Message"),
              ("zoe@example.org", "Zoë Martin", "Hi,\r\nsee you"),
              ("li@example.org", "\u674e\u5a1c", ""),
              ("sam@example.org", "Sam \"Sammy\" O'Neil", "")]


def _excel_unicode_text() -> str:
    """What Excel's "Unicode Text (*.txt)" writes: tabs, CRLF, quoted cells with line breaks."""
    def cell(text: str) -> str:
        return '"' + text.replace('"', '""') + '"' if any(c in text for c in '"\t\r\n') else text
    return "".join("\t".join(cell(c) for c in row) + "\r\n" for row in EXCEL_ROWS)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-16-le-bom",
                                      "utf-16-be-bom"])
def test_utf16_files_as_excel_saves_unicode_text_are_read(encoding: str) -> None:
    text = _excel_unicode_text()
    if encoding.endswith("-bom"):
        data = "\ufeff".encode(encoding[:-4]) + text.encode(encoding[:-4])
    else:
        data = text.encode(encoding)  # "utf-16": Python writes a BOM, little-endian here
    result = parse_csv(data)
    assert [(r.row, r.email, r.name, r.message) for r in result.rows] == [
        (2, "zoe@example.org", "Zoë Martin", "Hi,\nsee you"),
        (4, "li@example.org", "\u674e\u5a1c", ""),
        (5, "sam@example.org", "Sam \"Sammy\" O'Neil", ""),
    ]
    assert not any("Latin-1" in n for n in result.notes)


def test_a_pasted_list_saved_as_utf16_is_read_too() -> None:
    from invite_desk.services.invitations.importing import decode_csv

    text, _ = decode_csv("ann@example.org\r\nZoë <zoe@example.org>\r\n".encode("utf-16"))
    assert [(r.email, r.name) for r in parse_pasted(text).rows] == [
        ("ann@example.org", ""), ("zoe@example.org", "Zoë")]


def test_a_cell_longer_than_the_csv_modules_limit_is_one_bad_row_not_a_refused_file() -> None:
    long_address = "x" * 200_000 + "@example.org"
    data = f"email,name\nann@example.org,Ann\n{long_address},Long\nbo@example.org,Bo\n".encode()
    result = parse_csv(data)
    assert [(r.row, r.email[:5]) for r in result.rows] == [
        (2, "ann@e"), (3, "xxxxx"), (4, "bo@ex")]


@pytest.mark.parametrize(
    ("header", "row", "name"),
    [
        # German Outlook / Excel: Vorname, Nachname; older exports "Vorname;Name" (Name = surname)
        ("E-Mail-Adresse;Vorname;Nachname", "jan@example.de;Jan;Müller", "Jan Müller"),
        ("Vorname;Name;E-Mail", "Jan;Müller;jan@example.de", "Jan Müller"),
        # French: Prénom, Nom (Nom = surname)
        ("Prénom;Nom;Courriel", "Anne;Dupont;anne@example.fr", "Anne Dupont"),
        # Spanish, Italian, Portuguese: the "name" column is the given name beside a surname
        ("Nombre,Apellidos,Correo electrónico", "Ana,García López,ana@example.es",
         "Ana García López"),
        ("Nome,Cognome,Email", "Luca,Rossi,luca@example.it", "Luca Rossi"),
        ("Nome,Sobrenome,E-mail", "João,Silva,joao@example.br", "João Silva"),
        # Dutch
        ("Voornaam,Achternaam,E-mailadres", "Eva,de Vries,eva@example.nl", "Eva de Vries"),
        # A full-name column alone still is the whole name
        ("Nombre,Correo", "Ana García,ana@example.es", "Ana García"),
        ("Naam,E-mail", "Eva de Vries,eva@example.nl", "Eva de Vries"),
        # A column that says it holds the full name is the full name beside anything
        ("Full name,Last name,Email", "Eva de Vries,de Vries,eva@example.nl", "Eva de Vries"),
        ("Nombre completo;Apellidos;Correo", "Ana García;García;ana@example.es", "Ana García"),
    ],
)
def test_header_rows_in_other_languages_keep_the_whole_name(header: str, row: str,
                                                            name: str) -> None:
    result = parse_csv(f"{header}\r\n{row}\r\n".encode())
    assert [(r.row, r.name, r.problem) for r in result.rows] == [(2, name, "")]
    assert "@" in result.rows[0].email


@pytest.mark.parametrize("header", ["Nachricht", "Mensaje", "Messaggio", "Bericht", "Mensagem"])
def test_a_message_column_in_another_language_is_the_personal_message(header: str) -> None:
    result = parse_csv(f"Email;{header}\nann@example.org;Willkommen, Ann!\n".encode())
    assert result.rows[0].message == "Willkommen, Ann!"


# -- rows copied from a spreadsheet, and quotes as word processors type them --------------------

@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # First | Last | Email, and Email | First | Last, copied from Excel (cells end in tabs)
        ("Ann\tLee\tann@x.org", [("ann@x.org", "Ann Lee", False)]),
        ("Ann\tLee\tann@x.org\t", [("ann@x.org", "Ann Lee", False)]),
        ("Lee, Ann\tann@x.org", [("ann@x.org", "Lee, Ann", False)]),
        ("ann@x.org\tAnn\tLee", [("ann@x.org", "Ann Lee", False)]),
        ("\tAnn Lee\t\tann@x.org", [("ann@x.org", "Ann Lee", False)]),
        # Cells on both sides of the address: the name is not clear, so every part is shown
        ("Ann\tann@x.org\tLee", [("Ann", "", True), ("ann@x.org", "", False), ("Lee", "", True)]),
        # Two addresses in the row: each is an invitee of its own, as before
        ("ann@x.org\tbo@y.org", [("ann@x.org", "", False), ("bo@y.org", "", False)]),
    ],
)
def test_a_row_pasted_from_a_spreadsheet_is_one_invitee_with_the_name_cells(
        line: str, expected: list[tuple[str, str, bool]]) -> None:
    assert _read(line) == expected


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("\u201cAnn Lee\u201d <ann@x.org>", "Ann Lee"),   # Word, Outlook: “ ”
        ("\u201eAnn Lee\u201c <ann@x.org>", "Ann Lee"),   # German: „ “
        ("\u00abAnn Lee\u00bb <ann@x.org>", "Ann Lee"),   # French: « »
        ("\u2018Ann Lee\u2019 <ann@x.org>", "Ann Lee"),   # ‘ ’
        ("\u201cLee, Ann\u201d <ann@x.org>; bo@y.org", "Lee, Ann"),
    ],
)
def test_curly_quotes_around_a_name_are_quotes_not_part_of_it(line: str, name: str) -> None:
    rows = parse_pasted(line).rows
    assert (rows[0].email, rows[0].name, rows[0].problem) == ("ann@x.org", name, "")
    assert all(not r.problem for r in rows)


@pytest.mark.parametrize("text", ['"ann@x.org"', "'ann@x.org'", "\u201cann@x.org\u201d",
                                  '"ann@x.org";"bo@y.org"'])
def test_a_quoted_address_is_the_address(text: str) -> None:
    rows = parse_pasted(text).rows
    assert [(r.email, r.name, r.problem) for r in rows][0] == ("ann@x.org", "", "")
    assert all(not r.problem and "@" in r.email and '"' not in r.email for r in rows)


def test_a_quoted_address_in_a_csv_cell_is_the_address() -> None:
    result = parse_csv(b'email,name\n"""ann@x.org""",Ann\n')
    assert [(r.email, r.name, r.problem) for r in result.rows] == [("ann@x.org", "Ann", "")]


# -- a first row that is an invitee, not column titles ------------------------------------------

@pytest.mark.parametrize("first", ["Ann,ann.example.org", "Ann,ann(at)example.org",
                                   "Ann,ann@example", "Ann,ann at example.org"])
def test_a_headerless_file_whose_first_address_is_mistyped_keeps_that_row(first: str) -> None:
    """Without an @ the first row looked like column titles and the person vanished."""
    result = parse_csv(f"{first}\nBo,bo@example.org\nCy,cy@example.org\n".encode())
    assert [r.row for r in result.rows] == [1, 2, 3]
    assert result.rows[0].name == "Ann" and result.rows[0].email == first.split(",")[1]
    assert [r.email for r in result.rows[1:]] == ["bo@example.org", "cy@example.org"]


def test_unknown_column_titles_are_named_as_the_header_row() -> None:
    result = parse_csv(b"Member,Contact\nAnn,ann@example.org\n")
    assert [(r.row, r.email, r.name) for r in result.rows] == [(2, "ann@example.org", "")]
    assert any("Row 1" in n and "Member, Contact" in n for n in result.notes), result.notes


@pytest.mark.parametrize("line", ["# ann@x.org", "#1 ann@x.org", "# old: Ann <ann@x.org>",
                                  "#\tann@x.org"])
def test_an_address_on_a_line_starting_with_hash_is_shown_not_dropped(line: str) -> None:
    rows = parse_pasted(f"# invitees for the spring ride\n{line}\nbo@y.org\n").rows
    assert [(r.row, r.email) for r in rows] == [(2, "ann@x.org"), (3, "bo@y.org")]
    assert "#" in rows[0].problem and not rows[1].problem
    assert rows[0].name == ""  # not "old:" or "1"


@pytest.mark.parametrize("sep", [";", ",", "\t", "|"])
def test_excels_sep_line_chooses_the_delimiter_and_is_not_a_row(sep: str) -> None:
    body = f"sep={sep}\r\nE-mail{sep}Name\r\nann@x.org{sep}Ann Lee\r\nbo@y.org{sep}Bo\r\n"
    result = parse_csv(("\ufeff" + body).encode())
    assert [(r.row, r.email, r.name, r.problem) for r in result.rows] == [
        (3, "ann@x.org", "Ann Lee", ""), (4, "bo@y.org", "Bo", "")]
    assert result.notes == ()


@pytest.mark.parametrize("header", ["First name\tLast name\tEmail", "Email\tName",
                                    "E-Mail;Vorname;Nachname", "email, name"])
def test_column_titles_pasted_with_the_rows_are_not_invitees(header: str) -> None:
    rows = parse_pasted(f"{header}\nAnn\tLee\tann@x.org\n").rows
    assert [(r.row, r.email, r.name, r.problem) for r in rows] == [(2, "ann@x.org", "Ann Lee", "")]


def test_a_titles_line_after_the_first_row_is_still_shown() -> None:
    rows = parse_pasted("ann@x.org\nEmail\tName\n").rows
    assert [(r.row, bool(r.problem) or "@" not in r.email) for r in rows][0] == (1, False)
    assert len(rows) >= 2  # not dropped unseen


@pytest.mark.parametrize(("line", "expected"), [
    ("Ren\u00e9 \u201cRen\u201d Roy <rene@x.org>", [("rene@x.org", "Ren\u00e9 \u201cRen\u201d Roy")]),
    ("O\u2019Brien, Ann <ann@x.org>, bo@y.org", [("ann@x.org", "O\u2019Brien, Ann"),
                                                 ("bo@y.org", "")]),
    ("Dell\u2018Acqua <d@x.org>, bo@y.org", [("d@x.org", "Dell\u2018Acqua"), ("bo@y.org", "")]),
])
def test_curly_quotes_inside_a_name_stay_as_typed(line: str, expected: list[tuple[str, str]]) -> None:
    rows = parse_pasted(line).rows
    assert [(r.email, r.name) for r in rows] == expected
    assert not any(r.problem for r in rows)


@pytest.mark.parametrize("header", ["Name:;E-mail:", "Name *;Email *", "NAME;EMAIL",
                                    " Name ; E_mail ", "Name.;E-Mail."])
def test_header_titles_with_colons_stars_or_case_are_still_known(header: str) -> None:
    result = parse_csv(f"{header}\nAnn Lee;ann@x.org\n".encode())
    assert [(r.email, r.name) for r in result.rows] == [("ann@x.org", "Ann Lee")]
    assert result.notes == ()


@pytest.mark.parametrize(("line", "expected"), [
    ("To: Jane <jane@x.org>, Bob <bob@x.org>", [("jane@x.org", "Jane"), ("bob@x.org", "Bob")]),
    ("Cc: jane@x.org", [("jane@x.org", "")]),
    ("BCC:jane@x.org; bob@x.org", [("jane@x.org", ""), ("bob@x.org", "")]),
    ("An: Jane Doe <jane@x.org>", [("jane@x.org", "Jane Doe")]),
])
def test_a_mail_header_label_copied_with_the_addresses_is_not_a_name(
        line: str, expected: list[tuple[str, str]]) -> None:
    rows = parse_pasted(line).rows
    assert [(r.email, r.name) for r in rows] == expected
    assert not any(r.problem for r in rows)


@pytest.mark.parametrize("cell", ["ann@x.org.", "ann@x.org..", " ann@x.org. "])
def test_an_address_cell_ending_with_a_period_is_a_row_with_a_problem(cell: str) -> None:
    # email-validator's verdict too: an address cannot end with a period. In a column of
    # addresses that is a typo to show, not a sentence's full stop to drop quietly.
    rows = parse_csv(f"email,name\n{cell},Ann\ncy@x.org,Cy\n".encode()).rows
    assert [(r.row, r.email, bool(r.problem)) for r in rows] == [
        (2, "ann@x.org", True), (3, "cy@x.org", False)]
    assert "ends with a period" in rows[0].problem
