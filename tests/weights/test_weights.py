"""Darknet .weights <-> state dicts: header, layout, byte-exact round trips, strict errors.

Ground truth is the fixtures: files written by Darknet's own ``save_weights`` and their
manifests (``weights_header``, ``weights_layout``), see fixtures/README.md "Weights file".
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from darkconv.errors import WeightsError
from darkconv.parse.graph import load_network
from darkconv.weights.io import (
    DEFAULT_HEADER,
    Header,
    Slot,
    cutoff_candidates,
    layout,
    read_header,
    read_weights,
    weights_bytes,
    write_weights,
)
from darkconv.weights.statedict import load_state_dict, save_state_dict

FIX = Path(__file__).resolve().parents[2] / "fixtures"
HEADERS = FIX / "headers"
PARTIAL = FIX / "partial" / "darknet53.conv.74"
D53 = FIX / "nets" / "darknet53"


def _cases() -> list[tuple[str, Path, Path, int | None]]:
    out = [
        (p.parent.name, p, p.parent / "case.cfg", None)
        for p in sorted(FIX.glob("layers/*/case.weights"))
    ]
    out += [(p.stem, p, p.with_suffix(".cfg"), None) for p in sorted(FIX.glob("nets/*/*.weights"))]
    out += [(p.stem, p, HEADERS / "headers.cfg", None) for p in sorted(HEADERS.glob("*.weights"))]
    out.append(("partial", PARTIAL, D53 / "darknet53.cfg", 74))
    return out


CASES = _cases()
IDS = [c[0] for c in CASES]


def test_fixture_inventory() -> None:
    # 70 layers/ + 5 nets/ + 3 headers/ + the partial file.
    assert len(CASES) == 79


# ------------------------------------------------------------------------------ header


@pytest.mark.parametrize(
    "name", sorted(json.loads((HEADERS / "manifest.json").read_text())["files"])
)
def test_header_matches_manifest(name: str) -> None:
    info = json.loads((HEADERS / "manifest.json").read_text())["files"][name]
    data = (HEADERS / name).read_bytes()
    h = read_header(data)
    assert vars(h) == info["header"]
    assert h.seen == info["seen_as_read_by_darknet"]
    assert h.to_bytes() == data[: h.header_bytes]
    assert len(data) == info["bytes"]


@pytest.mark.parametrize(
    ("major", "minor", "size", "transpose"),
    [
        (0, 1, 16, False),  # 0*10+1 = 1 < 2
        (0, 2, 20, False),  # what save_weights writes
        (1, 0, 20, False),  # 10 >= 2
        (0, 999, 20, False),
        (0, 1000, 16, False),  # minor < 1000 fails; 1000 is not > 1000
        (0, 1001, 16, True),
        (1001, 0, 16, True),
        (-1, 0, 16, False),  # -10 < 2
    ],
)
def test_header_rule(major: int, minor: int, size: int, transpose: bool) -> None:
    h = Header.make(major, minor, 7, 3)
    assert (h.header_bytes, h.transpose) == (size, transpose)
    assert read_header(h.to_bytes()) == h


def test_header_seen_32bit_wraps_like_darknet() -> None:
    # 5000000000 stored in 32 bits is 5000000000 - 2**32 = 705032704 (manifest's seen_as_read).
    assert Header.make(0, 1, 0, 5_000_000_000).seen == 705_032_704
    # A negative int32 seen is sign-extended into Darknet's size_t, and written back unchanged.
    raw = struct.pack("<iiii", 0, 1, 0, -5)
    h = read_header(raw)
    assert h.seen == 2**64 - 5 and h.to_bytes() == raw and h.to_list()[3] == -5


def test_header_too_short() -> None:
    with pytest.raises(WeightsError, match="too short"):
        read_header(b"\0" * 8)
    with pytest.raises(WeightsError, match="needs 20 bytes"):
        read_header(struct.pack("<iiii", 0, 2, 0, 0))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 2**64 - 1),
)
def test_header_bytes_round_trip(major: int, minor: int, rev: int, seen: int) -> None:
    h = Header.make(major, minor, rev, seen)
    raw = h.to_bytes()
    assert len(raw) == h.header_bytes
    assert read_header(raw) == h and read_header(raw).to_bytes() == raw
    assert Header.make(*h.to_list()) == h  # through the int64 state-dict entry


# ------------------------------------------------------------------------------ layout


def _manifest_layout(path: Path) -> tuple[dict, list[dict]]:
    if path.parent == HEADERS:
        m = json.loads((HEADERS / "manifest.json").read_text())
        return m["files"][path.name]["header"], m["weights_layout_of_v0_2_file"]
    m = json.loads((path.parent / "manifest.json").read_text())
    return m.get("weights_header", m.get("header")), m["weights_layout"]


def _manifest_part(slot: Slot) -> str:
    """The manifest's part name: ``input_layer.biases`` for key ``layers.1.input.fc.bias``."""
    rest = slot.key.split(".")[2:]
    if len(rest) == 3:  # a sublayer of rnn/crnn (input/self/output) or gru/lstm (wz, ui, ...)
        sub = rest[0] + "_layer" if rest[0] in ("input", "self", "output") else rest[0]
        return f"{sub}.{slot.part}"
    return slot.part


