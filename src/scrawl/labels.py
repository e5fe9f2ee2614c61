"""Labels: the characters Scrawl reads, the named charsets that restrict answers, and the merged-case
rule. Plain Python, no torch: the CLI's --help, the web app and the dataset catalogue import it.

One owner for these facts: dataset class lists (scrawl.data.catalogue), charset masks (runtime),
evaluation's merged-case accuracy and the CLI's choices all come from here.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import ScrawlError

DIGITS = "0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER = UPPER.lower()
ALNUM = DIGITS + UPPER + LOWER  # EMNIST ByClass's 62 classes, in its order

# What a line model reads (issue 13): letters and digits, space and common punctuation.
LINE_ALPHABET = ALNUM + " " + ".,'\"-/:;()!?&+%#@"

# EMNIST ByMerge's merge of case pairs whose glyphs look alike (Cohen et al. 2017, section II-B): these
# lower-case letters count as their capital. The other 11 lower-case letters keep their own class.
MERGED_LOWER_ALIKE = "cijklmopsuvwxyz"
MERGED_CASE = {c: c.upper() for c in MERGED_LOWER_ALIKE}
# ByMerge / Balanced's own class list: digits, capitals, and the lower-case letters not merged.
BYMERGE_CLASSES = DIGITS + UPPER + "".join(c for c in LOWER if c not in MERGED_LOWER_ALIKE)

# The reject class of the digit and character models (issue 15): "this is not a character" (a tap, a
# dash, a scribble, two characters). A model that has it lists it after its characters; answers never
# name it as a character (scrawl.tasks.classify gives the best character and the reject probability).
NOT_A_CHARACTER = "\u2205"  # the empty set sign: one character, like every other class name


def characters_of(classes: Sequence[str]) -> list[str]:
    """The classes that are characters: all but the reject class."""
    return [c for c in classes if c != NOT_A_CHARACTER]


# Named character sets that restrict answers at inference time (by masking logits), so a user who
# knows they wrote a number never gets 'O' for '0' or 'l' for '1'.
# "number": digits and the marks numbers are written with (12/05, 3.50, 1'000, +1 555-0100, 20%, #12);
# only a line model has the marks, so for a character model it is the same as "digits".
NUMBER = DIGITS + " .,'-/:()+%#"
CHARSETS = {"digits": DIGITS, "number": NUMBER, "upper": UPPER, "lower": LOWER, "letters": UPPER + LOWER,
            "alnum": ALNUM}
ALL = "all"  # the charset name that means "no restriction"


def charset_indices(classes: Sequence[str], charset: str | None) -> list[int] | None:
    """Indices of `classes` allowed by a named charset; None means all. Raises ScrawlError for an
    unknown name or a charset the model cannot answer in."""
    if charset is None or charset == ALL:
        return None
    if charset not in CHARSETS:
        raise ScrawlError(f"unknown charset {charset!r}; choose one of: {', '.join(CHARSETS)}")
    allowed = [i for i, c in enumerate(classes) if c in CHARSETS[charset]]
    if not allowed:
        raise ScrawlError(f"this model knows none of the characters in charset {charset!r} "
                          f"(it reads {''.join(characters_of(classes))})")
    # "not a character" stays allowed: a restriction to digits must not turn a scribble into a digit
    return allowed + [i for i, c in enumerate(classes) if c == NOT_A_CHARACTER]


def charsets_for(classes: Sequence[str]) -> list[str]:
    """The named charsets worth offering for a model with these classes: those that change its answers.

    Each allows at least one class and fewer than all of them (a set that allows every class is the same
    as no restriction), and no two allow the same classes (the first name in CHARSETS is kept). A digit
    model gets none; the 62-class model gets digits, upper, lower and letters, not alnum. Any charset
    that allows a class is still accepted by `charset_indices`: this is only what a picker should offer.
    """
    have = set(characters_of(classes))
    offered: dict[frozenset[str], str] = {}
    for name, chars in CHARSETS.items():
        allowed = frozenset(have & set(chars))
        if allowed and allowed != have and allowed not in offered:
            offered[allowed] = name
    return list(offered.values())


def merge_map(classes: Sequence[str]) -> dict[str, str] | None:
    """The ByMerge case merge for a model that has both cases of a look-alike pair, else None."""
    merge = {c: u for c, u in MERGED_CASE.items() if c in classes and u in classes}
    return merge or None
