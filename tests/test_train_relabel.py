"""Label randomisation of trajectories (thinkimg.train.relabel): what is copied is replaced consistently, what the
answer depends on without copying is kept, and nothing else changes."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys

import pytest

from thinkimg.train.relabel import PieceWords, copied_strings, random_label, random_number, relabel


def _conversation(question, calls, outputs, answer):
    messages = [{"role": "user", "content": [{"type": "image", "ref": "img_0"}, {"type": "text", "text": question}]}]
    for (name, args), out in zip(calls, outputs):
        messages.append({"role": "assistant", "content": [],
                         "tool_calls": [{"type": "function", "function": {"name": name, "arguments": args}}]})
        messages.append({"role": "tool", "name": name, "content": [{"type": "text", "text": out}]})
    messages.append({"role": "assistant", "content": [{"type": "text", "text": f"<answer>{answer}</answer>"}]})
    return messages


def _text(messages):
    return json.dumps(messages, ensure_ascii=False)


def test_a_lookup_relabels_the_label_and_the_copied_value_everywhere():
    plan = {"points": {"Cloud services": "the value label of Cloud services"},
            "op": {"name": "lookup", "key": "Cloud services"}}
    messages = _conversation(
        "What is the value of Cloud services?", [("Point", {"image": "img_0",
                                                            "description": "the value label of Cloud services"})],
        ['Point: (120, 40) — "12.5", the value label of the bar for "Cloud services"'], "12.5")
    assert copied_strings(messages, {"plan": plan, "answer": "12.5"}) == ({"Cloud services"}, {"12.5"})
    new = relabel(messages, {"plan": plan, "answer": "12.5"}, random.Random(1))
    text = _text(new)
    assert "Cloud services" not in text and "12.5" not in text
    question = new[0]["content"][1]["text"]
    label = question.removeprefix("What is the value of ").removesuffix("?")
    assert len(label.split()) == 2 and label[0].isupper()
    assert new[1]["tool_calls"][0]["function"]["arguments"] == {"image": "img_0",
                                                                 "description": f"the value label of {label}"}
    value = new[-1]["content"][0]["text"].removeprefix("<answer>").removesuffix("</answer>")
    assert len(value) == 4 and value[2] == "." and value[:2].isdigit()
    assert new[2]["content"][0]["text"] == f'Point: (120, 40) — "{value}", the value label of the bar for "{label}"'
    assert new[0]["content"][0] == {"type": "image", "ref": "img_0"}  # image references untouched
    assert messages[0]["content"][1]["text"] == "What is the value of Cloud services?"  # the input is not changed


def test_a_comparison_keeps_the_values_its_answer_depends_on():
    plan = {"points": {"May": "the value label of May", "June": "the value label of June"}, "op": {"name": "argmax"}}
    messages = _conversation("Which is higher, May or June?",
                             [("Point", {"description": "the value label of May"}),
                              ("Point", {"description": "the value label of June"})],
                             ['Point: (1, 2) — "7", the value label of the bar for "May"',
                              'Point: (3, 4) — "-2", the value label of the bar for "June"'], "May")
    new = relabel(messages, {"plan": plan, "answer": "May"}, random.Random(3))
    text = _text(new)
    assert '— "7"' in new[2]["content"][0]["text"] and '— "-2"' in new[4]["content"][0]["text"]
    assert "May" not in text and "June" not in text
    may = new[2]["content"][0]["text"].split('bar for "')[1].rstrip('"')
    assert new[-1]["content"][0]["text"] == f"<answer>{may}</answer>"  # still the higher one


def test_a_label_inside_a_longer_word_is_left_alone():
    plan = {"points": {"Mar": "the value label of Mar"}, "op": {"name": "lookup", "key": "Mar"}}
    messages = _conversation("What is the value of Mar?", [("Point", {"description": "the value label of Mar"})],
                             ['Point: (1, 2) — "3", the value label of the bar for "Mar" (Market share)'], "3")
    new = relabel(messages, {"plan": plan, "answer": "3"}, random.Random(0))
    assert "(Market share)" in new[2]["content"][0]["text"] and '"Mar"' not in new[2]["content"][0]["text"]


def test_random_strings_keep_the_shape():
    rng = random.Random(0)
    for like in ["-3.25", "1200", "0.5", "7"]:
        out = random_number(rng, like)
        assert out.startswith("-") == like.startswith("-") and len(out) == len(like) and out.count(".") == like.count(".")
        assert len(out.lstrip("-").split(".")[0]) == 1 or not out.lstrip("-").startswith("0")
    label = random_label(rng, "Oct 1855, U.S. (est.)")
    assert re.sub(r"[a-zA-Z]+", "w", label) == "w 1855, w.w. (w.)".replace("1855", label.split()[1][:4])
    assert label.split()[1][:4].isdigit() and label != "Oct 1855, U.S. (est.)"


def test_relabelling_depends_on_the_seed_only_not_on_string_hashing():
    """Sets of labels iterate in a per-process hash order; the replacements must not follow it (a warm start is
    reproducible for its seed)."""
    script = ("import json, random; from thinkimg.train.relabel import relabel_with_mapping; "
              "m = [{'role': 'user', 'content': 'Compare Alpha, Beta, Gamma, Delta and Epsilon'}]; "
              "plan = {'op': {'name': 'compare', 'keys': ['Alpha', 'Beta', 'Gamma', 'Delta', 'Epsilon']}}; "
              "print(json.dumps(relabel_with_mapping(m, {'plan': plan}, random.Random(5))[1], sort_keys=True))")
    outputs = {subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONHASHSEED": seed},
                              capture_output=True, text=True, check=True).stdout for seed in ("1", "2", "3")}
    assert len(outputs) == 1 and len(json.loads(outputs.pop())) == 5


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from thinkimg.train.tiny import build_tokenizer

    return build_tokenizer(0)


def test_piece_words_cost_as_many_tokens_as_the_words_they_replace(tiny_tokenizer):
    """Real label words split into several pieces; made-up ones must too, or the warm start teaches one-token
    copying only (measured: such a model copied 9/22 one-piece made-up labels, 2/22 multi-piece ones)."""
    words = PieceWords(tiny_tokenizer)
    rng = random.Random(0)
    likes = ["Luxembourg", "Satisfaction", "Nepal", "the", "Kazakhstan", "Oct", "Democratic"]
    counts = [len(tiny_tokenizer.tokenize(w)) for w in likes]
    assert max(counts) >= 3 and min(counts) == 1  # the case is real: this tokenizer splits label words
    for like, count in zip(likes, counts):
        for _ in range(5):
            made = words(rng, like)
            assert made != like and made.isalpha()
            assert len(tiny_tokenizer.tokenize(made)) == count, (like, made)
            assert made[0].isupper() == like[0].isupper()
    assert words(random.Random(3), "Luxembourg") == words(random.Random(3), "Luxembourg")


def test_relabel_with_piece_words_keeps_each_labels_token_count(tiny_tokenizer):
    plan = {"points": {"Satisfaction rate": "the value label of Satisfaction rate"},
            "op": {"name": "lookup", "key": "Satisfaction rate"}}
    messages = _conversation(
        "What is the value of Satisfaction rate?",
        [("Point", {"image": "img_0", "description": "the value label of Satisfaction rate"})],
        ['Point: (120, 40) — "31", the value label of the bar for "Satisfaction rate"'], "31")
    new = relabel(messages, {"plan": plan, "answer": "31"}, random.Random(2), PieceWords(tiny_tokenizer))
    question = new[0]["content"][1]["text"]
    made = question.removeprefix("What is the value of ").removesuffix("?")
    assert made != "Satisfaction rate" and "Satisfaction" not in _text(new)
    assert new[1]["tool_calls"][0]["function"]["arguments"]["description"] == f"the value label of {made}"
    assert len(tiny_tokenizer.tokenize(made)) == len(tiny_tokenizer.tokenize("Satisfaction rate"))


def test_a_series_comparison_on_a_line_chart_relabels_series_and_category_not_pixels():
    plan = {"heights": {s: {"category": "May", "series": s, "description": f"the point of {s} at May", "axis": "y",
                            "end": None} for s in ("Oslo", "Tokyo")}, "op": {"name": "argmax"}}
    messages = _conversation("For May, which is higher: Oslo or Tokyo?",
                             [("Point", {"description": "the point of Oslo at May"}),
                              ("Point", {"description": "the point of Tokyo at May"})],
                             ['Point: (179, 158) — the point of the line for "Oslo" at "May"',
                              'Point: (179, 96) — the point of the line for "Tokyo" at "May"'], "Tokyo")
    labels, numbers = copied_strings(messages, {"plan": plan, "answer": "Tokyo"})
    assert labels == {"May", "Oslo", "Tokyo"} and numbers == set()
    text = _text(relabel(messages, {"plan": plan, "answer": "Tokyo"}, random.Random(3)))
    assert not {"May", "Oslo", "Tokyo"} & set(re.findall(r"\w+", text)) and "(179, 96)" in text


def test_series_bar_plans_relabel_the_series_and_category_their_descriptions_name():
    """A grouped chart's printed value: the key is the category, the series is named in ``names``; an unprinted
    one: ``bar_lines`` with its series."""
    plan = {"points": {"2021": "the value label of Garden for 2021"}, "names": ["Garden"],
            "op": {"name": "lookup", "key": "2021"}}
    messages = _conversation("What is the value of Garden for 2021?",
                             [("Point", {"description": "the value label of Garden for 2021"})],
                             ['Point: (400, 90) — "133", the value label of the bar of "Garden" for "2021"'], "133")
    assert copied_strings(messages, {"plan": plan, "answer": "133"}) == ({"2021", "Garden"}, {"133"})
    text = _text(relabel(messages, {"plan": plan, "answer": "133"}, random.Random(5)))
    assert not {"2021", "Garden", "133"} & set(re.findall(r"\w+", text)) and "(400, 90)" in text
    plan = {"bar_lines": [{"key": "2021", "category": "2021", "series": "Garden", "axis": "y", "end": 1,
                           "description": "the bar of Garden for 2021"}], "op": {"name": "lookup", "key": "2021"}}
    labels, _ = copied_strings(messages, {"plan": plan, "answer": "133"})
    assert labels == {"2021", "Garden"}


def test_several_values_in_one_reply_relabel_the_names_asked_for_everywhere():
    plan = {"values": {"keys": ["May", "June"], "description": 'the value labels of "May" and "June"'},
            "op": {"name": "absdiff", "keys": ["May", "June"]}, "calculate": True}
    messages = _conversation("What is the difference between the values of May and June?",
                             [("Point", {"image": "img_0", "description": 'the value labels of "May" and "June"'}),
                              ("Calculate", {"expression": "abs(7 - -2)"})],
                             ['Point: 2 value labels: 7, -2 (for "May", "June")', "abs(7 - -2) = 9"], "9")
    assert copied_strings(messages, {"plan": plan, "answer": "9"}) == ({"May", "June"}, set())
    new = relabel(messages, {"plan": plan, "answer": "9"}, random.Random(5))
    text = _text(new)
    assert "May" not in text and "June" not in text
    may, june = re.fullmatch(r"What is the difference between the values of (.+) and (.+)\?",
                             new[0]["content"][1]["text"]).groups()
    assert new[1]["tool_calls"][0]["function"]["arguments"]["description"] == \
        f'the value labels of "{may}" and "{june}"'
    assert new[2]["content"][0]["text"] == f'Point: 2 value labels: 7, -2 (for "{may}", "{june}")'
    assert new[-1]["content"][0]["text"] == "<answer>9</answer>"
