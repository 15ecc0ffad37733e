"""Identity failures with stable codes clients can branch on."""

from touchstone.core.errors import AppError, Conflict, TooManyRequests, Unauthorized


class InvalidCredentials(Unauthorized):
    code, title = "invalid_credentials", "Incorrect email or password"


class LoginLocked(TooManyRequests):
    """Too many failed sign-ins for this email; the same answer whether or not it exists.

    Commits: the attempt that locks the email also writes its audit events.
    """

    code, title = "login_locked", "Too many failed sign-ins; try again later"
    keep_changes = True


class OrgChoiceRequired(AppError):
    status, code, title = 400, "org_choice_required", "Choose an organization"


class RefreshTokenInvalid(Unauthorized):
    code, title = "refresh_token_invalid", "The refresh token is invalid or expired"


class RefreshTokenReused(Unauthorized):
    """A rotated token came back: someone holds a copy, so the whole family is revoked."""

    code, title = "refresh_token_reused", "The refresh token was already used"
    keep_changes = True


class InvitationInvalid(AppError):
    status, code, title = 400, "invitation_invalid", "The invitation is invalid or expired"


class LastAdmin(Conflict):
    code, title = "last_admin", "An organization needs at least one active admin"


class ApiKeyInvalid(Unauthorized):
    code, title = "api_key_invalid", "The API key is invalid, expired or revoked"


class PasswordResetInvalid(AppError):
    """Unknown, used, replaced or expired, or the account can no longer sign in: one answer."""

    status, code, title = 400, "password_reset_invalid", "The reset link is invalid or expired"