@pytest.mark.parametrize(("name", "wpath", "cfg", "cutoff"), CASES, ids=IDS)
def test_layout_matches_manifest(name: str, wpath: Path, cfg: Path, cutoff: int | None) -> None:
    header_info, entries = _manifest_layout(wpath)
    net = load_network(cfg)
    header = read_header(wpath.read_bytes()[:20])
    assert vars(header) == header_info
    slots = layout(net, header, cutoff)
    assert sorted({s.layer for s in slots}) == [e["index"] for e in entries]
    data = wpath.read_bytes()
    _, sd = read_weights(wpath, net, cutoff=cutoff)
    for e in entries:
        mine = [s for s in slots if s.layer == e["index"]]
        assert mine[0].type == e["type"]
        # The manifest's offsets are those of the 0.2 file; a 16-byte header shifts them by 4.
        shift = header.header_bytes - 20 if wpath.parent == HEADERS else 0
        assert header.header_bytes + 4 * mine[0].offset == e["byte_offset"] + shift
        assert [(_manifest_part(s), s.count) for s in mine] == [tuple(p) for p in e["parts"]]
        assert sum(s.count for s in mine) == e["floats"]
        for s in mine:  # every untransposed record is the raw float run at its offset
            if not s.transpose:
                raw = np.frombuffer(data, "<f4", s.count, header.header_bytes + 4 * s.offset)
                assert np.array_equal(sd[s.key].numpy().reshape(-1), raw, equal_nan=True)
    assert os.path.getsize(wpath) == weights_bytes(net, header, cutoff)


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("ext", [".pth", ".safetensors"])
@pytest.mark.parametrize(("name", "wpath", "cfg", "cutoff"), CASES, ids=IDS)
def test_round_trip_byte_identical(
    tmp_path: Path, name: str, wpath: Path, cfg: Path, cutoff: int | None, ext: str
) -> None:
    net = load_network(cfg)
    header, sd = read_weights(wpath, net, cutoff=cutoff, mmap=ext == ".pth")
    assert sd["header"].tolist() == header.to_list()
    out = tmp_path / f"x{ext}"
    save_state_dict(out, sd)
    back = load_state_dict(out)
    assert back.keys() == sd.keys()
    write_weights(tmp_path / "back.weights", back, net, cutoff=cutoff)
    assert (tmp_path / "back.weights").read_bytes() == wpath.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["back.weights", f"x{ext}"]  # no temp files left


