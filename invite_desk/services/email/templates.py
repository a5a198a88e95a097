"""Invitation email templates: sandboxed Jinja2 rendering and validation before saving."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from types import TracebackType
from typing import Any, Final

from jinja2 import FunctionLoader, StrictUndefined, TemplateSyntaxError, select_autoescape
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from invite_desk.resources_path import resource_path
from invite_desk.services.errors import DomainError

DEFAULT_LOGO_CID: Final = "org-logo@invite-desk"

# Template names decide autoescaping: only the HTML part is escaped.
_SUBJECT: Final = "invitation.subject.j2"
_HTML: Final = "invitation.html.j2"
_TEXT: Final = "invitation.txt.j2"
_PART_LABELS: Final = {_SUBJECT: "Subject template", _HTML: "HTML template", _TEXT: "Text template"}
_HEX_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")


class TemplateError(DomainError):
    """An email template does not parse or does not render; says which part, line and why."""

    def __init__(self, part: str, line: int | None, reason: str) -> None:
        self.part = part
        self.line = line
        self.reason = reason
        where = f"{part}, line {line}" if line is not None else part
        super().__init__(f"{where}: {reason}")


class InvalidEmailContext(DomainError):
    """A value given to the templates cannot be used safely (for example a malformed colour)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True, slots=True)
class InvitationTemplates:
    """The SOURCE text of the three parts of an invitation email."""

    subject: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class EmailContext:
    """Values the templates may use; they are data, never template source."""

    organization_name: str
    organization_description: str
    accent_color: str
    has_logo: bool
    inviter_name: str
    registration_link: str
    expires_at: str
    invitee_name: str = ""
    personal_message: str = ""
    event_name: str = ""
    logo_cid: str = DEFAULT_LOGO_CID

    def __post_init__(self) -> None:
        if not _HEX_COLOUR.fullmatch(self.accent_color):
            raise InvalidEmailContext(
                "Accent colour",
                f"{self.accent_color!r} is not a colour like #1A73E8; correct it in the branding settings.",
            )
        if not self.registration_link.startswith(("https://", "http://")):
            raise InvalidEmailContext(
                "Registration link",
                f"{self.registration_link!r} must start with https:// (check the registration base URL).",
            )


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """The three rendered parts; the subject is always a single line."""

    subject: str
    html: str
    text: str


def default_templates() -> InvitationTemplates:
    """The templates shipped in resources/email."""

    def read(name: str) -> str:
        return resource_path("email", name).read_text(encoding="utf-8")

    return InvitationTemplates(subject=read(_SUBJECT), html=read(_HTML), text=read(_TEXT))


def render(templates: InvitationTemplates, context: EmailContext) -> RenderedEmail:
    """Render the three parts; a part that fails raises TemplateError (part, line, reason)."""
    env = _environment(templates)
    variables = _variables(context)
    subject = _render_part(env, _SUBJECT, variables)
    return RenderedEmail(
        subject=" ".join(subject.split()),
        html=_render_part(env, _HTML, variables),
        text=_render_part(env, _TEXT, variables),
    )


def validate_templates(templates: InvitationTemplates) -> None:
    """Refuse templates that do not parse, use unknown names or unsafe attributes, or render empty."""
    parser = SandboxedEnvironment(undefined=StrictUndefined)
    for name, source in _sources(templates).items():
        try:
            parser.parse(source)
        except TemplateSyntaxError as error:
            raise TemplateError(
                _PART_LABELS[name], error.lineno, error.message or "syntax error"
            ) from error
    env = _environment(templates)
    for context in _sample_contexts():
        variables = _variables(context)
        for name in (_SUBJECT, _HTML, _TEXT):
            if not _render_part(env, name, variables).strip():
                raise TemplateError(
                    _PART_LABELS[name], None, "renders nothing; it must not be empty"
                )


def _render_part(env: SandboxedEnvironment, name: str, variables: dict[str, Any]) -> str:
    """Render one part, turning every Jinja failure into a TemplateError a person can act on."""
    part = _PART_LABELS[name]
    try:
        return env.get_template(name).render(variables)
    except TemplateSyntaxError as error:
        raise TemplateError(part, error.lineno, error.message or "syntax error") from error
    except UndefinedError as error:
        reason = f"{error.message}. Available names: {', '.join(sorted(variables))}"
        raise TemplateError(part, _template_line(error, name), reason) from error
    except SecurityError as error:
        reason = f"not allowed in a template ({error})"
        raise TemplateError(part, _template_line(error, name), reason) from error
    except Exception as error:  # any other runtime failure of admin-written template code
        reason = f"does not render: {type(error).__name__}: {error}"
        raise TemplateError(part, _template_line(error, name), reason) from error


def _sources(templates: InvitationTemplates) -> dict[str, str]:
    return {_SUBJECT: templates.subject, _HTML: templates.html, _TEXT: templates.text}


@lru_cache(maxsize=16)
def _environment(templates: InvitationTemplates) -> SandboxedEnvironment:
    """One compiled, sandboxed environment per template set (rendering a batch compiles once)."""
    env = SandboxedEnvironment(
        loader=_loader(_sources(templates)),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["nl2br"] = _nl2br
    env.filters["quote_lines"] = _quote_lines
    return env


def _loader(sources: dict[str, str]) -> FunctionLoader:
    """Like DictLoader, but each template's filename is its name, so errors can name a line."""

    def load(name: str) -> tuple[str, str, Callable[[], bool]] | None:
        return (sources[name], name, lambda: True) if name in sources else None

    return FunctionLoader(load)


def _variables(context: EmailContext) -> dict[str, Any]:
    variables = asdict(context)
    variables["accent_text_color"] = _readable_text_on(context.accent_color)
    return variables


def _nl2br(value: str) -> Markup:
    """Escape a plain value and turn its line breaks into <br> (safe for the HTML part)."""
    return Markup("<br>\n").join(escape(line) for line in str(value).splitlines())


def _quote_lines(value: str) -> str:
    """Prefix each line with '> ' for the plain-text part."""
    return "\n".join(f"> {line}".rstrip() for line in str(value).splitlines())


def _readable_text_on(background: str) -> str:
    """White or near-black, whichever reads better on the accent colour (WCAG luminance)."""
    channels = [int(background[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#1f2328" if luminance > 0.4 else "#ffffff"


def _template_line(error: BaseException, name: str) -> int | None:
    """The template line where a render error happened, read from Jinja's rewritten traceback."""
    line = None
    for frame_name, lineno in _frames(error.__traceback__):
        if frame_name == name:
            line = lineno
    return line


def _frames(tb: TracebackType | None) -> Iterator[tuple[str, int]]:
    while tb is not None:
        yield tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next


def _sample_contexts() -> list[EmailContext]:
    """Contexts that exercise every branch of the default templates (logo, guest, empty values)."""
    member = EmailContext(
        organization_name="Riverside Rowing Club",
        organization_description="A friendly club on the river since 1921.",
        accent_color="#1A73E8",
        has_logo=True,
        inviter_name="Ada Lovelace",
        invitee_name="Grace Hopper",
        personal_message="Join us!\nTraining is on Tuesdays.",
        registration_link="https://example.org/join/sample-token",
        expires_at="31 December 2030",
    )
    bare = replace(
        member, has_logo=False, invitee_name="", personal_message="", accent_color="#F5F5F5"
    )
    guest = replace(member, event_name="Summer Regatta")
    return [
        member,
        bare,
        guest,
        replace(bare, event_name="Summer Regatta", organization_description=""),
    ]
