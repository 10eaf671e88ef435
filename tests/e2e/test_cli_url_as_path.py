"""A database URL given where a path is expected (``--config``, an archive) is echoed
by "not found" errors; the path form (``postgresql+psycopg:/u:PASSWORD@h/db``, one
slash: ``Path`` collapses ``//``) must not show the password."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dq_registries.cli._app import app

SECRETS = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/?#@%"),
    min_size=8,
    max_size=24,
)


@settings(max_examples=25, deadline=None)
@given(secret=SECRETS, scheme=st.sampled_from(["postgresql+psycopg", "postgresql", "https"]))
def test_a_url_given_as_a_path_is_not_echoed_with_its_password(secret: str, scheme: str) -> None:
    url = f"{scheme}://app:{quote(secret, safe='')}@dbhost/dq"
    runner = CliRunner(env={"DQ_CONFIG": None})
    for args in (["verify", "--config", url], ["import", url], ["verify-archive", url]):
        result = runner.invoke(app, args)
        assert result.exit_code != 0, args
        shown = result.stdout + result.stderr
        assert quote(secret, safe="") not in shown, (args, shown)
        assert secret not in shown, (args, shown)