def test_transposed_and_32bit_headers_hold_the_same_parameters() -> None:
    # fixtures/headers: the same parameters under three headers (transposed connected matrices
    # in the 0.1001 file); Darknet loads all three to bitwise-identical outputs.
    net = load_network(HEADERS / "headers.cfg")
    ref = read_weights(HEADERS / "headers_v0.2_seen64.weights", net)[1]
    for name in ("headers_v0.1_seen32.weights", "headers_transpose_v0.1001_seen32.weights"):
        sd = read_weights(HEADERS / name, net)[1]
        assert sd.keys() == ref.keys()
        for k in ref:
            if k != "header":
                assert torch.equal(sd[k], ref[k]), (name, k)
    assert read_weights(HEADERS / "headers_transpose_v0.1001_seen32.weights", net)[1][
        "header"
    ].tolist() == [0, 1001, 0, 705_032_704]
    # The transposed file really stores layer 2's (12 x 80) matrix as 80 x 12.
    raw = np.frombuffer(
        (HEADERS / "headers_transpose_v0.1001_seen32.weights").read_bytes(),
        "<f4",
        960,
        512 + 4 * 12,
    )
    assert np.array_equal(raw.reshape(80, 12).T, ref["layers.2.fc.weight"].numpy())


def test_partial_file_is_a_prefix_of_the_full_weights() -> None:
    net = load_network(D53 / "darknet53.cfg")
    full = read_weights(D53 / "darknet53.weights", net)[1]
    part = read_weights(PARTIAL, net, cutoff=74)[1]
    assert {int(k.split(".")[1]) for k in part if k != "header"} == set(
        json.loads((FIX / "partial" / "manifest.json").read_text())["layers_written"]
    )
    for k in part:
        if k != "header":
            assert torch.equal(part[k], full[k])
    # 642604 floats (manifest floats_written) after a 20-byte header.
    assert weights_bytes(net, DEFAULT_HEADER, 74) == 20 + 4 * 642_604 == PARTIAL.stat().st_size
    # Layer 74 is a shortcut and 75 an avgpool (no weights): cutoffs 74, 75, 76 write the same bytes.
    assert [net.layers[i].type for i in (74, 75, 76)] == ["shortcut", "avgpool", "convolutional"]
    assert cutoff_candidates(net, PARTIAL.stat().st_size - 20) == [74, 75, 76]
    with pytest.raises(WeightsError) as err:
        read_weights(PARTIAL, net)
    assert "--cutoff 74" in str(err.value) and "layer 76 (convolutional)" in err.value.message


def _rel(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(y.reshape(ref.shape) - ref)) / max(np.max(np.abs(ref)), 1e-30))


def test_converted_files_reproduce_darknet_outputs(tmp_path: Path) -> None:
    build = pytest.importorskip("darkconv.nn.builder").build
    # The three header variants (incl. transposed connected matrices): layers/ tolerance 1e-5.
    net = load_network(HEADERS / "headers.cfg")
    x = np.load(HEADERS / "input.npy")
    refs = np.load(HEADERS / "expected_outputs.npz")
    for w in sorted(HEADERS.glob("*.weights")):
        out = tmp_path / (w.stem + ".pth")
        save_state_dict(out, read_weights(w, net)[1])
        model = build(net)
        model.load_state_dict(torch.load(out, weights_only=True))  # strict
        outs = model.darknet_outputs(x)
        for key in refs:
            assert _rel(outs[key], refs[key]) < 1e-5, (w.name, key)
    # flipped=1 convolution: the stored (c*size*size) x n matrix is transposed on load.
    case = FIX / "layers" / "conv_flipped"
    net = load_network(case / "case.cfg")
    model = build(net)
    model.load_state_dict(read_weights(case / "case.weights", net)[1])
    ref = np.load(case / "outputs.npz")["layer_000"]
    assert _rel(model.darknet_outputs(np.load(case / "input.npy"))["layer_000"], ref) < 1e-5
    # The partial file loaded into yolov3 sets layers 0..73 (partial/ fixture, nets tolerance).
    net = load_network(FIX / "nets" / "yolov3" / "yolov3.cfg")
    model = build(net)
    missing, unexpected = model.load_state_dict(
        read_weights(PARTIAL, net, cutoff=74)[1], strict=False
    )
    assert not unexpected and all(int(k.split(".")[1]) >= 75 for k in missing)
    outs = model.darknet_outputs(np.load(FIX / "partial" / "input.npy"))
    refs = np.load(FIX / "partial" / "expected_outputs.npz")
    for key in refs:
        assert _rel(outs[key], refs[key]) < 5e-4, key


