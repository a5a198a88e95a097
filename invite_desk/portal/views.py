"""The portal's pages: /join/<token>, /register, and the branding they use."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from invite_desk.portal.app import LOGO_CONTENT_SECURITY_POLICY, PortalState, portal_state
from invite_desk.portal.csrf import csrf_ok
from invite_desk.services.auth import (
    SignInLinkInvalid,
    check_sign_in_link,
    set_password_from_link,
)
from invite_desk.services.errors import ValidationFailed
from invite_desk.services.models import InvitationKind
from invite_desk.services.organization import LOGO_TYPES
from invite_desk.services.referral_program.origin import RegistrationClient
from invite_desk.services.registration.branding import DEFAULT_ACCENT, Branding, get_logo
from invite_desk.services.registration.busy import SystemBusy
from invite_desk.services.registration.confirmation import (
    ConfirmResult,
    ConfirmState,
    check_confirmation,
    confirm_registration,
    request_registration,
)
from invite_desk.services.registration.form import RegistrationForm
from invite_desk.services.registration.joining import register_with_invitation
from invite_desk.services.registration.links import JoinView, LinkState, open_link
from invite_desk.services.registration.public import (
    PublicState,
    PublicView,
    public_registration,
)
from invite_desk.services.registration.replaced import RequestState, request_current_link
from invite_desk.services.suppression import (
    UnsubscribeState,
    check_unsubscribe,
    unsubscribe,
)

bp = Blueprint("portal", __name__)

Page = tuple[str, int] | tuple[str, int, dict[str, str]] | BaseResponse

# HTTP status for each page a link can lead to.
LINK_STATUS_CODES = {
    LinkState.VALID: 200,
    LinkState.NEEDS_MORE_INVITATIONS: 200,
    LinkState.ALREADY_MEMBER: 200,
    LinkState.EXPIRED: 410,
    LinkState.USED: 410,
    LinkState.NOT_READY: 503,
    LinkState.REVOKED: 410,
    LinkState.SUPERSEDED: 410,
    LinkState.REPLACED: 410,
    LinkState.INVALID: 404,
}


def _state() -> PortalState:
    return portal_state(current_app)


def _client() -> str:
    """The client's address (the proxy's X-Forwarded-For when create_app trusts proxies)."""
    return request.remote_addr or "unknown"


def _browser() -> RegistrationClient:
    """Who registers, for the anti-gaming checks: stored only as salted hashes."""
    return RegistrationClient(ip=request.remote_addr,
                              user_agent=request.headers.get("User-Agent", "")[:1000] or None)


def _form() -> RegistrationForm:
    def field(name: str) -> str:
        return request.form.get(name, "")

    return RegistrationForm(
        first_name=field("first_name"),
        last_name=field("last_name"),
        password=field("password"),
        password_confirmation=field("password_confirmation"),
        email=field("email"),
    )


def _message(
    branding: Branding | None, heading: str, lines: list[str], code: int, *,
    title: str | None = None, headers: dict[str, str] | None = None,
) -> Page:
    page = render_template(
        "message.html", branding=branding, title=title or heading, heading=heading, lines=lines
    )
    return (page, code, headers) if headers else (page, code)


def _csrf_failed(branding: Branding | None) -> Page:
    return _message(
        branding,
        "This form has expired",
        ["For your security, forms stop working after a while or when the site restarts. "
         "Go back, reload the page, and send the form again."],
        400,
    )


def _too_many(branding: Branding | None, retry_after: int) -> Page:
    minutes = max(1, (retry_after + 59) // 60)
    return _message(
        branding,
        "Too many attempts",
        [f"There were too many attempts from your network. Please wait {minutes} "
         f"minute{'s' if minutes != 1 else ''} and try again.",
         "If your invitation link does not work, ask the person who invited you to send a new "
         "invitation."],
        429,
        headers={"Retry-After": str(retry_after)},
    )


# --------------------------------------------------------------------------- branding


@bp.get("/brand.css")
def brand_css() -> Response:
    branding = _state().branding()
    accent = branding.accent_color if branding else DEFAULT_ACCENT
    accent_text = branding.accent_text_color if branding else "#FFFFFF"
    css = f":root {{\n  --accent: {accent};\n  --accent-text: {accent_text};\n}}\n"
    return Response(css, mimetype="text/css")


@bp.get("/favicon.ico")
def favicon() -> Response:
    """The logo when there is one; otherwise nothing (not a 404 in every browser console)."""
    state = _state()
    org_id = state.organization_id
    if org_id is None or get_logo(state.uow, org_id) is None:
        return Response(status=204)
    return logo()


@bp.get("/logo")
def logo() -> Response:
    state = _state()
    org_id = state.organization_id
    found = get_logo(state.uow, org_id) if org_id is not None else None
    if found is None or found.mime not in LOGO_TYPES:
        abort(404)
    response = Response(found.data, mimetype=found.mime)
    response.headers["Content-Security-Policy"] = LOGO_CONTENT_SECURITY_POLICY
    response.headers["Content-Disposition"] = "inline; filename=logo"
    return response


@bp.get("/")
def index() -> BaseResponse:
    return redirect(url_for("portal.register"))


# ------------------------------------------------------------------------ invitation link


def _join_form(view: JoinView, token: str, *, values: dict[str, str] | None = None,
               errors: dict[str, str] | None = None, code: int = 200,
               notice: str = "") -> Page:
    filled = {"first_name": view.first_name, "last_name": view.last_name}
    if values is not None:
        filled = {"first_name": values.get("first_name", ""),
                  "last_name": values.get("last_name", "")}
    page = render_template(
        "join.html",
        branding=view.branding,
        view=view,
        is_event=view.kind is InvitationKind.EVENT,
        action=url_for("portal.join", token=token),
        values=filled,
        errors=errors or {},
        notice=notice,
    )
    if code == 503:
        return page, code, {"Retry-After": "5"}
    return page, code


def _link_page(view: JoinView, token: str = "") -> Page:
    action = url_for("portal.current_link", token=token) if view.can_request_link else ""
    page = render_template("link_state.html", branding=view.branding, view=view,
                           request_action=action)
    code = LINK_STATUS_CODES[view.state]
    if view.state is LinkState.NOT_READY:
        return page, code, {"Retry-After": "60"}
    return page, code


@bp.route("/join/<token>", methods=["GET", "POST"])
def join(token: str) -> Page:
    state = _state()
    client = _client()
    if state.bad_tokens.blocked(client):
        return _too_many(state.branding(), state.bad_tokens.retry_after(client))
    org_id = state.organization_id
    if request.method == "POST":
        if not csrf_ok():
            return _csrf_failed(state.branding())
        try:
            result = register_with_invitation(state.uow, token, _form(), organization_id=org_id,
                                              busy_budget=state.busy_budget,
                                              client=_browser())
        except SystemBusy as exc:
            view = open_link(state.uow, token, organization_id=org_id)
            if view.state is not LinkState.VALID:
                return _link_page(view, token)
            return _join_form(view, token, values=dict(request.form), code=503,
                              notice=exc.message)
        except ValidationFailed as exc:
            view = open_link(state.uow, token, organization_id=org_id)
            if view.state is not LinkState.VALID:
                return _link_page(view, token)
            return _join_form(view, token, values=dict(request.form), errors=exc.errors,
                              code=422)
        if result.registered:
            session["done"] = {
                "kind": result.kind.value,
                "first_name": result.first_name,
                "pending": result.application_pending,
                "event": result.event_name,
            }
            return redirect(url_for("portal.welcome"), code=303)
    # A GET, or a POST that did not register (the link was used or expired meanwhile): the page
    # for what the link says now.
    view = open_link(state.uow, token, organization_id=org_id)
    if view.state.is_bad_token:
        state.bad_tokens.hit(client)
    if view.state is LinkState.VALID:
        return _join_form(view, token)
    return _link_page(view, token)


@bp.post("/join/<token>/current-link")
def current_link(token: str) -> Page:
    """"Email me the current link", from the page of a link closed as a duplicate: queues
    the live invitation's email to the address on file (registration/replaced.py). Counted
    against the client's registration limit; a link that is not such a link counts as a
    bad token when it is unknown, and shows its own page."""
    state = _state()
    client = _client()
    if state.bad_tokens.blocked(client):
        return _too_many(state.branding(), state.bad_tokens.retry_after(client))
    if not csrf_ok():
        return _csrf_failed(state.branding())
    hits = state.registrations.hit(client)
    if hits is not None and hits > state.registrations.limit:
        return _too_many(state.branding(), state.registrations.retry_after(client))
    result = request_current_link(state.uow, token, state.organization_id,
                                  busy_budget=state.busy_budget)
    view = result.view
    if result.state is RequestState.UNAVAILABLE:
        if view.state.is_bad_token:
            state.bad_tokens.hit(client)
        if view.state is LinkState.VALID:  # a live link: its own form, not an email
            return redirect(url_for("portal.join", token=token), code=303)
        return _link_page(view, token)
    if result.state is RequestState.ALREADY_REQUESTED:
        minutes = max(1, (result.retry_after + 59) // 60)
        return _message(
            view.branding, "The current link was already requested",
            [f"The current invitation was emailed again to {view.email} less than an hour "
             "ago; it is on its way. Check your inbox and your spam folder, and use the link "
             "in the most recent email.",
             f"If it has not arrived, you can ask again in {minutes} "
             f"minute{'s' if minutes != 1 else ''}."],
            429, headers={"Retry-After": str(result.retry_after)})
    return _message(
        view.branding, "Your current invitation is on its way",
        [f"We are emailing the current invitation again to {view.email}, the address this "
         "link was sent to. It should arrive within a few minutes; check your spam folder "
         "too.",
         "Use the link in that email: it replaces the links in the earlier ones."],
        202)


@bp.get("/welcome")
def welcome() -> Page:
    # Shown once: on a shared computer the next person does not see who registered.
    done: dict[str, Any] = session.pop("done", None) or {}
    if not done:
        return redirect(url_for("portal.register"))
    return render_template("welcome.html", branding=_state().branding(), done=done), 200


# ------------------------------------------------------------------- public registration


PUBLIC_FIELDS = ("email", "first_name", "last_name")


def _typed() -> dict[str, str]:
    """What the person typed on the public form (never the password)."""
    return {k: request.form.get(k, "")[:400] for k in PUBLIC_FIELDS}


def _public_page(view: PublicView, *, values: dict[str, str] | None = None,
                 errors: dict[str, str] | None = None, code: int = 200,
                 notice: str = "") -> Page:
    if view.state is PublicState.NOT_SET_UP:
        return _message(
            None, "Registration is not open yet",
            ["This organization has not finished setting up its registration page. "
             "Please try again later."], 503,
        )
    if view.state is PublicState.NO_EMAIL:
        return _message(
            view.branding, "Registration is unavailable",
            ["Registration on this page confirms your email address with a link we send you, "
             "and the organization has not set up sending email from this page yet, so "
             "registration by email confirmation is unavailable for now.",
             "If you were invited by a member, use the link in your invitation email. "
             "Otherwise please try again later or contact the organization."], 503,
        )
    if view.state is PublicState.INVITE_ONLY:
        return render_template("invite_only.html", branding=view.branding, view=view), 200
    page = render_template(
        "register.html", branding=view.branding, view=view,
        values=values or {"email": "", "first_name": "", "last_name": ""},
        errors=errors or {}, notice=notice,
    )
    if code == 503:
        return page, code, {"Retry-After": "5"}
    return page, code


@bp.route("/register", methods=["GET", "POST"])
def register() -> Page:
    state = _state()
    view = public_registration(state.uow, state.organization_id, confirm_by_email=True)
    if request.method == "GET" or view.state is not PublicState.OPEN:
        return _public_page(view)
    if not csrf_ok():
        return _csrf_failed(view.branding)
    client = _client()
    org_id = state.organization_id
    assert org_id is not None
    try:
        # Counted before the password is hashed: a burst cannot get past the limit.
        hits = state.registrations.hit(client)
        if hits is not None and hits > state.registrations.limit:
            return _too_many(view.branding, state.registrations.retry_after(client))
        result = request_registration(state.uow, org_id, _form(),
                                      busy_budget=state.busy_budget)
    except ValidationFailed as exc:
        return _public_page(view, values=_typed(), errors=exc.errors, code=422)
    except SystemBusy as exc:
        return _public_page(view, values=_typed(), code=503, notice=exc.message)
    if result.view.state is not PublicState.OPEN:
        return _public_page(result.view)
    outcome = state.mailer.send(org_id, result.email) if result.email is not None else None
    if outcome is not None and outcome.refused:  # submitting again would not help
        return _public_page(view, values=_typed(), errors={"email": outcome.refused}, code=422)
    if outcome is not None and not outcome:
        return _public_page(view, values=_typed(), code=503, notice=(
            "We could not send the confirmation email just now. Please submit the form "
            "again in a few minutes."))
    session["received"] = {"sent": True}
    return redirect(url_for("portal.received"), code=303)


@bp.get("/register/received")
def received() -> Page:
    outcome: dict[str, Any] = session.pop("received", None) or {}
    if not outcome:
        return redirect(url_for("portal.register"))
    return render_template("received.html", branding=_state().branding()), 200


# ------------------------------------------------------------------- confirmation link

CONFIRM_STATUS_CODES = {
    ConfirmState.READY: 200,
    ConfirmState.USED: 410,
    ConfirmState.EXPIRED: 410,
    ConfirmState.CLOSED: 410,
    ConfirmState.ALREADY_MEMBER: 200,
    ConfirmState.INVALID: 404,
}


def _confirm_page(result: ConfirmResult, token: str) -> Page:
    page = render_template(
        "confirm.html", branding=result.branding, result=result, s=result.state.value,
        action=url_for("portal.confirm", token=token),
    )
    return page, CONFIRM_STATUS_CODES.get(result.state, 200)


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str) -> Page:
    state = _state()
    client = _client()
    if state.bad_tokens.blocked(client):
        return _too_many(state.branding(), state.bad_tokens.retry_after(client))
    org_id = state.organization_id
    if request.method == "POST":
        if not csrf_ok():
            return _csrf_failed(state.branding())
        result = confirm_registration(state.uow, token, org_id, busy_budget=state.busy_budget,
                                      client=_browser())
        if result.state is ConfirmState.CONFIRMED:
            session["done"] = {"kind": InvitationKind.MEMBERSHIP.value,
                               "first_name": result.first_name,
                               "pending": result.application_pending, "event": None}
            return redirect(url_for("portal.welcome"), code=303)
    else:
        # Opening the link changes nothing: a button confirms (mail scanners open links).
        result = check_confirmation(state.uow, token, org_id)
    if result.state is ConfirmState.INVALID:
        state.bad_tokens.hit(client)
    return _confirm_page(result, token)


# --------------------------------------------------------------------------- set-password links


def _set_password_page(email: str, token: str, *, error: str = "", code: int = 200,
                       done: bool = False, invalid: str = "") -> Page:
    page = render_template(
        "set_password.html", branding=_state().branding(), email=email, error=error,
        done=done, invalid=invalid, action=url_for("portal.set_password", token=token),
    )
    return page, code


@bp.route("/set-password/<token>", methods=["GET", "POST"])
def set_password(token: str) -> Page:
    """Issue 11: an operator chooses their desktop password from the emailed link. Opening
    the link changes nothing; the form uses it once (services/auth.py keeps only its hash)."""
    state = _state()
    client = _client()
    if state.bad_tokens.blocked(client):
        return _too_many(state.branding(), state.bad_tokens.retry_after(client))
    try:
        email = check_sign_in_link(state.uow, token)
    except SignInLinkInvalid as exc:
        if "not valid" in exc.message:
            state.bad_tokens.hit(client)
        return _set_password_page("", token, invalid=exc.message,
                                  code=404 if "not valid" in exc.message else 410)
    if request.method == "POST":
        if not csrf_ok():
            return _csrf_failed(state.branding())
        password = request.form.get("password", "")
        if password != request.form.get("password_confirmation", ""):
            return _set_password_page(email, token, error="The two passwords differ.", code=400)
        try:
            set_password_from_link(state.uow, token, password)
        except ValidationFailed as exc:
            return _set_password_page(email, token, error="; ".join(exc.errors.values()),
                                      code=400)
        except SignInLinkInvalid as exc:
            return _set_password_page("", token, invalid=exc.message, code=410)
        return _set_password_page(email, token, done=True)
    return _set_password_page(email, token)


# ------------------------------------------------------------ one-click unsubscribe (RFC 8058)

UNSUBSCRIBE_STATUS_CODES = {
    UnsubscribeState.READY: 200,
    UnsubscribeState.DONE: 200,
    UnsubscribeState.INVALID: 404,
}


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe_link(token: str) -> Page:
    """GET: a page with one button (opening the link changes nothing: mail scanners open
    links). POST: unsubscribes. RFC 8058 one-click POSTs (`List-Unsubscribe=One-Click`) come
    from mail providers without a session, so there is no CSRF token to check: the unguessable
    token in the path is the authorization, and a forged POST can only unsubscribe."""
    state = _state()
    client = _client()
    if state.bad_tokens.blocked(client):
        return _too_many(state.branding(), state.bad_tokens.retry_after(client))
    org_id = state.organization_id
    if request.method == "POST":
        if request.form.get("List-Unsubscribe", "") != "One-Click":
            return _message(state.branding(), "This request is not an unsubscribe",
                            ["Open the unsubscribe link from the email and press the button."],
                            400)
        view = unsubscribe(state.uow, token, org_id, client=client)
    else:
        view = check_unsubscribe(state.uow, token, org_id)
    if view.state is UnsubscribeState.INVALID:
        state.bad_tokens.hit(client)
    page = render_template("unsubscribe.html", branding=state.branding(), view=view,
                           s=view.state.value,
                           action=url_for("portal.unsubscribe_link", token=token))
    return page, UNSUBSCRIBE_STATUS_CODES[view.state]
