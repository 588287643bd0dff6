"""Agent runtime: protocol parsing, ChartToolEnv (TRL's environment contract), scripted policy, batched rollout."""

from __future__ import annotations

import inspect

import pytest
from transformers.utils import get_json_schema

from thinkimg.agent.env import TOOL_NAMES, ChartToolEnv
from thinkimg.agent.policies import build_policy
from thinkimg.agent.policies.scripted import ScriptedPolicy
from thinkimg.agent.protocol import (
    format_answer,
    format_call,
    parse_native,
    parse_openthinkimg,
    tool_block,
)
from thinkimg.agent.rollout import rollout, tool_schemas
from thinkimg.config import ToolsConfig
from thinkimg.eval.metrics import relaxed_match
from thinkimg.eval.tasks import load_task
from thinkimg.server.client import HTTPToolClient
from thinkimg.server.launcher import ToolServer
from thinkimg.tools import InProcessToolClient, ToolError

# ---------------------------------------------------------------------------------------------------- protocol


@pytest.mark.parametrize(
    "name, arguments",
    [("OCR", {"image": "img_0"}), ("DrawHorizontalLineByY", {"image": "img_2", "y": 412}),
     ("Point", {"image": "img_0", "description": "the bar for \"Ünïcode\" {x}"}), ("Crop", {"box": [1, 2.5, 30, 40]})],
)
def test_native_call_round_trip(name, arguments):
    turn = parse_native("I should look closer.\n" + format_call(name, arguments))
    assert turn.valid and not turn.is_final
    assert [(c.name, c.arguments) for c in turn.calls] == [(name, arguments)]
    assert turn.thought == "I should look closer."


def test_native_answer_and_several_calls():
    assert parse_native("So it is " + format_answer(" 41 ")).answer == "41"
    assert parse_native(format_answer("41")).is_final
    two = parse_native(format_call("OCR", {}) + "\n" + format_call("Point", {"description": "x"}))
    assert [c.name for c in two.calls] == ["OCR", "Point"]
    assert parse_native('<tool_call>{"name": "OCR", "arguments": "{\\"image\\": \\"img_1\\"}"}</tool_call>').calls[0].arguments == {"image": "img_1"}


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("<tool_call>{not json}</tool_call>", "not valid JSON"),
        ('<tool_call>{"arguments": {}}</tool_call>', "missing the tool 'name'"),
        ('<tool_call>{"name": "OCR", "arguments": [1]}</tool_call>', "must be a JSON object"),
        ('<tool_call>["OCR"]</tool_call>', "expected a JSON object"),
        ('<tool_call>{"name": "OCR"', "not closed"),
        ("<answer>41", "not closed"),
        ("I think it is 41.", "no <tool_call> and no <answer>"),
        ("", "no <tool_call> and no <answer>"),
    ],
)
def test_native_malformed_turns_become_errors_not_exceptions(text, fragment):
    turn = parse_native(text)
    assert not turn.valid and any(fragment in e for e in turn.errors), turn.errors


def test_openthinkimg_turns_convert_percent_to_pixels():
    sizes = {"img_0": (800, 600), "img_1": (400, 200)}
    turn = parse_openthinkimg(
        '{"thought": "draw", "actions": [{"name": "DrawHorizontalLineByY", '
        '"arguments": {"image": "img_1", "param": "x=\\"10\\" y=\\"25\\""}}]}', sizes)
    assert turn.valid and turn.calls[0].arguments == {"image": "img_1", "y": 50.0}
    seg = parse_openthinkimg('{"actions": [{"name": "SAMAroundPoint", "arguments": {"x": 50, "y": 50}}]}', sizes)
    assert seg.calls[0].name == "SegmentRegionAroundPoint" and seg.calls[0].arguments == {"image": "img_0", "x": 400.0, "y": 300.0}
    end = parse_openthinkimg('{"thought": "done", "actions": [{"name": "Terminate", "arguments": {"ans": "41"}}]}', sizes)
    assert end.is_final and end.answer == "41"
    assert "not a percentage" in parse_openthinkimg('{"actions": [{"name": "Point", "arguments": {"x": 150}}]}', sizes).errors[0]
    assert "unknown image" in parse_openthinkimg('{"actions": [{"name": "OCR", "arguments": {"image": "img_9"}}]}', sizes).errors[0]
    assert not parse_openthinkimg("no json here", sizes).valid


def test_tool_block_lists_every_tool_schema():
    env = ChartToolEnv(InProcessToolClient(ToolsConfig(tools=["DrawHorizontalLineByY"])))
    block = tool_block(tool_schemas(env))
    assert block.startswith("# Tools") and block.count('{"type": "function"') == len(TOOL_NAMES)
    assert '"name": "ZoomInSubfigure"' in block


# ---------------------------------------------------------------------------------------------------- env


def test_env_exposes_exactly_the_registry_tools_as_typed_documented_methods():
    public = {n for n, _ in inspect.getmembers(ChartToolEnv, predicate=inspect.isfunction) if not n.startswith("_")}
    assert public == set(TOOL_NAMES) | {"reset"}  # TRL turns every other public method into a tool
    for name in TOOL_NAMES:
        schema = get_json_schema(getattr(ChartToolEnv, name))["function"]
        assert schema["name"] == name and schema["parameters"]["properties"]["image"]["type"] == "string"
    line = get_json_schema(ChartToolEnv.DrawHorizontalLineByY)["function"]["parameters"]
    assert line["required"] == ["y"] and line["properties"]["y"]["type"] == "number"