# ------------------------------------------------------------------------------ writer strictness


def _small() -> tuple[object, dict[str, torch.Tensor], bytes]:
    case = FIX / "layers" / "connected"
    net = load_network(case / "case.cfg")
    return net, read_weights(case / "case.weights", net)[1], (case / "case.weights").read_bytes()


def test_writer_default_header_and_dtypes(tmp_path: Path) -> None:
    net, sd, data = _small()
    sd = {k: (v.double() if k != "header" else v) for k, v in sd.items()}  # float64 in, exact out
    sd["layers.2.bn.num_batches_tracked"] = torch.tensor(0)  # from a torch BatchNorm: ignored
    del sd["header"]  # default: 0.2.0, seen 0 (what save_weights writes)
    assert write_weights(tmp_path / "a.weights", sd, net) == len(data)
    assert (tmp_path / "a.weights").read_bytes() == data  # the fixture's header is 0.2.0 seen 0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda sd: sd.pop("layers.3.fc.bias"), "missing 1 entries.*layers.3.fc.bias"),
        (lambda sd: sd.update({"layers.9.conv.weight": torch.zeros(1)}), "does not have"),
        (
            lambda sd: sd.update({"layers.1.fc.weight": torch.zeros(12, 81)}),
            r"shape \(12, 81\).*\(12, 120\)",
        ),
        (
            lambda sd: sd.update({"layers.1.fc.bias": torch.zeros(12, dtype=torch.int32)}),
            "not floating",
        ),
        (lambda sd: sd.update({"header": torch.tensor([0, 2, 0])}), "4 integers"),
        (lambda sd: sd.update({"header": torch.tensor([2**40, 2, 0, 0])}), "32-bit"),
    ],
)
def test_writer_is_strict(tmp_path: Path, change, match: str) -> None:
    net, sd, _ = _small()  # layer 1: 12 outputs x 120 inputs (manifest: 1440 weights)
    change(sd)
    out = tmp_path / "a.weights"
    out.write_bytes(b"keep")
    with pytest.raises(WeightsError, match=match):
        write_weights(out, sd, net)
    assert out.read_bytes() == b"keep" and os.listdir(tmp_path) == ["a.weights"]


def test_writer_partial_hint(tmp_path: Path) -> None:
    net = load_network(D53 / "darknet53.cfg")
    sd = read_weights(PARTIAL, net, cutoff=74)[1]
    with pytest.raises(WeightsError) as err:
        write_weights(tmp_path / "x.weights", sd, net)
    assert "--cutoff 74" in str(err.value)
    # With the cutoff, layers >= 74 of a full state dict are dropped, like `darknet partial`.
    full = read_weights(D53 / "darknet53.weights", net)[1]
    full["header"] = torch.tensor([0, 2, 0, 0])  # partial clears seen
    write_weights(tmp_path / "p.conv.74", full, net, cutoff=74)
    assert (tmp_path / "p.conv.74").read_bytes() == PARTIAL.read_bytes()


