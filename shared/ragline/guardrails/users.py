"""End users (issue 18): the org of a verified ID token, and the `app_user` row of its
identity, created at first sign-in. No passwords: identities come from trusted issuers only.

The org comes from the issuer's org claim (slug or id) or, for an issuer without one, from
the membership table (an `app_user` row bound to the identity, or invited by a verified
email). An unknown or unmapped user is refused (ForbiddenError): there is no default org.
"""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from ragline.core.errors import ForbiddenError
from ragline.db import tenancy
from ragline.db.models import AppUser
from ragline.guardrails.apikeys import Principal
from ragline.guardrails.oidc import Identity

#: What a signed-in user may do; an `admin` role adds the admin scope.
USER_SCOPES = frozenset({"read", "write"})


def locate(session: Session, ident: Identity) -> Principal:
    """The org a verified identity belongs to (before any org is bound: definer lookups)."""
    if ident.org_from_claim:
        if ident.org_ref is None:
            raise ForbiddenError("the token names no org")
        org = session.scalar(sa.text("select ragline_org_by_ref(:r)"), {"r": ident.org_ref})
        if org is None:
            raise ForbiddenError("the token's org is unknown")
        return Principal(None, org, USER_SCOPES, identity=ident)
    rows = session.execute(
        sa.text("select org_id, bound from ragline_oidc_memberships(:i, :s, :e)"),
        {"i": ident.issuer, "s": ident.subject, "e": ident.email if ident.email_verified else None},
    ).all()
    # An identity already bound to a user wins over invitations still open elsewhere.
    orgs = {r.org_id for r in rows if r.bound} or {r.org_id for r in rows}
    if len(orgs) != 1:
        # None: not a member. Several: ambiguous (choosing one would be a default org).
        raise ForbiddenError("the user is not a member of exactly one org")
    return Principal(None, orgs.pop(), USER_SCOPES, identity=ident)


def _by_identity(session: Session, ident: Identity) -> AppUser | None:
    return session.scalars(
        tenancy.scoped_select(
            session, AppUser, AppUser.issuer == ident.issuer, AppUser.subject == ident.subject
        )
    ).one_or_none()


def sign_in(session: Session, principal: Principal) -> Principal:
    """The principal with its user: for a token, the identity's `app_user` (created at first
    sign-in in a claim-mode org, an invite claimed by verified email otherwise; groups kept
    current); for a key acting as a user, that user's groups and role."""
    ident: Identity | None = principal.identity
    if ident is None:
        if principal.user_id is None:
            return principal
        user = tenancy.get(session, AppUser, principal.user_id)
        if user is None:
            raise ForbiddenError("the key's user no longer exists")
        return _with(principal, user)
    user = _by_identity(session, ident)
    groups = sorted(ident.groups)
    email = ident.email if ident.email_verified else None
    if user is None and email is not None:
        user = session.scalars(
            tenancy.scoped_select(
                session, AppUser, AppUser.email == email, AppUser.subject.is_(None)
            ).with_for_update()
        ).one_or_none()
        if user is not None:  # an invitation: bind it to this identity
            user.issuer, user.subject, user.groups = ident.issuer, ident.subject, groups
    if user is None:
        if not ident.org_from_claim:
            raise ForbiddenError("the user is not a member of this org")
        org = tenancy.current_org(session)
        values = {"org_id": org, "issuer": ident.issuer, "subject": ident.subject}
        for mail in (email, None):  # the email may belong to another identity: keep none
            session.execute(
                insert(AppUser).values(**values, email=mail, groups=groups).on_conflict_do_nothing()
            )
            user = _by_identity(session, ident)
            if user is not None:
                break
        assert user is not None
    elif list(user.groups) != groups:
        user.groups = groups
    session.flush()
    return _with(principal, user)


def _with(principal: Principal, user: AppUser) -> Principal:
    scopes = principal.scopes
    if user.role == "admin" and principal.identity is not None:  # a key keeps its own scopes
        scopes = scopes | {"admin"}
    return replace(principal, user_id=user.id, groups=frozenset(user.groups), scopes=scopes)