def test_env_episode_images_get_ids_and_calls_are_logged(bar_chart):
    env = ChartToolEnv(InProcessToolClient(ToolsConfig(tools=["DrawHorizontalLineByY", "Crop"])))
    env.reset(image=bar_chart.image, question="What is the value of 2021?", answer="58", id="q7")
    out = env.DrawHorizontalLineByY(image="img_0", y=40)
    assert out[0]["image"].size == bar_chart.image.size and "img_1" in out[1]["text"]
    crop = env.Crop(image="img_1", box=[0, 30, 100, 50])
    assert "img_2" in crop[1]["text"] and list(env.images) == ["img_0", "img_1", "img_2"]
    with pytest.raises(ToolError, match="unknown image 'img_5'"):
        env.Crop(image="img_5", box=[0, 0, 5, 5])
    assert [c.ok for c in env.calls] == [True, True, False]
    assert env.conversation.meta == {"answer": "58", "id": "q7"}
    env.reset(image=bar_chart.image, question="again")
    assert env.calls == [] and list(env.images) == ["img_0"]


def test_env_reset_needs_an_image():
    with pytest.raises(ValueError, match="no 'image'"):
        ChartToolEnv().reset(question="?")


# ---------------------------------------------------------------------------------------------------- rollout


@pytest.fixture(scope="module")
def value_rows():
    return list(load_task("synthetic_value", n=12, seed=0))


def test_scripted_policy_solves_value_questions_through_the_http_server(tool_server, value_rows):
    client = HTTPToolClient(tool_server.url)
    episodes = list(rollout(build_policy("scripted", script="value_lookup"), value_rows, client=client,
                            max_rounds=3, batch_size=4))
    assert sorted(e.row["id"] for e in episodes) == sorted(r["id"] for r in value_rows)
    correct = [relaxed_match(e.answer or "", e.row["answer"]) for e in episodes]
    assert sum(correct) / len(correct) >= 0.9, [(e.row["answer"], e.answer) for e in episodes]
    assert all(e.valid_format and e.tool_calls == 1 and e.tool_failures == 0 and e.rounds == 2 for e in episodes)
    conv = episodes[0].conversation
    assert [m["role"] for m in conv.messages] == ["user", "assistant", "tool", "assistant"]
    assert conv.messages[1]["content"] == [] and conv.messages[1]["tool_calls"][0]["function"]["name"] == "OCR"


def test_no_tool_ablation_withholds_the_tools(value_rows):
    seen = []

    class Spy(ScriptedPolicy):
        def generate(self, conversations, tools):
            seen.append(len(tools))
            return super().generate(conversations, tools)

    episodes = list(rollout(Spy("value_lookup"), value_rows[:3], client=InProcessToolClient(), use_tools=False,
                            max_rounds=2, batch_size=3))
    assert set(seen) == {0}
    # the expert's OCR call is refused, so it cannot find the value: the ablation scores 0 where tools score >= 0.9
    assert all(e.answer == "unknown" and e.tool_failures == e.tool_calls == 1 for e in episodes)
    assert "tools are not available" in episodes[0].conversation.messages[2]["content"][-1]["text"]


def test_malformed_turns_and_bad_calls_are_observations(bar_chart):
    turns = iter(["no idea", format_call("Nope", {}), format_call("DrawHorizontalLineByY", {"y": 9999}),
                  format_answer("7")])
    policy = ScriptedPolicy(lambda conv: next(turns))
    (episode,) = rollout(policy, [{"image": bar_chart.image, "question": "q", "id": "m"}],
                         client=InProcessToolClient(), max_rounds=5, batch_size=1)
    assert episode.answer == "7" and episode.rounds == 4 and episode.format_errors == 1
    assert episode.tool_calls == 2 and episode.tool_failures == 2 and not episode.valid_format
    texts = [m["content"][-1]["text"] for m in episode.conversation.messages if m["role"] == "tool"]
    assert "no <tool_call> and no <answer>" in texts[0] and "unknown tool 'Nope'" in texts[1]
    assert "[0, 479]" in texts[2]


def test_max_rounds_ends_an_episode_without_answer(bar_chart):
    policy = ScriptedPolicy(lambda conv: format_call("DrawVerticalLineByX", {"image": "img_0", "x": 3}))
    (episode,) = rollout(policy, [{"image": bar_chart.image, "question": "q"}], client=InProcessToolClient(),
                         max_rounds=3)
    assert episode.answer is None and episode.rounds == 3 and episode.tool_calls == 3
    assert list(episode.conversation.images) == ["img_0", "img_1", "img_2", "img_3"]


def test_tool_server_killed_mid_run_ends_with_tool_errors_not_a_hang(value_rows):
    server = ToolServer(ToolsConfig(tools=["OCR"])).start()
    client = HTTPToolClient(server.url, retries=1, backoff_s=0.0, timeout_s=10)
    done = []

    def stop_after_first(episode):
        done.append(episode)
        server.stop()

    episodes = list(rollout(build_policy("scripted"), value_rows[:4], client=client, max_rounds=3, batch_size=1,
                            on_episode=stop_after_first))
    assert len(episodes) == 4 and episodes[0].tool_failures == 0
    for e in episodes[1:]:
        assert e.tool_failures >= 1
        tool_texts = [m["content"][-1]["text"] for m in e.conversation.messages if m["role"] == "tool"]
        assert any("could not be reached" in t for t in tool_texts)
