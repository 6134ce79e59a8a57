"""Endpoints: raw paths -> templates and tags, as vectorised polars expressions.

``/api/v1/orders/123456`` and ``/api/v1/orders/987`` are one endpoint ``/api/v1/orders/{id}``:
numbers, UUIDs, long hex hashes, e-mail addresses and long opaque tokens in a path segment become
placeholders. Uniqueness, sequences and breadth work on templates (what kind of action) and on raw
resources (which object) where each fits.

Tags, by keyword over the template (and the profile's own ``sensitive_endpoints`` globs):

* ``sensitive`` — writes (POST/PUT/PATCH/DELETE) to login, registration, password reset, checkout,
  payment, OTP, token, account changes: actions whose abuse costs money or accounts;
* ``login`` — authentication endpoints (a failed login is a 401/403 there);
* ``signup`` — account creation;
* ``probe`` — paths and payloads security scanners try (``/.env``, ``/.git/``, ``/wp-admin``,
  ``/phpmyadmin``, traversal, SQL injection, ...), which an API's own clients never request.
"""

from __future__ import annotations

import polars as pl

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# one whole path segment each (the path gets a sentinel "/" at its end; polars' regex has no look-ahead)
_SEG_RULES: tuple[tuple[str, str], ...] = (
    (rf"/{_UUID}/", "/{uuid}/"),
    (r"/[^/@]+@[^/@]+\.[A-Za-z]{2,}/", "/{email}/"),
    (r"/[0-9a-fA-F]{16,}/", "/{hash}/"),
    (r"/\d+/", "/{id}/"),
    (r"/[A-Za-z0-9_\-]*\d[A-Za-z0-9_\-]{19,}/", "/{token}/"),
)

SENSITIVE_WORDS = (
    r"login|log-in|signin|sign-in|logon|auth|oauth|token|session|password|passwd|reset|forgot|recover|"
    r"register|registration|signup|sign-up|join|otp|2fa|mfa|verify|verification|checkout|payment|pay|"
    r"billing|card|wallet|transfer|withdraw|account|profile/(?:email|phone|password)|gift"
)
LOGIN_WORDS = r"login|log-in|signin|sign-in|logon|/auth(?:/|$)|/authenticate|oauth/token|/token(?:/|$)|/session(?:s)?(?:/|$)|otp|2fa|mfa"
SIGNUP_WORDS = r"register|registration|signup|sign-up|/join(?:/|$)|/users/?$|/accounts/?$"
PROBE = (
    r"(?i)(?:/\.env|/\.git/|/\.svn/|/\.hg/|/\.ds_store|/\.aws/|/\.ssh/|wp-admin|wp-login|wp-content|wp-includes|"
    r"xmlrpc\.php|phpmyadmin|/pma/|/myadmin|/cgi-bin/|/server-status|/actuator|/solr/|/jenkins|/manager/html|"
    r"/boaform|/hnap1|/etc/passwd|\.\./|%2e%2e|/admin\.php|/config\.(?:php|json|yml|yaml)|/web\.config|"
    r"/backup\.(?:zip|sql|tar)|\.sql(?:\.gz)?$|/shell|/cmd\.|/console|/vendor/phpunit|/autodiscover|/owa/|"
    r"union(?:\s|%20|\+)+select|(?:'|%27)(?:\s|%20|\+)*(?:or|and)(?:\s|%20|\+)|sleep\(|benchmark\(|<script|%3cscript|"
    r"\$\{jndi:|/etc/shadow|/proc/self|/win\.ini|select(?:\s|%20|\+).+from)"
)


def resource(path: pl.Expr) -> pl.Expr:
    """The path without query and fragment (``template(resource(p)) == template(p)``)."""
    return path.str.replace(r"[?#].*$", "")


def template(path: pl.Expr) -> pl.Expr:
    """Path without query/fragment, identifiers in segments replaced by placeholders, lower-cased."""
    e = resource(path) + "/"
    for pattern, repl in _SEG_RULES:  # twice: a match consumes the "/" the next segment starts with
        e = e.str.replace_all(pattern, repl).str.replace_all(pattern, repl)
    e = e.str.strip_suffix("/")
    return pl.when(e == "").then(pl.lit("/")).otherwise(e).str.to_lowercase()


def tags(tpl: pl.Expr, method: pl.Expr, sensitive_globs_regex: str | None = None) -> dict[str, pl.Expr]:
    """Boolean tag columns for a template expression (see the module docstring)."""
    write = method.is_in(["POST", "PUT", "PATCH", "DELETE"])
    sensitive = tpl.str.contains(SENSITIVE_WORDS) & write  # actions, not reading a page about them
    if sensitive_globs_regex:
        sensitive = sensitive | tpl.str.contains(sensitive_globs_regex)
    return {
        "sensitive": sensitive,
        "login": tpl.str.contains(LOGIN_WORDS) & write,
        "signup": tpl.str.contains(SIGNUP_WORDS) & write,
    }


def probe(raw_path: pl.Expr) -> pl.Expr:
    """True for requests that look like scanner probes or injection payloads."""
    return raw_path.str.contains(PROBE)


STATIC = (
    r"(?i)\.(?:css|js|mjs|map|png|jpe?g|gif|svg|ico|webp|avif|bmp|woff2?|ttf|otf|eot|mp4|webm|mp3)(?:[?#]|$)"
)


def static_asset(raw_path: pl.Expr) -> pl.Expr:
    """True for page assets (stylesheets, scripts, images, fonts, media): not breadth of interest."""
    return raw_path.str.contains(STATIC)


def globs_to_regex(globs: list[str]) -> str | None:
    """Profile globs (``/api/*/login``) -> one regex over templates (None when empty)."""
    import fnmatch

    if not globs:
        return None
    return "|".join(f"(?:{fnmatch.translate(g.lower())})" for g in globs)
