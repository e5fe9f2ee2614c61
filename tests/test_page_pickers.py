"""Pickers offer only choices that change something (issue 14, items 2 and 4): the charsets offered for a
model each allow some of its classes but not all of them, so the digit model gets no "Characters"
picker; and changing model on an empty pad keeps the pad's hint instead of a bold "nothing to read".
Each mode offers the models that can serve it (issue 13): one character, the character models; numbers,
words and photos, the line model by default and the old segmenter (character models) for comparison.
"""

import pytest

from scrawl.labels import ALNUM, BYMERGE_CLASSES, DIGITS, LINE_ALPHABET, LOWER, UPPER, charset_indices, charsets_for
from test_browser import browser, page, server  # noqa: F401 (pytest fixtures)


@pytest.mark.parametrize("classes, offered", [
    (DIGITS, []),  # digits and alnum both allow every class: the same as no restriction
    (ALNUM, ["digits", "upper", "lower", "letters"]),  # alnum allows all 62
    (BYMERGE_CLASSES, ["digits", "upper", "lower", "letters"]),
    (DIGITS + UPPER, ["digits", "upper"]),  # letters would allow the same classes as upper
    (DIGITS + ".,-", ["digits"]),  # number allows all of these: no restriction
    # A line model: number (digits and marks) differs from digits; the service leaves out alnum, which
    # keeps every mark and the space, so allows all (scrawl.web.service._charsets).
    (LINE_ALPHABET, ["digits", "number", "upper", "lower", "letters", "alnum"]),
    (LOWER, []),
    ("", []),
])
def test_charsets_for_offers_only_sets_that_change_the_answer(classes, offered):
    assert charsets_for(list(classes)) == offered
    for name in offered:  # each offered set allows some classes, but not all
        allowed = charset_indices(list(classes), name)
        assert 0 < len(allowed) < len(classes)
    assert charset_indices(list(DIGITS), "digits") is not None  # still accepted in a request


def _loaded(page):
    page.locator("#model-info").filter(has_text="model:").wait_for()


def _after_timers(page):
    """Let the page's pending zero-delay timers run (a later timer fires after them)."""
    page.evaluate("new Promise(resolve => setTimeout(resolve, 50))")


def test_characters_picker_only_when_it_changes_something(page):
    _loaded(page)
    page.select_option("#model", "digits")
    assert not page.locator("#charset-picker").is_visible()  # digits / alnum / all: the same set
    page.select_option("#model", "chars")
    assert page.locator("#charset-picker").is_visible()
    values = page.eval_on_selector_all("#charset option", "options => options.map(o => o.value)")
    assert values == ["", "digits", "upper", "lower", "letters"]  # "" is all; no alnum (= all)
    page.select_option("#model", "digits-lite")
    assert not page.locator("#charset-picker").is_visible()


def _options(page) -> list[str]:
    return page.eval_on_selector_all("#model option", "options => options.map(o => o.value)")


def test_each_mode_offers_the_models_that_can_serve_it(page):
    _loaded(page)
    single = _options(page)
    assert single[0] == "digits" and "line" not in single  # a line model reads no single character
    assert not page.locator("#lexicon-picker").is_visible()
    for mode in ("multi", "photo"):
        page.click(f"#mode-{mode}")
        options = _options(page)
        assert options == ["line", *single] and page.input_value("#model") == "line", (mode, options)
        groups = page.eval_on_selector_all("#model optgroup", "gs => gs.map(g => [g.label, g.children.length])")
        assert groups == [["Old segmenter, for comparison", len(single)]]
        assert page.locator("#lexicon-picker").is_visible() and page.is_checked("#lexicon")
        assert "Words and numbers" in page.inner_text("#model-info")
    page.select_option("#model", "chars")  # the segmenter: no word prior to offer
    assert not page.locator("#lexicon-picker").is_visible()
    page.click("#mode-single")  # each kind of mode keeps its own choice
    assert page.input_value("#model") == "digits"
    page.click("#mode-multi")
    assert page.input_value("#model") == "chars"


@pytest.mark.parametrize("mode, hint", [("single", "Draw a character on the pad."),
                                        ("multi", "Write a number or a word on the pad.")])
def test_changing_model_on_an_empty_pad_keeps_the_hint(page, mode, hint):
    _loaded(page)
    page.click(f"#mode-{mode}")
    for name in ("chars", "digits-lite", "digits", *(["line"] if mode == "multi" else [])):
        page.select_option("#model", name)
        _after_timers(page)
        assert page.inner_text("#status") == hint
        assert page.get_attribute("#status", "class") == "status"  # not the bold "empty" answer
    page.select_option("#model", "chars")
    page.select_option("#charset", "upper")
    _after_timers(page)
    assert page.inner_text("#status") == hint
