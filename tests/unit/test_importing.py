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
        (b"\xff\xfee\x00m\x00", "UTF-16"),
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
