"""Production sign-in: the console against a REAL OpenID provider on loopback
(panva/oidc-provider, tests/e2e/oidc_provider.py), in headless Chromium. The auditor
goes from /console/login through the provider's own login and consent forms back to the
console's home page, signed in with the role and organisation of their ID token. A
person without a role claim, a cancelled sign-in and a forged callback each get a clear
page, never a 500; the code never reaches the server's log; and the development login
link still works beside it."""

import re
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.browser import chromium, require_browser, screenshots_for, serious_violations
from tests.e2e.oidc_provider import CLIENT_ID, running_provider
from tests.e2e.server import BIN, free_port, running_server

pytestmark = pytest.mark.e2e

SECRET = "provider-client-secret-for-the-test-only"
ACCOUNTS = {
    "auditor-okoro": {"role": "auditor", "org": "org-main"},
    "visitor-no-role": {"org": "org-main"},
}


def _sign_in_at_provider(page: object, login: str) -> None:
    """The provider's own pages: its login form, then its consent form."""
    page.fill("input[name=login]", login)  # type: ignore[attr-defined]
    page.fill("input[name=password]", "any password the provider accepts")  # type: ignore[attr-defined]
    page.click("button:has-text('Sign-in')")  # type: ignore[attr-defined]
    page.click("button:has-text('Continue')")  # type: ignore[attr-defined]


def test_an_auditor_signs_in_through_a_real_openid_provider(
    database_url: str, tmp_path: Path
) -> None:
    require_browser()
    shots = screenshots_for(database_url, tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    redirect = f"{base}/console/oidc/callback"
    with running_provider(redirect, SECRET, ACCOUNTS, tmp_path / "provider.log") as issuer:
        settings = {
            "CARELEDGER_OIDC_ISSUER": issuer,
            "CARELEDGER_OIDC_CLIENT_ID": CLIENT_ID,
            "CARELEDGER_OIDC_CLIENT_SECRET": SECRET,
            "CARELEDGER_OIDC_REDIRECT_URI": redirect,
            "CARELEDGER_OIDC_SCOPE": "openid careledger",
        }
        with (
            running_server(
                database_url, tmp_path, "--with-projections", environment=settings, port=port
            ) as (_base, env, log),
            chromium(bypass_csp=True) as browser,
        ):
            page = browser.new_page()
            requested: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            # When the auditor opens the console's sign-in, they land on the provider
            page.goto(f"{base}/console/login")
            assert page.url.startswith(f"{issuer}/"), page.url
            (authorize,) = [u for u in requested if u.startswith(f"{issuer}/auth?")]
            sent = parse_qs(urlparse(authorize).query)
            assert sent["code_challenge_method"] == ["S256"] and sent["code_challenge"]
            assert sent["state"] and sent["nonce"] and sent["client_id"] == [CLIENT_ID]
            # and sign in there, with the provider's own forms
            _sign_in_at_provider(page, "auditor-okoro")
            page.wait_for_url(f"{base}/console/")
            codes = [
                code
                for url in requested
                if url.startswith(redirect)
                for code in parse_qs(urlparse(url).query).get("code", [])
            ]
            # Then they are on the console's home page, as the ID token's actor
            who = page.inner_text("form.who span")
            assert who == "Signed in as auditor-okoro (auditor, org-main)", who
            assert serious_violations(page) == []
            page.click("a:has-text('Access log')")
            assert page.url == f"{base}/console/audit/accesses"
            assert page.inner_text("h1").startswith("Access log")
            page.screenshot(path=str(shots / "oidc-signed-in.png"), full_page=True)
            cookies = {c["name"]: c for c in browser.cookies()}
            session = cookies["careledger_console"]
            assert session["httpOnly"] and session["sameSite"] == "Strict"
            assert "careledger_oidc" not in cookies  # the state cookie is spent

            # A person whose identity carries no role is told so, on a page, not a 500
            other = browser.new_page()
            other.context.clear_cookies()
            other.goto(f"{base}/console/login")
            _sign_in_at_provider(other, "visitor-no-role")
            other.wait_for_url(re.compile(r".*/console/oidc/callback.*"))
            assert "no role claim" in other.inner_text("main")
            assert serious_violations(other) == []
            other.screenshot(path=str(shots / "oidc-no-role.png"), full_page=True)

            # A sign-in cancelled at the provider comes back as its error code
            other.context.clear_cookies()
            other.goto(f"{base}/console/login")
            other.click("a:has-text('Cancel')")
            other.wait_for_url(re.compile(r".*/console/oidc/callback.*"))
            assert "did not sign you in (access_denied)" in other.inner_text("main")

            # A forged callback (no state this browser started) is refused
            forged = other.goto(f"{base}/console/oidc/callback?state=forged&code=stolen")
            assert forged is not None and forged.status == 400
            assert "did not start in this browser" in other.inner_text("main")

            # The development login link still signs in beside OpenID Connect
            link = subprocess.run(
                [
                    *(str(BIN / "careledger"), "token", "--login", "--role", "auditor"),
                    *("--sub", "auditor-dev", "--base-url", base),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            other.context.clear_cookies()
            other.goto(link)
            assert "auditor-dev (auditor" in other.inner_text("form.who span")

        # The codes the provider issued never reached the server's log, nor did a 500
        written = log.read_text()
        assert codes, "the browser passed through the callback with a code"
        for code in codes:
            assert code not in written
        assert '"status":500' not in written and "Traceback" not in written
        assert '"status":200' in written  # (the log is what the assertions above read)
