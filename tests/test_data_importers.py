"""Benchmark importers (ChartQA, ChartGemma, CharXiv -> dataset folder) and the ``charts`` eval task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from thinkimg.data.dataset import QARecord, load_split, read_split, write_jsonl
from thinkimg.data.importers import IMPORTERS, BenchmarkImportError, import_benchmark
from thinkimg.eval.tasks import TaskError, load_task


def _image(path: Path, seed: int, size=(48, 32)) -> Path:
    """A small noisy RGB image (PNG or JPEG by suffix), different for each seed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"))


def _write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _untouched(out: Path) -> bool:
    """``out`` was not created and no staging folder was left beside it."""
    return not out.exists() and not list(out.parent.glob(f".{out.name}.import-*"))


def _check_dataset(out: Path, sources: dict[str, Path]) -> list[dict]:
    """The eval split reads back (records and ``datasets``) and each image has its source's pixels."""
    records = read_split(out, "eval")
    assert [r["id"] for r in records] == list(sources)
    ds = load_split(out, "eval")
    for row, src in zip(ds, sources.values()):
        with Image.open(src) as img:
            assert np.array_equal(_pixels(row["image"]), _pixels(img))
    return records


@pytest.fixture
def chartqa(tmp_path) -> Path:
    folder = tmp_path / "ChartQA" / "test"
    _image(folder / "png" / "a.png", 1)
    _image(folder / "png" / "b.png", 2, size=(30, 50))
    _write_json(folder / "test_human.json", [{"imgname": "a.png", "query": "Max?", "label": "41"},
                                             {"imgname": "b.png", "query": "Which?", "label": "Yes"}])
    _write_json(folder / "test_augmented.json", [{"imgname": "b.png", "query": "Min?", "label": "3"}])
    return folder


def test_chartqa_import(chartqa, tmp_path):
    out = tmp_path / "out"
    card = import_benchmark("chartqa", chartqa, out, loader_args={"images": str(chartqa / "png")})
    png = chartqa / "png"
    records = _check_dataset(out, {"chartqa/human/0": png / "a.png", "chartqa/human/1": png / "b.png"})
    assert [(r["question"], r["answer"], r["question_type"]) for r in records] == [("Max?", "41", "human"),
                                                                                 ("Which?", "Yes", "human")]
    assert records[0] == {**records[0], "image": "images/chartqa/human_0.png", "chart_kind": "",
                          "source": "chartqa:test", "tools": []}
    assert card["counts"] == {"eval": {"records": 2, "charts": 2, "question_types": {"human": 2}}}
    assert json.loads((out / "card.json").read_text()) == card
    assert "thinkimg data import chartqa" in card["command"] and "images=" in card["command"]
    assert "| human | 2 |" in (out / "README.md").read_text()


def test_chartqa_import_as_rl_shares_identical_images(chartqa, tmp_path):
    out = tmp_path / "out"
    card = import_benchmark("chartqa", chartqa, out, split="rl", loader_args={"split": "human+augmented"})
    records = read_split(out, "rl")
    assert [r["id"] for r in records] == ["chartqa/human/0", "chartqa/human/1", "chartqa/augmented/0"]
    assert records[1]["image"] == records[2]["image"] and records[1]["chart_id"] == records[2]["chart_id"]
    assert sorted(p.name for p in (out / "images" / "chartqa").iterdir()) == ["human_0.png", "human_1.png"]
    assert card["counts"]["rl"]["question_types"] == {"augmented": 1, "human": 2}
    assert not (out / "eval.jsonl").exists()


