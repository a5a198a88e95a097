"""Invitation templates: rendering, escaping, branding and validation of admin-edited templates."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape

from invite_desk import resources_path
from invite_desk.resources_path import resource_path
from invite_desk.services.email import (
    EmailContext,
    InvalidEmailContext,
    InvitationTemplates,
    TemplateError,
    default_templates,
    render,
    validate_templates,
)


def context(**changes: object) -> EmailContext:
    base = EmailContext(
        organization_name="Harbour Rowing Club",
        organization_description="Rowing along the coast since 1921.",
        accent_color="#0F766E",
        has_logo=True,
        inviter_name="Ada Lovelace",
        invitee_name="Grace Hopper",
        personal_message="See you on Tuesday!",
        registration_link="https://join.example.org/join/tok-123",
        expires_at="31 December 2030",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def with_part(part: str, source: str) -> InvitationTemplates:
    return dataclasses.replace(default_templates(), **{part: source})


def test_default_templates_are_found_and_valid() -> None:
    assert resource_path("email", "invitation.html.j2").is_file()
    templates = default_templates()
    validate_templates(templates)
    assert "{{ registration_link }}" in templates.html


def test_resources_are_found_in_an_installed_wheel_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = tmp_path / "site-packages" / "invite_desk"
    (installed / "resources" / "email").mkdir(parents=True)
    monkeypatch.setattr(resources_path.resources, "files", lambda package: installed)
    assert resource_path("email", "x.j2") == installed / "resources" / "email" / "x.j2"
    (installed / "resources" / "email").rmdir()
    (installed / "resources").rmdir()  # no packaged resources: the source tree's are used
    import invite_desk

    # Next to the package: the repo's resources/ when running from a source tree.
    beside = Path(invite_desk.__file__).resolve().parent.parent / "resources" / "email"
    assert resource_path("email", "x.j2").parent == beside


def test_membership_invitation_names_inviter_organization_and_link() -> None:
    email = render(default_templates(), context())
    assert email.subject == "Ada Lovelace invited you to join Harbour Rowing Club"
    for part in (email.html, email.text):
        assert "Hello Grace Hopper," in part
        assert "https://join.example.org/join/tok-123" in part
        assert "Rowing along the coast since 1921." in part
        assert "31 December 2030" in part
    assert "invited you to join Harbour Rowing Club." in email.text
    assert "<strong>Ada Lovelace</strong> invited you to join" in email.html


def test_guest_invitation_is_phrased_for_the_event() -> None:
    email = render(default_templates(), context(event_name="Summer Regatta"))
    assert email.subject == "Ada Lovelace invited you to Summer Regatta (Harbour Rowing Club)"
    assert "invited you to Summer Regatta, hosted by Harbour Rowing Club." in email.text
    assert "invited you to join" not in email.text + email.html
    assert "Accept the invitation</a>" in email.html


def test_html_carries_the_branding_and_a_button_link() -> None:
    html = render(default_templates(), context(logo_cid="logo-1@club.test")).html
    assert 'bgcolor="#0F766E"' in html  # the header band and the button
    assert 'src="cid:logo-1@club.test"' in html
    assert re.search(r'<a href="https://join.example.org/join/tok-123"[^>]*padding', html)
    assert "Harbour Rowing Club</td>" in html
    without_logo = render(default_templates(), context(has_logo=False)).html
    assert "cid:" not in without_logo


def test_header_text_stays_readable_on_a_light_accent() -> None:
    dark = render(default_templates(), context(accent_color="#0F766E")).html
    light = render(default_templates(), context(accent_color="#FFF4B0")).html
    band_text = re.compile(r"font-weight:bold; color:(#[0-9a-f]{6});\">Harbour Rowing Club<")
    assert band_text.findall(dark) == ["#ffffff"]
    assert band_text.findall(light) == ["#1f2328"]


def test_greeting_without_a_name_and_no_empty_quote() -> None:
    email = render(default_templates(), context(invitee_name="", personal_message=""))
    assert "Hello," in email.text and "Hello ," not in email.text
    assert "wrote:" not in email.text
    assert "border-left:4px" not in email.html


def test_personal_message_is_escaped_in_html_and_kept_literal_in_text() -> None:
    message = "<script>alert('x')</script> & <b>bold</b>"
    email = render(default_templates(), context(personal_message=message))
    assert "<script>" not in email.html and "<b>bold</b>" not in email.html
    assert (
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
        in email.html
    )
    assert "> " + message in email.text


def test_jinja_syntax_in_a_personal_message_is_shown_never_executed() -> None:
    message = "{{ 7*7 }} {% for x in range(3) %}{{ x }}{% endfor %} {{ registration_link }}"
    email = render(default_templates(), context(personal_message=message))
    assert "49" not in email.html + email.text
    assert "{{ 7*7 }} {% for x in range(3) %}{{ x }}{% endfor %}" in email.text
    assert "{{ 7*7 }} {% for x in range(3) %}{{ x }}{% endfor %}" in email.html
    assert email.text.count("https://join.example.org/join/tok-123") == 1


def test_newlines_in_the_personal_message_become_line_breaks() -> None:
    email = render(default_templates(), context(personal_message="Line one\r\nLine <two>\nThree"))
    assert "Line one<br>\nLine &lt;two&gt;<br>\nThree" in email.html
    assert "> Line one\n> Line <two>\n> Three" in email.text


def test_subject_is_collapsed_to_one_line() -> None:
    email = render(default_templates(), context(inviter_name="Eve\r\nBcc: evil@example.net\n\t"))
    assert email.subject == "Eve Bcc: evil@example.net invited you to join Harbour Rowing Club"
    templated = with_part("subject", "Welcome\n\n  to {{ organization_name }}\r\n")
    assert render(templated, context()).subject == "Welcome to Harbour Rowing Club"


def test_subject_and_text_are_not_html_escaped() -> None:
    email = render(default_templates(), context(organization_name="Smith & Sons <Rowing>"))
    assert email.subject.endswith("join Smith & Sons <Rowing>")
    assert "join Smith & Sons <Rowing>." in email.text
    assert "Smith &amp; Sons &lt;Rowing&gt;" in email.html


def test_syntax_error_names_part_line_and_reason() -> None:
    broken = with_part("html", "<html>\n<body>\n<p>{{ organization_name }</p>\n</body>")
    with pytest.raises(TemplateError) as caught:
        validate_templates(broken)
    assert str(caught.value) == "HTML template, line 3: unexpected '}'"
    assert (caught.value.part, caught.value.line) == ("HTML template", 3)


def test_unknown_name_is_refused_with_its_line_and_the_available_names() -> None:
    broken = with_part("text", "Hello\n\n{{ nickname }}\n")
    with pytest.raises(TemplateError) as caught:
        validate_templates(broken)
    assert caught.value.part == "Text template"
    assert caught.value.line == 3
    assert "'nickname' is undefined" in caught.value.reason
    assert "inviter_name" in caught.value.reason


def test_unknown_name_in_a_rarely_taken_branch_is_found_too() -> None:
    broken = with_part("subject", "{% if event_name %}{{ event_title }}{% else %}Hi{% endif %}")
    with pytest.raises(TemplateError, match="Subject template, line 1: 'event_title' is undefined"):
        validate_templates(broken)


@pytest.mark.parametrize(
    "source",
    [
        "{{ organization_name.__class__.__mro__ }}",
        "{{ ''.__class__.__subclasses__() }}",
        "{{ self.__init__.__globals__ }}",
    ],
)
def test_sandbox_escapes_are_refused(source: str) -> None:
    with pytest.raises(TemplateError) as caught:
        validate_templates(with_part("html", f"<p>\n{source}\n</p>"))
    assert caught.value.part == "HTML template"
    assert "unsafe" in caught.value.reason or "not allowed" in caught.value.reason


def test_runtime_errors_and_empty_parts_are_refused() -> None:
    with pytest.raises(TemplateError, match=r"Text template, line 2: does not render: .*division"):
        validate_templates(with_part("text", "ok\n{{ 1 / 0 }}"))
    with pytest.raises(TemplateError, match="Subject template: renders nothing"):
        validate_templates(with_part("subject", "{% if false %}x{% endif %}  \n"))


def test_render_reports_template_errors_as_domain_errors() -> None:
    with pytest.raises(TemplateError, match="HTML template, line 1: 'missing' is undefined"):
        render(with_part("html", "{{ missing }}"), context())


def test_context_refuses_values_that_could_break_out_of_html_attributes() -> None:
    with pytest.raises(InvalidEmailContext, match="Accent colour: 'red; background:url"):
        context(accent_color="red; background:url(x)")
    with pytest.raises(InvalidEmailContext, match="Registration link"):
        context(registration_link="javascript:alert(1)")


@settings(max_examples=200, deadline=None, database=None)
@given(message=st.text(), inviter=st.text(max_size=40))
def test_any_personal_message_is_escaped_and_any_subject_is_one_line(
    message: str, inviter: str
) -> None:
    email = render(default_templates(), context(personal_message=message, inviter_name=inviter))
    assert "\n" not in email.subject and "\r" not in email.subject
    for line in message.splitlines():
        assert str(escape(line)) in email.html