SPECIAL_BITS = [0x7F800001, 0x7FC00000, 0xFFFFFFFF, 0x80000000, 0x7F800000, 0xFF800000, 0x00000001]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    major=st.integers(0, 1100),
    minor=st.integers(0, 1100),
    seen=st.integers(0, 2**64 - 1),
    seed=st.integers(0, 2**32 - 1),
    specials=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(SPECIAL_BITS)), max_size=8),
)
def test_any_bit_pattern_round_trips(
    tmp_path: Path, major: int, minor: int, seen: int, seed: int, specials: list[tuple[int, int]]
) -> None:
    # Arbitrary float bits (signalling NaNs, NaN payloads, -0.0, denormals) under any header.
    net = load_network(HEADERS / "headers.cfg")
    header = Header.make(major, minor, 0, seen)
    n = (weights_bytes(net, header) - header.header_bytes) // 4
    body = np.random.default_rng(seed).integers(0, 2**32, n, dtype=np.uint32)
    for pos, bits in specials:
        body[pos % n] = bits
    blob = header.to_bytes() + body.astype("<u4").tobytes()
    src = tmp_path / "in.weights"
    src.write_bytes(blob)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _, sd = read_weights(src, net)
        save_state_dict(tmp_path / "x.pth", sd)
        write_weights(tmp_path / "out.weights", load_state_dict(tmp_path / "x.pth"), net)
    assert (tmp_path / "out.weights").read_bytes() == blob


# ------------------------------------------------------------------------------ state dict files


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    for i, obj in enumerate(({"layers.0.conv.bias": Evil()}, Evil())):
        p = tmp_path / f"evil{i}.pth"
        if i == 0:
            torch.save(obj, p)
        else:
            p.write_bytes(pickle.dumps(obj))
        with pytest.raises(WeightsError, match="refused"):
            load_state_dict(p)
    assert not marker.exists()


def test_safetensors_missing_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)  # import now raises ImportError
    with pytest.raises(WeightsError, match="optional `safetensors` package") as err:
        save_state_dict(tmp_path / "x.safetensors", {"a": torch.zeros(1)})
    assert "darkconv[safetensors]" in str(err.value)
    assert os.listdir(tmp_path) == []


def test_failed_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "x.pth"
    out.write_bytes(b"keep")

    def boom(*a: object, **k: object) -> None:
        Path(a[1]).write_bytes(b"half")  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        save_state_dict(out, {"a": torch.zeros(1)})
    assert out.read_bytes() == b"keep" and os.listdir(tmp_path) == ["x.pth"]


