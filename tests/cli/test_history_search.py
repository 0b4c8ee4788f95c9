"""``r1desk history search`` over a real history database: snippets, the match in bold, the ids."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from r1desk.cli import cli
from r1desk.engine.chat.history import History

BOLD, RESET = "\x1b[1m", "\x1b[0m"


def test_search_prints_ids_and_snippets_with_the_match_in_bold() -> None:
    h = History()
    tales = h.create_conversation(title="Tales")
    asked = h.add_message(tales, "user", "Long ago, in the hills above the old town, the shepherds told of a "
                                         "dragon that slept under the mountain for a hundred years. Dragon!")
    legends = h.create_conversation(title="传说")
    told = h.add_message(legends, "assistant", "很久以前，牧羊人说起一条睡在山下一百年的龙，只有修道院的钟在夜里响起时它才会醒来。")
    h.add_message(tales, "user", "以后呢？")
    h.db.conn.close()
    runner = CliRunner()

    shown = runner.invoke(cli, ["history", "search", "DRAGON"], color=True)
    assert shown.exit_code == 0, shown.output
    header, snippet = shown.stdout.splitlines()
    assert header == f"conversation {tales} · message {asked} · user · Tales · 2 matches"
    assert click.unstyle(snippet).startswith("    …the shepherds told of a dragon that slept")
    assert "[dragon]" not in snippet and f"a {BOLD}dragon{RESET} that" in snippet.replace("\x1b[33m", "")
    assert "1 message found" in shown.stderr

    plain = runner.invoke(cli, ["history", "search", "龙"])  # not a terminal: no styling
    assert plain.stdout.splitlines() == [
        f"conversation {legends} · message {told} · assistant · 传说",
        "    很久以前，牧羊人说起一条睡在山下一百年的龙，只有修道院的钟在夜里响起时它才会醒来。",
    ]

    [hit] = json.loads(runner.invoke(cli, ["history", "search", "龙", "--json"]).stdout)
    assert (hit["id"], hit["conversation_id"], hit["count"]) == (told, legends, 1)
    assert hit["snippet"][slice(*hit["matches"][0])] == "龙"
    assert "2 messages found" in runner.invoke(cli, ["history", "search", "以"]).stderr