def test_chartgemma_import_strips_answer_tags(tmp_path):
    src = tmp_path / "cg"
    _image(src / "imgs" / "c1.jpg", 3)
    _image(src / "imgs" / "c2.png", 4)
    lines = [{"image_path": "imgs/c1.jpg", "question": "What is X?", "label": "<answer> 12.5 </answer>"},
             {"image_path": "imgs/c2.png", "question": "And Y?", "label": "7", "id": "y/1"},
             {"image_path": "imgs/c2.png", "question": "Type?", "label": "<answer>bar</answer>", "type": "kind"}]
    (src / "test.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    out = tmp_path / "out"
    card = import_benchmark("chartgemma", src / "test.jsonl", out)
    records = _check_dataset(out, {"chartgemma/0": src / "imgs" / "c1.jpg", "chartgemma/y/1": src / "imgs" / "c2.png",
                                   "chartgemma/2": src / "imgs" / "c2.png"})
    assert [r["answer"] for r in records] == ["12.5", "7", "bar"]
    assert [r["question_type"] for r in records] == ["chartgemma", "chartgemma", "kind"]
    assert records[1]["image"] == "images/chartgemma/y_1.png" and records[0]["source"] == "chartgemma:test.jsonl"
    assert card["counts"]["eval"]["charts"] == 2


def test_charxiv_import(tmp_path):
    src = tmp_path / "charxiv"
    _image(src / "images" / "3.jpg", 5)
    _image(src / "figs" / "f.png", 6)
    data = {"0": {"figure_id": 3, "raw_question": "How many lines?", "query": "How many lines? Answer...",
                  "answer": "4", "inst_category": 3},
            "1": {"figure_path": "figs/f.png", "question": "Which color?", "answer": "red"}}
    out = tmp_path / "out"
    card = import_benchmark("charxiv", _write_json(src / "reasoning_val.json", data), out)
    records = _check_dataset(out, {"charxiv/0": src / "images" / "3.jpg", "charxiv/1": src / "figs" / "f.png"})
    assert records[0]["question"].startswith("How many lines? Answer") and records[1]["answer"] == "red"
    assert card["counts"]["eval"]["question_types"] == {"number_in_chart": 1, "reasoning": 1}


def test_imported_dataset_is_a_charts_task(chartqa, tmp_path):
    import_benchmark("chartqa", chartqa, tmp_path / "out")
    task = load_task("charts", path=str(tmp_path / "out"))
    assert task.ids() == ["chartqa/human/0", "chartqa/human/1"]
    with Image.open(chartqa / "png" / "b.png") as img:
        assert np.array_equal(_pixels(list(task)[1]["image"]), _pixels(img))


def test_broken_benchmarks_are_rejected_before_writing(chartqa, tmp_path):
    out = tmp_path / "out"
    human = chartqa / "test_human.json"
    _write_json(human, [{"imgname": "a.png", "query": "q", "label": "1"}, {"imgname": "a.png", "label": "1"}])
    with pytest.raises(BenchmarkImportError, match=r"test_human\.json: record 1: missing field 'query'"):
        import_benchmark("chartqa", chartqa, out)
    assert _untouched(out)
    _write_json(human, [{"imgname": "a.png", "query": "q", "label": "1"}, {"imgname": "gone.png", "query": "q",
                                                                         "label": "1"}])
    with pytest.raises(BenchmarkImportError, match=r"test_human\.json: record 1: image file not found: .*gone\.png"):
        import_benchmark("chartqa", chartqa, out)
    assert _untouched(out)

    _image(tmp_path / "cg" / "c.png", 7)
    jsonl = tmp_path / "cg" / "cg.jsonl"
    jsonl.write_text(json.dumps({"image_path": "c.png", "question": "q", "label": "1"}) + "\n{broken\n")
    with pytest.raises(BenchmarkImportError, match=r"cg\.jsonl: record 1 \(line 2\) is not valid JSON"):
        import_benchmark("chartgemma", jsonl, out)
    assert _untouched(out)

    wrong = _write_json(tmp_path / "charxiv" / "reasoning_val.json", "not records")
    with pytest.raises(BenchmarkImportError, match=r"reasoning_val\.json: expected a JSON object or list"):
        import_benchmark("charxiv", wrong, out)
    assert _untouched(out)


def test_an_image_that_fails_to_decode_leaves_out_as_it_was(tmp_path):
    src = tmp_path / "cg"
    _image(src / "ok.png", 8)
    whole = _image(src / "cut.png", 9, size=(200, 200)).read_bytes()
    (src / "cut.png").write_bytes(whole[: len(whole) // 2])  # header readable, pixel data truncated
    data = [{"image_path": "ok.png", "question": "q", "label": "1"},
            {"image_path": "cut.png", "question": "q", "label": "2"}]
    path = _write_json(src / "cg.json", data)
    with pytest.raises(BenchmarkImportError, match=r"cg\.json: record 1: .*cut\.png"):
        import_benchmark("chartgemma", path, tmp_path / "out")
    assert _untouched(tmp_path / "out")
    out = tmp_path / "existing"
    import_benchmark("chartgemma", _write_json(src / "one.json", data[:1]), out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(BenchmarkImportError, match=r"record 1: .*cut\.png"):
        import_benchmark("chartgemma", path, out, force=True)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".existing.import-*"))


def test_non_empty_out_needs_force_and_bad_arguments(chartqa, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(BenchmarkImportError, match=r"out: output folder is not empty \(pass force=True"):
        import_benchmark("chartqa", chartqa, out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    (out / "images" / "chartqa").mkdir(parents=True)
    (out / "images" / "chartqa" / "stale.png").write_bytes(b"old")
    import_benchmark("chartqa", chartqa, out, force=True)
    assert (out / "keep.txt").read_text() == "mine" and len(read_split(out, "eval")) == 2
    assert sorted(p.name for p in (out / "images" / "chartqa").iterdir()) == ["human_0.png", "human_1.png"]

    with pytest.raises(BenchmarkImportError, match="unknown benchmark format 'vqa'; known formats: "
                                                   + ", ".join(IMPORTERS)):
        import_benchmark("vqa", chartqa, tmp_path / "o2")
    with pytest.raises(BenchmarkImportError, match="split must be one of eval, rl, got 'sft'"):
        import_benchmark("chartqa", chartqa, tmp_path / "o2", split="sft")
    with pytest.raises(BenchmarkImportError, match="unknown argument.*bogus"):
        import_benchmark("chartqa", chartqa, tmp_path / "o2", loader_args={"bogus": "1"})
    assert _untouched(tmp_path / "o2")


# ---------------------------------------------------------------------------------------------------- charts task


@pytest.fixture
def dataset(tmp_path) -> Path:
    root = tmp_path / "charts"
    records = []
    for i in range(3):
        image = f"images/eval-00000/eval-00000-{i:02d}.png"
        _image(root / image, 20 + i)
        records.append(QARecord(id=f"eval-00000-{i:02d}-q0", image=image, question=f"Value of bar {i}?",
                                answer=str(10 * i), question_type="value_lookup" if i else "max", chart_kind="bar",
                                chart_id=f"eval-00000-{i:02d}", source="synthetic", tools=["zoom_in"]))
    write_jsonl(root / "eval.jsonl", records)
    return root


def test_charts_task_reads_a_dataset_folder(dataset):
    task = load_task("charts", path=str(dataset), split="eval")
    rows = list(task)
    assert task.metric == "relaxed_accuracy" and task.ids() == [f"eval-00000-{i:02d}-q0" for i in range(3)]
    assert [(r["question"], r["answer"], r["question_type"]) for r in rows][:2] == [
        ("Value of bar 0?", "0", "max"), ("Value of bar 1?", "10", "value_lookup")]
    with Image.open(dataset / "images" / "eval-00000" / "eval-00000-02.png") as img:
        assert np.array_equal(_pixels(rows[2]["image"]), _pixels(img))
    assert load_task("charts", path=str(dataset), n="1").ids() == ["eval-00000-00-q0"]


def test_charts_task_errors_name_the_file_and_record(dataset, tmp_path):
    with pytest.raises(TaskError, match=r"dataset folder .*nowhere not found \(it is made by `thinkimg data curate`"):
        load_task("charts", path=str(tmp_path / "nowhere"))
    with pytest.raises(TaskError, match=r"rl\.jsonl: not found"):
        load_task("charts", path=str(dataset), split="rl")
    with pytest.raises(TaskError, match="split must be 'eval' or 'rl', got 'sft'"):
        load_task("charts", path=str(dataset), split="sft")
    lines = (dataset / "eval.jsonl").read_text().splitlines()
    (dataset / "eval.jsonl").write_text("\n".join([lines[0], "{broken", lines[2]]) + "\n")
    with pytest.raises(TaskError, match=r"eval\.jsonl: record 1 \(line 2\) is not valid JSON"):
        load_task("charts", path=str(dataset))
    second = {k: v for k, v in json.loads(lines[1]).items() if k != "answer"}
    (dataset / "eval.jsonl").write_text("\n".join([lines[0], json.dumps(second)]) + "\n")
    with pytest.raises(TaskError, match=r"eval\.jsonl: record 1: missing field 'answer'"):
        load_task("charts", path=str(dataset))
    (dataset / "images" / "eval-00000" / "eval-00000-00.png").unlink()
    with pytest.raises(TaskError, match=r"eval\.jsonl: record 0: image file not found: .*eval-00000-00\.png"):
        load_task("charts", path=str(dataset))
