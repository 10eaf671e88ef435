"""``redact`` masks a credential however it is written around its name.

The same password or key reaches a message or a log record as a libpq DSN pair
(``password='…'``, blanks around ``=``), a query parameter with a percent-encoded
name or ``=`` (``pass%77ord=``, ``sig%3D…``), a pair nested in libpq's ``options``
(``options=-c%20password%3D…``), a dict's ``repr`` or JSON (``'password': '…'``) or
an ``Authorization:`` header. A generated secret in each of those places, under
names in any casing, never survives :func:`dq_stores._redact.redact`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

from hypothesis import assume, given
from hypothesis import strategies as st

from dq_stores._redact import redact
from dq_stores.sql._url import parse_url, render_url

SECRETS = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="\\"),
    min_size=10,
    max_size=30,
)
#: Bare values (a DSN's unquoted value, a connection-string field, a query value).
BARE = st.text(
    alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789+/=_-",
    min_size=10,
    max_size=30,
)
NAMES = st.sampled_from(
    ["password", "sslpassword", "accountkey", "sharedaccesssignature", "sig", "pwd", "token"]
).flatmap(lambda name: st.sampled_from([name, name.upper(), name.capitalize()]))
AROUND = st.text(alphabet="abcdefgh .,:()[]", max_size=12)


def libpq_quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def percent_name(name: str) -> str:
    return name[:-1] + f"%{ord(name[-1]):02X}"  # ``passwor%64``: a URL reader sees ``password``


#: (how the secret is written, a form of it that must not survive)
FORMS: list[Callable[[str, str], tuple[str, str]]] = [
    lambda n, s: (f"host=db {n}={libpq_quoted(s)} dbname=dq", s),
    lambda n, s: (f"host=db {n} = {libpq_quoted(s)} dbname=dq", s),
    lambda n, s: (f"https://h/p?a=1&{percent_name(n)}={quote(s, safe='')}&b=2", quote(s, safe="")),
    lambda n, s: (f"https://h/p?a=1&{n}%3D{quote(s, safe='')}", quote(s, safe="")),
    lambda n, s: (f"/db?options={quote(f'-c {n}={s}', safe='')}", quote(s, safe="")),
    lambda n, s: (f"host=db options='-c {n}={s.replace(chr(39), '')} -c x=y'", s.replace("'", "")),
    lambda n, s: (f"url='https://h/p?a=1&{n}={quote(s, safe='')}'", quote(s, safe="")),
    lambda n, s: (repr({"url": f"https://h/p?{n}={quote(s, safe='')}&b=2"}), quote(s, safe="")),
    lambda n, s: (repr({n: s}), s),
    lambda n, s: (json.dumps({n: s, "host": "db"}), json.dumps(s)[1:-1]),
]


@given(name=NAMES, secret=SECRETS, before=AROUND, after=AROUND, form=st.sampled_from(FORMS))
def test_a_secret_is_masked_in_every_written_form(
    name: str,
    secret: str,
    before: str,
    after: str,
    form: Callable[[str, str], tuple[str, str]],
) -> None:
    written, visible = form(name, secret)
    assume(len(visible) >= 8 and " " not in visible.strip())
    text = f"{before} {written} {after}"
    assume(visible not in f"{before} {after}" and visible not in written.replace(visible, "", 1))
    assert visible not in redact(text), text


@given(secret=BARE, scheme=st.sampled_from(["Bearer", "Basic", "SharedKey acct:"]))
def test_an_authorization_header_is_masked(secret: str, scheme: str) -> None:
    for text in (f"Authorization: {scheme}{secret}", f"'authorization': '{scheme} {secret}'"):
        assert secret not in redact(text)


@given(secret=BARE)
def test_a_password_in_libpq_options_is_not_rendered(secret: str) -> None:
    url = parse_url(
        "postgresql+psycopg://app@db/dq?options=" + quote(f"-c password={secret}", safe="")
    )
    assert secret not in render_url(url)
    assert quote(secret, safe="") not in render_url(url)


def test_ordinary_text_is_kept() -> None:
    for text in (
        "checked 3 scope(s): sha256=ab12 revision=3 key='orders'",
        "plugins.x.password: is set but no store uses x",
        "host=db port=5432 dbname=dq sslmode=require",
        "password='' dbname=dq",
    ):
        assert redact(text) == text
