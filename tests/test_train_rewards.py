"""GRPO rewards on hand-made rollouts (the message lists TRL records for a multi-turn rollout)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from thinkimg.train.rewards import closeness, correctness, final_answer, format_score, reward_funcs, tool_use

CALL = {"role": "assistant", "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "OCR", "arguments": {"image": "img_0"}}}]}
TOOL = {"role": "tool", "name": "OCR", "content": '"South" [10, 20, 40, 30]\n"27" [12, 5, 30, 15]'}


def answer(text: str) -> dict:
    return {"role": "assistant", "content": text}


GOOD = [CALL, TOOL, answer("<answer>27</answer>")]


@pytest.mark.parametrize("completion, gold, expected", [
    (GOOD, "27", 1.0),
    ([CALL, TOOL, answer("<answer>27.9</answer>")], "27", 1.0),      # within 5 % (relaxed accuracy)
    ([CALL, TOOL, answer("<answer>29</answer>")], "27", 0.0),        # 7.4 % off
    ([CALL, TOOL, answer("<answer>south</answer>")], "South", 1.0),  # case-insensitive text
    ([CALL, TOOL], "27", 0.0),                                       # cut off after the tool result: no answer
    ([CALL, TOOL, answer("27")], "27", 0.0),                         # no answer tags
    ([answer("<answer>27</answer>")], "27", 1.0),                    # right without a tool: correctness only
    ("<answer>27</answer>", "27", 1.0),                              # plain-text completion
])
def test_correctness_uses_the_eval_metric(completion, gold, expected):
    assert correctness(completion, gold) == expected


def test_exact_match_metric_is_stricter():
    assert correctness([answer("<answer>27.9</answer>")], "27", metric="exact_match") == 0.0


@pytest.mark.parametrize("answer_text, gold, low, high", [
    ("South", "south", 1.0, 1.0),                    # right (the eval metric): full credit
    ("Very dissatis", "Very dissatisfied", 0.85, 0.9),  # a copy cut short
    ("Francegal", "France", 0.75, 0.85),               # a copy run on into the next label
    ("Portugal", "France", 0.0, 0.3),                  # the other label
    ("29", "27", 0.0, 0.0),                            # a wrong number earns nothing, however close its digits
    ("South", "27", 0.0, 0.0),
])
def test_closeness_gives_partial_credit_for_a_near_copy_of_a_text_answer(answer_text, gold, low, high):
    assert low <= closeness([CALL, TOOL, answer(f"<answer>{answer_text}</answer>")], gold) <= high


def test_closeness_is_zero_without_an_answer_and_ranks_copies_by_how_near_they_are():
    assert closeness([CALL, TOOL], "France") == 0.0
    gold = "Satisfaction with healthcare services by age group"
    scores = [closeness([answer(f"<answer>{text}</answer>")], gold) for text in
              (gold, "Satisfaction with healthare services by age group", "Satisfaction with", "Net migration")]
    assert scores == sorted(scores, reverse=True) and scores[0] == 1.0 and len(set(scores)) == 4


@pytest.mark.parametrize("completion, expected", [
    (GOOD, 1.0),
    ([answer("<answer>27</answer>")], 1.0),
    ([CALL, TOOL, answer("I think <answer>27</answer>")], 0.0),                 # text around the answer
    ([CALL, TOOL, answer("<answer>27</answer><answer>28</answer>")], 0.0),      # two answers
    ([{**CALL, "content": "let me look"}, TOOL, answer("<answer>27</answer>")], 0.0),  # chatter in a call turn
    ([answer('<tool_call>\n{"name": "OCR", "arguments": \n</tool_call>'), ], 0.0),  # unparsed (broken JSON) call
    ([CALL, TOOL], 0.0),                                                         # never answered
    ([answer("<answer>27")], 0.0),                                               # unclosed tag
])
def test_format_score(completion, expected):
    assert format_score(completion) == expected


def test_final_answer_ignores_a_last_turn_that_also_calls():
    assert final_answer([{**CALL, "content": "<answer>27</answer>"}]) is None
    assert final_answer(GOOD) == "27"


def test_tool_use_is_the_share_of_successful_calls():
    ok, bad = SimpleNamespace(ok=True), SimpleNamespace(ok=False)
    assert tool_use([]) == 0.0
    assert tool_use([ok]) == 1.0
    assert tool_use([ok, bad]) == 0.5
    assert tool_use([bad]) == 0.0


def test_reward_funcs_follow_the_weights_and_read_the_rows():
    funcs, weights = reward_funcs({"correctness": 1.0, "format": 0.0, "tool_use": 0.25})
    assert [f.__name__ for f in funcs] == ["correctness_reward", "tool_use_reward"] and weights == [1.0, 0.25]
    close, = reward_funcs({"closeness": 0.5})[0]
    assert close(prompts=[None, None], completions=[[answer("<answer>Fran</answer>")], GOOD], answer=["France", "27"]) \
        == [0.8, 1.0]
    envs = [SimpleNamespace(calls=[SimpleNamespace(ok=True)]), SimpleNamespace(calls=[])]
    completions = [GOOD, [answer("<answer>3</answer>")]]
    assert funcs[0](prompts=[None, None], completions=completions, answer=["27", "27"]) == [1.0, 0.0]
    assert funcs[1](prompts=[None, None], completions=completions, environments=envs) == [1.0, 0.0]
    with pytest.raises(ValueError, match="unknown reward"):
        reward_funcs({"speed": 1.0})
    with pytest.raises(ValueError, match="every reward weight is 0"):
        reward_funcs({"correctness": 0.0})
