"""Hypothesis strategies for contractor ids: valid ones, and hostile ones that must be refused.

Shared by test_ids.py and test_access.py (pytest puts this folder on sys.path). Every hostile
strategy is built so that its values can never be valid: each carries at least one character
outside ``[a-z0-9-]``, starts with a hyphen, is empty, is too long, or is not a string.
Kept cheap (short texts, no filtering of the long ones) so thousands of examples run in seconds.
"""

from __future__ import annotations

import re
import string

from hypothesis import strategies as st

#: An independent statement of the rule, to check the kit's validator against.
REFERENCE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}", re.ASCII)
VALID_ALPHABET = string.ascii_lowercase + string.digits + "-"

valid_ids = st.from_regex(REFERENCE, fullmatch=True)

_body = st.text(alphabet=VALID_ALPHABET, max_size=10)

#: Single characters (and short fragments) that must never appear in a contractor id.
HOSTILE_FRAGMENTS: tuple[str, ...] = (
    # IAM wildcards, path steps and separators
    "*", "?", "/", "\\", ".", "..", "../", "/*", "*/", ":", ";", ",", "|",
    # JSON and policy syntax: quotes, braces, brackets, policy variables
    '"', "'", "`", "{", "}", "[", "]", '"}', '"},{', "${aws:username}", "${aws:userid}",
    "${aws:PrincipalTag/contractor}", "${*}", "${?}", "${$}", "$", "%", "%2F", "%00",
    "@", "#", "&", "+", "=", "<", ">", "!", "^", "~", "(", ")", "_",
    # whitespace and control characters
    " ", "\t", "\n", "\r", "\r\n", "\x00", "\x0b", "\x0c", "\x1b", "\x1b[31m", "\x7f",
    "\u00a0", "\u2028", "\u200b", "\ufeff",
    # uppercase ASCII
    *string.ascii_uppercase,
    # Unicode look-alikes of allowed characters
    "\u0441",  # Cyrillic small es, looks like c
    "\u0430", "\u0435", "\u043e", "\u0440", "\u0445", "\u0443", "\u0456", "\u0455",  # Cyrillic
    "\u0131",  # dotless i
    "\u017f",  # long s (uppercases to S)
    "\u212a",  # Kelvin sign (lowercases to k)
    "\uff41", "\uff43", "\uff10", "\uff11", "\uff0d",  # fullwidth a, c, 0, 1, hyphen
    "\u2010", "\u2011", "\u2212", "\u2013",  # hyphen, non-breaking hyphen, minus, en dash
    "\u00e9", "e\u0301",  # precomposed and combining accents
    "\u0661", "\u0967",  # Arabic-Indic and Devanagari digits (str.isdigit() is True)
    "\U0001d41a",  # mathematical bold small a
)

_inserted = st.tuples(_body, st.sampled_from(HOSTILE_FRAGMENTS), _body).map("".join)
_leading_hyphen = _body.map(lambda rest: "-" + rest)
_too_long = st.tuples(
    st.integers(min_value=33, max_value=5000),
    st.text(alphabet=VALID_ALPHABET, min_size=1, max_size=8),
).map(lambda nt: ("a" + nt[1] * (nt[0] // len(nt[1]) + 1))[: nt[0]])
_random_text = st.text(max_size=40).filter(lambda s: REFERENCE.fullmatch(s) is None)
_not_a_string = st.sampled_from([None, 7, 1.5, True, b"c1", bytearray(b"c1"), ["c1"], ("c1",),
                                 {"id": "c1"}, object()])

#: Everything here must be refused with InvalidParameterError.
hostile_ids = st.one_of(
    _inserted,
    _leading_hyphen,
    st.just(""),
    _too_long,
    _random_text,
    _not_a_string,
)