def test_new_file_gets_the_usual_mode(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        save_state_dict(tmp_path / "x.pth", {"a": torch.zeros(1)})
    finally:
        os.umask(mask)
    assert (tmp_path / "x.pth").stat().st_mode & 0o777 == 0o644


# ------------------------------------------------------------------------------ CLI


def run_cli(args: list[str]) -> tuple[int, str, str]:
    from darkconv.cli.main import main

    saved = warnings.showwarning
    runner = CliRunner()
    with runner.isolation() as (out, err, _):
        try:
            main(["weights", *(str(a) for a in args)])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            warnings.showwarning = saved
        return code, out.getvalue().decode(), err.getvalue().decode()


def test_cli_round_trip_and_cfg_discovery(tmp_path: Path) -> None:
    shutil.copy(D53 / "darknet53.cfg", tmp_path / "darknet53.cfg")
    shutil.copy(PARTIAL, tmp_path / "darknet53.conv.74")
    code, out, err = run_cli([tmp_path / "darknet53.conv.74", "-o", tmp_path / "d.pth"])
    assert code == 0, err
    assert "found beside the input" in err and "cutoff 74 from the file name" in err
    assert "header 0.2.0 seen=0" in out and "52 with weights" in out and "642,604 parameters" in out
    assert "2,570,436 bytes" in out and len(out.strip().splitlines()) == 1
    code, out, err = run_cli(
        [tmp_path / "d.pth", "-o", tmp_path / "back.conv.74", "--cfg", tmp_path / "darknet53.cfg"]
    )
    assert code == 0, err
    assert "state dict holds exactly layers < 74" in err
    assert (tmp_path / "back.conv.74").read_bytes() == PARTIAL.read_bytes()
    # A name whose N the byte count does not confirm is not used.
    shutil.copy(PARTIAL, tmp_path / "darknet53.conv.60")
    code, _, err = run_cli([tmp_path / "darknet53.conv.60", "-o", tmp_path / "e.pth"])
    assert code != 0 and "does not match" in err and "--cutoff 74" in err
    assert not (tmp_path / "e.pth").exists()


def test_cli_uses_the_shipped_cfg_by_stem(tmp_path: Path) -> None:
    net = load_network("writing")
    n = (weights_bytes(net) - 20) // 4
    body = np.random.default_rng(1).standard_normal(n).astype("<f4")
    (tmp_path / "writing.weights").write_bytes(DEFAULT_HEADER.to_bytes() + body.tobytes())
    code, out, err = run_cli([tmp_path / "writing.weights", "-o", tmp_path / "w.safetensors"])
    assert code == 0, err
    assert "shipped cfg matching the name 'writing'" in err
    # w.safetensors has no cfg beside it and there is no shipped "w" cfg.
    code, out, err = run_cli([tmp_path / "w.safetensors", "-o", tmp_path / "back.weights"])
    assert code != 0 and "no cfg" in err and not (tmp_path / "back.weights").exists()
    code, out, err = run_cli(
        [tmp_path / "w.safetensors", "-o", tmp_path / "back.weights", "--cfg", "writing"]
    )
    assert code == 0, err
    assert (tmp_path / "back.weights").read_bytes() == (tmp_path / "writing.weights").read_bytes()


def _nan_file(p: Path) -> Path:
    data = bytearray((FIX / "layers" / "connected" / "case.weights").read_bytes())
    data[20 + 4 * 5 : 20 + 4 * 6] = struct.pack("<f", float("nan"))
    data[-4:] = struct.pack("<f", float("inf"))
    p.write_bytes(bytes(data))
    return p


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[object], str]]:
    case = FIX / "layers" / "connected"
    cfg = case / "case.cfg"
    data = (case / "case.weights").read_bytes()
    (tmp / "trunc.weights").write_bytes(data[:-100])
    (tmp / "extra.weights").write_bytes(data + b"\0" * 12)
    (tmp / "head.weights").write_bytes(data[:20])
    (tmp / "empty.weights").write_bytes(b"")
    (tmp / "junk.pth").write_bytes(
        b"\x8a" + np.random.default_rng(5).bytes(63)
    )  # not a pickle PROTO

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"x": Evil()}, tmp / "evil.pth")
    torch.save(read_weights(case / "case.weights", load_network(cfg))[1], tmp / "good.pth")
    return {
        # layer 3 spans bytes 6916..7224 (manifest byte_offset 6916, 77 floats); 7124 ends inside.
        "truncated": ([tmp / "trunc.weights", "--cfg", cfg], "runs out in layer 3 (connected)"),
        "extra bytes": (
            [tmp / "extra.weights", "--cfg", cfg],
            "12 bytes left over after layer 3 (connected)",
        ),
        "header only": ([tmp / "head.weights", "--cfg", cfg], "header and no parameters"),
        "empty": ([tmp / "empty.weights", "--cfg", cfg], "empty"),
        "wrong cfg": (
            [case / "case.weights", "--cfg", FIX / "layers" / "conv_bn" / "case.cfg"],
            "left over",
        ),
        "wrong cfg for a state dict": (
            [tmp / "good.pth", "--cfg", FIX / "layers" / "conv_bn" / "case.cfg"],
            "missing",
        ),
        "missing file": ([tmp / "nope.weights", "--cfg", cfg], "no such file"),
        "malicious pickle": ([tmp / "evil.pth", "--cfg", cfg], "refused"),
        "not a pth": ([tmp / "junk.pth", "--cfg", cfg], "not a readable PyTorch file"),
        "missing output folder": (
            [case / "case.weights", "--cfg", cfg, "-o", tmp / "no" / "x.pth"],
            "does not exist",
        ),
        "no cfg": ([tmp / "trunc.weights"], "no cfg"),
        "unknown extension": (
            [case / "case.weights", "--cfg", cfg, "-o", tmp / "x.npz"],
            "cannot tell the format",
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "truncated",
        "extra bytes",
        "header only",
        "empty",
        "wrong cfg",
        "wrong cfg for a state dict",
        "missing file",
        "malicious pickle",
        "not a pth",
        "missing output folder",
        "no cfg",
        "unknown extension",
    ],
)
def test_cli_bad_inputs(tmp_path: Path, name: str) -> None:
    args, expect = _bad_inputs(tmp_path)[name]
    src = Path(str(args[0]))
    out = tmp_path / ("out.weights" if src.suffix == ".pth" else "out.pth")
    if "-o" not in args:
        args = [*args, "-o", out]
        out.write_bytes(b"keep")  # an existing output is never clobbered
    before = sorted(os.listdir(tmp_path))
    code, stdout, err = run_cli(args)
    assert code != 0
    assert "Traceback" not in err + stdout
    lines = err.splitlines()
    assert sum(ln.startswith("error:") for ln in lines) == 1  # one error (plus notes and a hint)
    assert all(ln.startswith(("error:", "hint:", "note:")) for ln in lines), err
    assert expect in err, err
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, no temp files
    if out.exists():
        assert out.read_bytes() == b"keep"


