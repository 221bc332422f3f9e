"""The training job on tiny datasets: checkpoints at Darknet's marks, resume, -clear, Ctrl-C,
the detector path and ``darkconv map``."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("darkconv.train.step", reason="needs the exact training step (issue 13)")

from darkconv.train.data import data_spec  # noqa: E402
from darkconv.train.loop import BatchLog, TrainOptions, train  # noqa: E402
from darkconv.weights.io import read_header  # noqa: E402

CLASSIFIER = """[net]
batch=4
height=8
width=8
channels=3
learning_rate=0.05
momentum=0.9
decay=0.0005
max_batches=3
policy=constant

[convolutional]
filters=2
size=3
stride=1
pad=1
activation=linear

[avgpool]

[softmax]
"""

DETECTOR = """[net]
batch=2
height=32
width=32
channels=3
learning_rate=0.001
momentum=0.9
decay=0.0005
max_batches=2
policy=constant

[convolutional]
batch_normalize=1
filters=4
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=14
size=1
stride=1
pad=1
activation=linear

[yolo]
mask=0,1
anchors=8,8, 16,16
classes=2
num=2
jitter=.2
random=0
"""


def _classifier_set(tmp: Path) -> Path:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(8):
        cls = ("red", "blue")[i % 2]
        img = np.zeros((8, 8, 3), np.uint8)
        img[:, :, 0 if cls == "red" else 2] = rng.integers(150, 255)
        p = tmp / "img" / f"{i}_{cls}.png"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(img).save(p)
        paths.append(str(p))
    (tmp / "train.list").write_text("\n".join(paths) + "\n")
    (tmp / "labels.txt").write_text("red\nblue\n")
    (tmp / "tiny.cfg").write_text(CLASSIFIER)
    data = tmp / "tiny.data"
    data.write_text(f"classes=2\ntrain={tmp}/train.list\nvalid={tmp}/train.list\n"
                    f"labels={tmp}/labels.txt\nbackup={tmp}/backup\n")  # fmt: skip
    return data


def _run(tmp: Path, data: Path, **kw: object) -> tuple[object, list[str]]:
    lines: list[str] = []

    def report(item: object) -> None:
        lines.append(item.line if isinstance(item, BatchLog) else str(item))

    opts = TrainOptions(device="cpu", workers=0, **kw)  # type: ignore[arg-type]
    res = train(str(tmp / "tiny.cfg"), data_spec(str(data), "classifier"), opts, report)
    return res, lines


def test_classifier_marks_resume_clear(tmp_path: Path) -> None:
    data = _classifier_set(tmp_path)
    res, lines = _run(tmp_path, data)
    batch_lines = [line for line in lines if ": " in line and " avg, " in line]
    assert [line.split(",")[0] for line in batch_lines] == ["1", "2", "3"]
    assert batch_lines[0].startswith("1, 0.500: ")  # epoch = seen / N = 4 / 8
    assert batch_lines[2].endswith(" 12 images")  # the classifier prints *net->seen
    backup = tmp_path / "backup"
    # a new epoch at seen 8 (batch 2) -> tiny_1.weights; the end -> tiny.weights
    assert sorted(os.listdir(backup)) == ["tiny.weights", "tiny_1.weights"]
    with open(backup / "tiny_1.weights", "rb") as f:
        assert read_header(f.read(20)).seen == 8
    with open(backup / "tiny.weights", "rb") as f:
        assert read_header(f.read(20)).seen == 12
    assert res.final == str(backup / "tiny.weights") and res.valid  # top-1 line at the end
    # every checkpoint is Darknet's layout byte for byte: read + write gives the same file
    from darkconv.parse.graph import load_network
    from darkconv.weights.io import read_weights, write_weights

    net = load_network(str(tmp_path / "tiny.cfg"))
    for name in ("tiny.weights", "tiny_1.weights"):
        _, state = read_weights(backup / name, net)
        write_weights(tmp_path / "again.weights", state, net)
        assert (tmp_path / "again.weights").read_bytes() == (backup / name).read_bytes()
    # resume: the count continues from seen 12 (batch 3) up to max_batches 5
    res, lines = _run(tmp_path, data, weights=str(backup / "tiny.weights"), max_batches=5)
    assert [line.split(",")[0] for line in lines if " avg, " in line] == ["4", "5"]
    assert res.seen == 20
    # --clear: from 0 again
    res, lines = _run(tmp_path, data, weights=str(backup / "tiny.weights"), clear=True)
    assert [line.split(",")[0] for line in lines if " avg, " in line] == ["1", "2", "3"]


def test_ctrl_c_saves_backup(tmp_path: Path) -> None:
    data = _classifier_set(tmp_path)
    lines: list[str] = []

    def report(item: object) -> None:
        if isinstance(item, BatchLog):
            lines.append(item.line)
            if item.batch_num == 2:
                os.kill(os.getpid(), signal.SIGINT)  # the handler lets this step finish

    opts = TrainOptions(device="cpu", workers=0, max_batches=100)
    res = train(str(tmp_path / "tiny.cfg"), data_spec(str(data), "classifier"), opts, report)
    assert res.interrupted and len(lines) == 2
    with open(tmp_path / "backup" / "tiny.backup", "rb") as f:
        assert read_header(f.read(20)).seen == 8
    assert not (tmp_path / "backup" / "tiny.weights").exists()


def _detector_set(tmp: Path) -> Path:
    rng = np.random.default_rng(1)
    (tmp / "images").mkdir()
    (tmp / "labels").mkdir()
    paths = []
    for i in range(4):
        img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(img).save(tmp / "images" / f"{i}.png")
        (tmp / "labels" / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.4 0.3\n")
        paths.append(str(tmp / "images" / f"{i}.png"))
    (tmp / "list.txt").write_text("\n".join(paths) + "\n")
    (tmp / "names").write_text("a\nb\n")
    (tmp / "tiny.cfg").write_text(DETECTOR)
    data = tmp / "det.data"
    data.write_text(f"classes=2\ntrain={tmp}/list.txt\nvalid={tmp}/list.txt\n"
                    f"names={tmp}/names\nbackup={tmp}/backup\n")  # fmt: skip
    return data


def test_detector_and_map(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from darkconv.cli.main import cli

    data = _detector_set(tmp_path)
    lines: list[str] = []
    spec = data_spec(str(data), "detector", 2)
    pytest.importorskip("matplotlib", reason="--chart needs matplotlib")
    chart = tmp_path / "chart.png"
    opts = TrainOptions(device="cpu", workers=0, map_every=1, chart=str(chart))
    res = train(str(tmp_path / "tiny.cfg"), spec, opts, lambda x: lines.append(str(getattr(x, "line", x))))  # fmt: skip
    assert lines[1].startswith("1: ") and lines[1].endswith(" 2 images")  # i*imgs
    assert any(line.startswith(" mean average precision (mAP@0.50) = ") for line in lines)
    assert res.final == str(tmp_path / "backup" / "tiny_final.weights")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # atomic writes
    out = CliRunner().invoke(
        cli, ["map", str(tmp_path / "tiny.cfg"), res.final, "--data", str(data)]
    )
    assert out.exit_code == 0, out.output
    assert "class_id = 1, name = b, ap = " in out.output
    assert " mean average precision (mAP@0.50) = " in out.output


def test_multiscale_sizes() -> None:
    from darkconv.train.loader import DarknetBatches

    # train_detector: (rand() % 10 + 10) * 32 every 10 batches, 608 in the last 200
    early = list(DarknetBatches(4, 2, 30, (32, 32), 0, random_resize=True, max_batches=10**6))
    sizes = [b[0][1] for b in early]
    assert all(s in range(320, 609, 32) for s in sizes)
    assert len(set(sizes[:10])) == len(set(sizes[10:20])) == 1
    late = list(DarknetBatches(4, 2, 3, (32, 32), 0, random_resize=True, max_batches=3))
    assert {(w, h) for b in late for _, w, h in b} == {(608, 608)}


def test_detector_random_resize_trains(tmp_path: Path) -> None:
    data = _detector_set(tmp_path)
    (tmp_path / "tiny.cfg").write_text(DETECTOR.replace("random=0", "random=1"))
    spec = data_spec(str(data), "detector", 2)
    res = train(
        str(tmp_path / "tiny.cfg"), spec, TrainOptions(device="cpu", workers=0, max_batches=1)
    )
    assert res.final is not None and res.batch_num == 1  # a 608x608 batch through the 32x32 cfg


def test_cli_train_data_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from darkconv.cli.main import main

    data = _classifier_set(tmp_path)
    args = ["train", str(tmp_path / "tiny.cfg"), "--data", str(data), "--workers", "0",
            "--max-batches", "1"]  # fmt: skip

    def run(*extra: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as info:
            main([*args, *extra])
        out = capsys.readouterr()
        return int(info.value.code or 0), out.out, out.err

    code, out, err = run()
    assert code == 0, err
    assert "1, 0.500: " in out and "Saving weights to" in out
    # a missing image: one line naming the list file and line, exit 2, no traceback
    (tmp_path / "train.list").write_text(
        str(tmp_path / "img" / "0_red.png") + "\n/nope/x_red.png\n"
    )
    code, out, err = run()
    assert code == 2
    assert f"error: {tmp_path / 'train.list'}:2: /nope/x_red.png: no such image" in err
    assert "Traceback" not in err
    code, out, err = run("--skip-bad")
    assert code == 0 and "warning: skipped" in err


def test_truncated_or_foreign_backup_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--weights`` given a truncated ``.backup``, or one of another network, is refused with one
    line before anything is trained; the checkpoints already in backup/ are left as they were."""
    from darkconv.cli.main import main

    data = _classifier_set(tmp_path)
    args = ["train", str(tmp_path / "tiny.cfg"), "--data", str(data), "--workers", "0",
            "--max-batches", "1"]  # fmt: skip

    def run(*extra: str) -> tuple[int, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main([*args, *extra])
        return int(info.value.code or 0), capsys.readouterr().err

    code, err = run()
    assert code == 0, err
    backup = tmp_path / "backup"
    before = {p.name: p.read_bytes() for p in backup.iterdir()}
    good = backup / "tiny.backup"
    good.write_bytes(next(iter(before.values())))  # a complete checkpoint of this network
    before[good.name] = good.read_bytes()
    truncated = tmp_path / "truncated.backup"
    truncated.write_bytes(good.read_bytes()[:-7])
    foreign = tmp_path / "foreign.backup"
    foreign.write_bytes((FIXTURES / "nets" / "yolov3-tiny" / "yolov3-tiny.weights").read_bytes())
    for bad in (truncated, foreign):
        code, err = run("--weights", str(bad))
        assert code == 2, err
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and str(bad) in lines[0], err
        assert "Traceback" not in err
        assert {p.name: p.read_bytes() for p in backup.iterdir()} == before
