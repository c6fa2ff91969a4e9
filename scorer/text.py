"""Making untrusted text safe to show: in symbol options, reports and log lines."""

from __future__ import annotations

import unicodedata

OPTION_MAX_CHARS = 160


def _escape_char(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape): show the byte
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


# Printable, yet escaped: the backslash, so an escape in the output is always ours, and
# the braces around a symbol's options in rspamd's per-message log line
# (SYMBOL(score){option;option;}): a HELO of "x},RL_HELO_FORGED_LOCAL(3.00){y" closed
# its block there and wrote a symbol of its own.
_ESCAPED_PRINTABLE = frozenset("\\{}")


# Unicode's Default_Ignorable_Code_Point property (UAX #44 section 5.3), the ranges of
# DerivedCoreProperties.txt (the same from Unicode 14.0, Python 3.11's unicodedata, to
# 16.0), as Python's unicodedata has no such property: code points shown as nothing by
# a renderer that does not support them, and that UTS46 (the IDNA mapping, UTS #46
# section 5, status "ignored") deletes, so "mail.good\u034fsender.net" was judged as
# goodsender.net, and shown as if it were. Most are not printable either (Cf, Cn), but
# str.isprintable() lets 267 through: CGJ, variation selectors, Hangul fillers, Khmer
# inherent vowels, Mongolian free variation selectors (Mn and Lo).
DEFAULT_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD),  # SOFT HYPHEN
    (0x034F, 0x034F),  # COMBINING GRAPHEME JOINER
    (0x061C, 0x061C),  # ARABIC LETTER MARK
    (0x115F, 0x1160),  # HANGUL CHOSEONG FILLER..HANGUL JUNGSEONG FILLER
    (0x17B4, 0x17B5),  # KHMER VOWEL INHERENT AQ..AA
    (0x180B, 0x180F),  # MONGOLIAN FREE VARIATION SELECTORS, VOWEL SEPARATOR
    (0x200B, 0x200F),  # ZERO WIDTH SPACE, ZWNJ, ZWJ, LRM, RLM
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x206F),  # WORD JOINER..NOMINAL DIGIT SHAPES (invisible operators, isolates)
    (0x3164, 0x3164),  # HANGUL FILLER
    (0xFE00, 0xFE0F),  # VARIATION SELECTOR-1..16
    (0xFEFF, 0xFEFF),  # ZERO WIDTH NO-BREAK SPACE (BOM)
    (0xFFA0, 0xFFA0),  # HALFWIDTH HANGUL FILLER
    (0xFFF0, 0xFFF8),  # reserved
    (0x1BCA0, 0x1BCA3),  # SHORTHAND FORMAT LETTER OVERLAP..UP STEP
    (0x1D173, 0x1D17A),  # MUSICAL SYMBOL BEGIN BEAM..END PHRASE
    (0xE0000, 0xE0FFF),  # tags, VARIATION SELECTOR-17..256, reserved
)

# The default-ignorable code points str.isprintable() lets through.
_INVISIBLE = frozenset(
    char
    for first, last in DEFAULT_IGNORABLE_RANGES
    for char in map(chr, range(first, last + 1))
    if char.isprintable()
)


# ZERO WIDTH NON-JOINER and ZERO WIDTH JOINER: default-ignorable and format (Cf), yet
# part of how words are spelt (Persian "nameh\u200cha", Sinhala "ශ්\u200dරී"), and
# IDNA2008 allows them in a label where RFC 5892 appendix A.1/A.2 (CONTEXTJ) says they
# belong (after a virama, or between letters that would otherwise join), and refuses
# them elsewhere. UTS46 keeps them (nontransitional processing, UTS #46 section 4):
# in a name, they are IDNA's to judge, not ours. Shown escaped all the same.
JOINERS = "\u200c\u200d"
_WITHOUT_JOINERS = str.maketrans("", "", JOINERS)


def _invisible(char: str) -> bool:
    # Not printable covers Cc (CR/LF forge log lines, ESC drives terminals), Cf
    # (bidi overrides reorder what the admin reads), Cs (lone surrogates cannot
    # even be encoded), Co/Cn (private and unassigned), Zl/Zp and odd spaces; the
    # printable default-ignorables show as nothing, hiding what the admin reads.
    return not char.isprintable() or char in _INVISIBLE


def _unsafe(char: str) -> bool:
    return char in _ESCAPED_PRINTABLE or _invisible(char)


def escape(text: str) -> str:
    """Escape control, format, surrogate and default-ignorable (invisible) characters
    (and backslash and braces): as ``\\xNN`` below U+0100 (and for a byte that was not
    UTF-8), ``\\uNNNN`` below U+10000, ``\\UNNNNNNNN`` above; printable characters
    (an emoji, ``ü``) are kept."""
    plain = "\\" not in text and "{" not in text and "}" not in text  # _ESCAPED_PRINTABLE
    if plain and text.isascii() and text.isprintable():
        return text  # the common case, kept cheap
    return "".join(_escape_char(c) if _unsafe(c) else c for c in text)


def escape_unprintable(text: str) -> str:
    """:func:`escape` of unprintable and invisible characters alone (not the backslash,
    nor braces), for messages that quote values with ``repr`` (which escapes
    backslashes already) beside raw ones (a key, a file name), shown on a terminal or
    in a log line."""
    if text.isprintable() and _INVISIBLE.isdisjoint(text):
        return text
    return "".join(_escape_char(c) if _invisible(c) else c for c in text)