def test_cli_nan_inf_warns_but_converts(tmp_path: Path) -> None:
    cfg = FIX / "layers" / "connected" / "case.cfg"
    src = _nan_file(tmp_path / "nan.weights")
    code, out, err = run_cli([src, "-o", tmp_path / "n.pth", "--cfg", cfg])
    assert code == 0 and "Traceback" not in err
    assert (
        "warning:" in err
        and "NaN/Inf" in err
        and "layers.0.conv.weight" in err
        and "layers.3.fc.weight" in err
    )
    code, out, err = run_cli([tmp_path / "n.pth", "-o", tmp_path / "back.weights", "--cfg", cfg])
    assert code == 0 and "NaN/Inf" in err
    assert (tmp_path / "back.weights").read_bytes() == src.read_bytes()


def test_library_nan_warning_and_size_errors(tmp_path: Path) -> None:
    net = load_network(FIX / "layers" / "connected" / "case.cfg")
    with pytest.warns(RuntimeWarning, match="NaN/Inf"):
        read_weights(_nan_file(tmp_path / "nan.weights"), net)
    data = (FIX / "layers" / "connected" / "case.weights").read_bytes()
    (tmp_path / "odd.weights").write_bytes(data + b"\0\0")
    with pytest.raises(WeightsError, match="2 bytes left over") as err:
        read_weights(tmp_path / "odd.weights", net)
    assert "not a whole number of floats" in str(err.value)
    # A 16-byte header (0.1) in front of a body sized for 20: 4 bytes short at the last layer.
    (tmp_path / "h.weights").write_bytes(struct.pack("<iiii", 0, 1, 0, 0) + data[20:] + b"\0" * 4)
    with pytest.raises(WeightsError, match="4 bytes left over") as err:
        read_weights(tmp_path / "h.weights", net)
    assert "seen" in str(err.value)
    (tmp_path / "zip.weights").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(WeightsError) as err:
        read_weights(tmp_path / "zip.weights", net)
    assert "zip archive" in str(err.value)


@pytest.mark.parametrize(("name", "wpath", "cfg", "cutoff"), CASES[:-1], ids=IDS[:-1])
def test_model_state_dict_writes_the_same_file(
    tmp_path: Path, name: str, wpath: Path, cfg: Path, cutoff: None
) -> None:
    # .weights -> .pth -> strict load into the built model -> model.state_dict() -> .weights.
    build = pytest.importorskip("darkconv.nn.builder").build
    net = load_network(cfg)
    save_state_dict(tmp_path / "x.pth", read_weights(wpath, net)[1])
    model = build(net)
    model.load_state_dict(torch.load(tmp_path / "x.pth", weights_only=True))  # strict
    write_weights(tmp_path / "back.weights", model.state_dict(), net)
    assert (tmp_path / "back.weights").read_bytes() == wpath.read_bytes()
