"""Every option of every `scrawl` command says what it does: `scrawl COMMAND --help` has no bare option.

Walks the parser that `scrawl` itself uses (sub-commands and their sub-commands, e.g. `data download`),
so a new option without help text fails here.
"""

import argparse

import pytest

from scrawl.cli import build_parser


def _commands(parser: argparse.ArgumentParser, path=("scrawl",)):
    """(command path, parser) for the parser and every sub-command under it, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, path + (name,))


COMMANDS = dict((" ".join(path), parser) for path, parser in _commands(build_parser()))


def test_every_command_is_walked():
    assert {"scrawl data download", "scrawl train", "scrawl evaluate", "scrawl predict", "scrawl export",
            "scrawl serve"} <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_and_argument_has_help(command):
    parser = COMMANDS[command]
    bare = [action.option_strings[-1] if action.option_strings else action.dest for action in parser._actions
            if not isinstance(action, argparse._SubParsersAction) and action.help != argparse.SUPPRESS
            and not (action.help or "").strip()]
    assert not bare, f"`{command}`: no help text for {', '.join(bare)}"


@pytest.mark.parametrize("command,option", [("scrawl predict", "--top-k"), ("scrawl train", "--batch-size"),
                                            ("scrawl train", "--precision"), ("scrawl evaluate", "--split"),
                                            ("scrawl serve", "--quiet")])
def test_the_options_issue_14_named_say_what_they_do(command, option):
    action = next(a for a in COMMANDS[command]._actions if option in a.option_strings)
    assert len(action.help.split()) >= 4, action.help  # a sentence, not a word