# How long an escape is, by the letter after its backslash ("" = cut right after it).
_ESCAPE_LENGTH = {"x": 4, "u": 6, "U": 10, "": 10}


def escape_option(text: str) -> str:
    """:func:`escape`, and the semicolon too: rspamd's per-message log line separates a
    symbol's options with it (SYMBOL(score){option;option;}), where a HELO of
    "x;helo=mx.bank.example resolves to 192.0.2.1" read as an option of our own."""
    safe = escape(text)
    return safe.replace(";", "\\x3b") if ";" in safe else safe


def option(text: str, limit: int = OPTION_MAX_CHARS) -> str:
    """An escaped, length-capped evidence string for a symbol's options."""
    # Only what can be shown is escaped: a character never escapes to less than one,
    # so the first ``limit + 1`` say whether the text is cut and give all it keeps.
    # Escaping the whole of a hostile 1,024-character HELO to show 160 of it cost
    # ~0.5 ms of the event loop a check.
    safe = escape_option(text[: limit + 1])
    if len(safe) <= limit:
        return safe
    return _head(safe, limit - 3) + "..."


def quoted(safe: str) -> str:
    """``safe`` (already escaped: no control characters, every backslash an escape's) in
    double quotes, its own double quotes as ``\\x22``: a log line's reader knows where a
    value that came from a request ends, whatever it says ("; the latest from ...")."""
    return '"' + safe.replace('"', "\\x22") + '"'


#: The shortest part of a name ``option_naming`` keeps: less says nothing of which it was.
MIN_NAME_SHOWN = 24


def option_naming(name: str, said: str, limit: int = OPTION_MAX_CHARS) -> str:
    """``name + said`` as an option, a name too long for both shortened in its middle:
    what is said of it (``-> 10.1.1.1``, ``: only non-public addresses ...``) is why
    the symbol fired, and cutting the end of the option lost it behind a 190-character
    name. ``said`` too long to leave room for a name is cut as ``option`` cuts."""
    safe_name, safe_said = escape_option(name), escape_option(said)
    if len(safe_name) + len(safe_said) <= limit:
        return safe_name + safe_said
    room = limit - len(safe_said) - 3
    if room < MIN_NAME_SHOWN:
        return option(name + said, limit)
    tail = room // 2
    return _head(safe_name, room - tail) + "..." + _tail(safe_name, tail) + safe_said


def _head(safe: str, length: int) -> str:
    """The first ``length`` characters of escaped ``safe``, or fewer: an escape is never
    cut in two (every backslash in ``safe`` starts one)."""
    cut = safe[:length]
    start = cut.rfind("\\", max(0, len(cut) - 9))
    if start != -1 and start + _ESCAPE_LENGTH[cut[start + 1 : start + 2]] > len(cut):
        cut = cut[:start]
    return cut


def _tail(safe: str, length: int) -> str:
    """The last ``length`` characters of escaped ``safe``, or fewer, as ``_head``."""
    begin = len(safe) - length
    start = safe.rfind("\\", max(0, begin - 9), begin)
    if start != -1:
        begin = max(begin, start + _ESCAPE_LENGTH[safe[start + 1 : start + 2]])
    return safe[begin:]


def has_unsafe(text: str, *, name: bool = False) -> bool:
    """Characters no hostname or address may carry (the backslash is judged elsewhere):
    unprintable ones; in a ``name`` (a domain name, which IDNA's UTS46 mapping is to
    read), the default-ignorable ones too, which that mapping erases: a name with one
    would be judged as another name, as "good\\u034fsender.net" was as goodsender.net.
    (A local part is no name: an emoji's variation selector there changes no domain.)
    The ``JOINERS`` in a name are left to IDNA, which allows them only in context."""
    if text.isascii() or not name:
        return not text.isprintable()  # ASCII: the common case, kept cheap
    text = text.translate(_WITHOUT_JOINERS)
    return not text.isprintable() or not _INVISIBLE.isdisjoint(text)


def unsafe_reason(text: str, *, name: bool = False) -> str:
    """What makes ``text`` fail ``has_unsafe`` (with the same ``name``), in an admin's
    words: a byte that is not UTF-8 (kept by surrogateescape, shown as ``\\xNN``) is a
    broken encoding, not a control character; a variation selector or a Hangul filler
    is a mark or letter that shows as nothing, not a control or format character."""
    if any(0xDC80 <= ord(char) <= 0xDCFF for char in text):
        return "bytes that are not UTF-8"
    if name:
        text = text.translate(_WITHOUT_JOINERS)  # IDNA's to judge in a name
        if text.isprintable():
            return "invisible (default-ignorable) characters"
    found = {unicodedata.category(char) for char in text if not char.isprintable()}
    return ", ".join(words for category, words in _UNPRINTABLE if category in found)


# What str.isprintable() refuses, by Unicode general category (TR44, 5.7.1), in an
# admin's words: a no-break space or U+2028 is no control character, and the evidence
# sends the admin looking for what is there.
_UNPRINTABLE = (
    ("Cc", "control characters"),
    ("Cf", "format characters"),
    ("Zs", "non-ASCII spaces"),
    ("Zl", "line separators"),
    ("Zp", "paragraph separators"),
    ("Co", "private-use characters"),
    ("Cn", "unassigned code points"),
    ("Cs", "lone surrogates"),
)
