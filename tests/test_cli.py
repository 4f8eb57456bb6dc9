"""The command line: every error path gives one clear line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ppl_fewshot.inference import TrainConfig, train
from tests.conftest import make_prototype_classes, one_line_error, run


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck") / "run"
    data = (make_prototype_classes(6, 10), make_prototype_classes(2, 10, seed=3))
    cfg = TrainConfig(
        model="vae-small",
        protocol="synthetic",
        steps=3,
        batch_size=2,
        set_size=2,
        val_batches=1,
        checkpoint_every=3,
        device="cpu",
    )
    train(cfg, out, data=data, progress=False)
    return out / "checkpoint.pt"


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "no-such-model", "--out", "X"], "unknown model"),
        (["train", "vae", "--protocol", "no-such-protocol", "--steps", "1"], "no-such-protocol"),
        (["train", "vae", "--steps", "-3"], "positive"),
        (["train", "vae", "--set-size", "5-2"], "LO > HI"),
        (["train", "vae", "--set", "nonsense=1", "--steps", "1"], "no setting"),
        (["train", "vae", "--init-from", "/nonexistent.pt"], "does not exist"),
        (
            ["data", "describe", "--protocol", "gmn28", "--data-dir", "/nonexistent/dir"],
            "PPL_FEWSHOT_DATA",
        ),
        (["evaluate", "--checkpoint", "/nonexistent.pt"], "does not exist"),
        (["evaluate", "--checkpoint", "x.pt", "--samples", "0"], "positive"),
        (["sample", "--checkpoint", "/nonexistent.pt"], "does not exist"),
    ],
)
def test_errors_are_one_line(argv, needle, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with (
        pytest.raises(SystemExit)
        if any(a.startswith("-3") or a in ("5-2", "0") for a in argv)
        else _NoRaise() as ctx
    ):
        code, _, err = run(argv, capsys)
    if ctx is not None and getattr(ctx, "value", None) is not None:
        code = ctx.value.code
        err = capsys.readouterr().err
    assert code == 2
    assert needle in one_line_error(err)
    assert not any(tmp_path.iterdir()), "nothing may be written on error"


class _NoRaise:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_truncated_checkpoint_and_corrupt_zip(capsys, tmp_path, checkpoint) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(checkpoint.read_bytes()[:1000])
    code, _, err = run(["evaluate", "--checkpoint", str(bad), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "truncated" in one_line_error(err)
    assert not (tmp_path / "o").exists()
    d = tmp_path / "data" / "omniglot"
    d.mkdir(parents=True)
    (d / "images_background.zip").write_bytes(b"PK\x03\x04 this is not a zip" * 100)
    (d / "images_evaluation.zip").write_bytes(b"garbage")
    code, _, err = run(
        ["data", "describe", "--protocol", "lake28", "--data-dir", str(tmp_path / "data")], capsys
    )
    assert code == 2
    one_line_error(err)


def user_drawings(folder: Path, n: int) -> Path:
    """``n`` PNG drawings of a thick stroke, as a user's own context folder."""
    from PIL import Image, ImageDraw

    folder.mkdir()
    for i in range(n):
        im = Image.new("L", (105, 105), 255)
        ImageDraw.Draw(im).line([(20, 20 + 10 * i), (80, 80)], fill=0, width=8)
        im.save(folder / f"{i}.png")
    return folder


def test_sample_from_user_drawings(capsys, tmp_path, checkpoint) -> None:
    ctx = user_drawings(tmp_path / "mine", 3)
    out = tmp_path / "s.png"
    code, _, _ = run(
        [
            "sample",
            "--checkpoint",
            str(checkpoint),
            "--context",
            str(ctx),
            "--num",
            "4",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0 and out.stat().st_size > 1000
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(["sample", "--checkpoint", str(checkpoint), "--context", str(empty)], capsys)
    assert code == 2 and "no images" in one_line_error(err)


def test_evaluate_on_real_data_writes_tables(capsys, tmp_path, checkpoint, shared_data) -> None:
    out = tmp_path / "eval"
    code, stdout, _ = run(
        [
            "evaluate",
            "--checkpoint",
            str(checkpoint),
            "--episodes",
            "3",
            "--samples",
            "5",
            "--shots",
            "0,1,4",
            "--set-size",
            "5",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, stdout
    res = json.loads((out / "nll.json").read_text())
    assert res["shots"] == [0, 1, 4] and res["episodes"] == 3 and len(res["nll"]) == 3
    assert res["protocol"] == "gmn28" and res["label"].endswith("(ppl_fewshot)")
    assert "K=5" in res["estimator"] and len(res["checkpoint_sha256"]) == 64
    assert (out / "nll.md").read_text().count("|") > 10 and (out / "nll.csv").exists()
    again = tmp_path / "again"  # the importance samples are seeded: a rerun repeats the numbers
    code, _, _ = run(["evaluate", "--checkpoint", str(checkpoint), "--episodes", "3", "--samples",
                      "5", "--shots", "0,1,4", "--set-size", "5", "--out", str(again)], capsys)
    assert code == 0 and json.loads((again / "nll.json").read_text())["nll"] == res["nll"]


def test_help_of_every_command() -> None:
    for cmd in ([], ["data"], ["train"], ["evaluate"], ["sample"], ["quickstart"]):
        r = subprocess.run(
            [sys.executable, "-m", "ppl_fewshot.cli", *cmd, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0 and "usage" in r.stdout, (cmd, r.stderr)


def test_console_script_error_has_no_traceback(tmp_path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "ppl_fewshot.cli", "train", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and "unknown model" in r.stderr


def test_quickstart_smoke_falls_back_to_glyphs(capsys, tmp_path) -> None:
    out = tmp_path / "qs"
    code, stdout, err = run(
        [
            "--threads",
            "1",
            "quickstart",
            "--train",
            "--model",
            "vae-small",
            "--steps",
            "3",
            "--eval-episodes",
            "2",
            "--samples",
            "2",
            "--data-dir",
            str(tmp_path / "no-data"),
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    assert "glyphs" in err  # it says that it fell back to the synthetic data
    names = sorted(p.name for p in out.iterdir())
    assert names == ["loss.png", "nll_by_shots.png", "samples.png", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"] == "glyphs" and summary["train_steps"] == 3
    assert len(summary["nll_by_shots"]["nll"]) == 6
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no scratch left behind"


def test_quickstart_with_a_checkpoint_on_real_data(capsys, tmp_path, checkpoint, shared_data):
    out = tmp_path / "qs"
    code, stdout, err = run(
        [
            "quickstart",
            "--checkpoint",
            str(checkpoint),
            "--eval-episodes",
            "2",
            "--samples",
            "2",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"] == "gmn28" and summary["checkpoint"] == str(checkpoint)
    assert (out / "samples.png").stat().st_size > 1000 and not (out / "loss.png").exists()


def test_sample_components_of_the_mixture_prior_gmn(capsys, tmp_path) -> None:
    from ppl_fewshot.cli_commands import sample_options
    from ppl_fewshot.models import build

    mixture = build("gmn-small", prior="mixture")
    assert sample_options(mixture, "context", 5) == {"components": "context"}
    assert sample_options(mixture, "all", 5) == {"components": "all"}
    assert sample_options(mixture, "context", 0) == {}  # no context items: p(x)
    assert sample_options(build("gmn-small"), "context", 5) == {}
    assert sample_options(mixture, "all", 0, 0.5) == {"temperature": 0.5}
    assert sample_options(build("ns-small"), "context", 5, 0.5) == {"temperature": 0.5}
    with pytest.raises(ValueError, match="no sampling temperature"):
        sample_options(build("vae-small"), "context", 5, 0.5)
    ck = Path(__file__).resolve().parents[1] / "models" / "gmn-small-mixture-omniglot.pt"
    ctx = user_drawings(tmp_path / "mine", 2)
    drawn = []
    for components in ("context", "all"):
        out = tmp_path / f"{components}.png"
        code, _, err = run(["sample", "--checkpoint", str(ck), "--context", str(ctx), "--num",
                            "3", "--components", components, "--out", str(out)], capsys)
        assert code == 0, err
        drawn.append(out.read_bytes())
    assert drawn[0] != drawn[1]  # the two choices draw different samples
    out = tmp_path / "cold.png"
    code, _, err = run(["sample", "--checkpoint", str(ck), "--context", str(ctx), "--num", "3",
                        "--temperature", "0.3", "--out", str(out)], capsys)
    assert code == 0, err
    assert out.read_bytes() != drawn[0]  # colder samples: other pixels
    code, _, err = run(["sample", "--checkpoint", str(ck), "--context", str(ctx),
                        "--temperature", "0", "--out", str(out)], capsys)
    assert code == 2 and "temperature" in one_line_error(err)
    with pytest.raises(SystemExit):  # argparse refuses an unknown choice
        run(["sample", "--checkpoint", str(ck), "--components", "some"], capsys)
    assert "--components" in capsys.readouterr().err


def test_quickstart_uses_the_zoo_model_by_default(capsys, tmp_path, shared_data, monkeypatch):
    from ppl_fewshot.cli_quickstart import zoo_checkpoint

    zoo = zoo_checkpoint()
    if zoo is None:
        pytest.skip("no zoo checkpoint in models/")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["quickstart", "--eval-episodes", "2", "--samples", "2", "--out", "qs"],
                       capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "qs" / "summary.json").read_text())
    assert summary["checkpoint"] == str(zoo) and summary["model"] == "gmn-small"
    assert "test_characters" not in summary  # trained on gmn28: every test character is new


def test_quickstart_leaves_out_the_characters_a_checkpoint_trained_on(capsys, tmp_path,
                                                                     shared_data) -> None:
    """The shipped Neural Statistician trained on ns28, whose training characters include 496
    of gmn28's 659 test characters: quickstart shows and scores it on the other 163 only."""
    ck = Path(__file__).resolve().parents[1] / "models" / "ns-medium-omniglot.pt"
    out = tmp_path / "qs"
    code, _, err = run(["quickstart", "--checkpoint", str(ck), "--eval-episodes", "2",
                        "--samples", "2", "--out", str(out)], capsys)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_characters"].startswith("163 of the 659 gmn28 test characters")
    assert "163 of the 659" in err


def test_every_zoo_checkpoint_has_a_card() -> None:
    from pathlib import Path

    from ppl_fewshot.inference import load_checkpoint
    from ppl_fewshot.inference.checkpoint import training_budget

    zoo = Path(__file__).resolve().parents[1] / "models"
    for ck in zoo.glob("*.pt"):
        card = json.loads(ck.with_suffix(".json").read_text())
        state = load_checkpoint(ck)
        assert card["model"] == state["model_name"] and card["steps"] == state["step"]
        # a continued run's card says its budget in all, as the file itself records it
        assert card.get("steps_in_all") == training_budget(state).get("steps_in_all")
        assert "ppl-fewshot" in card["train_command"] and " train " in card["train_command"]
        assert card["protocol"]
        assert ck.stat().st_size < 8_000_000


def test_train_binarization_flag_reaches_the_config() -> None:
    from ppl_fewshot.cli import build_parser
    from ppl_fewshot.cli_commands import _config_from_args

    parse = build_parser().parse_args
    assert _config_from_args(parse(["train", "ns-small"])).binarization is None
    cfg = _config_from_args(parse(["train", "ns-small", "--binarization", "none"]))
    assert cfg.binarization == "none" and TrainConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(SystemExit):
        parse(["train", "ns-small", "--binarization", "grey"])


def test_init_from_takes_the_checkpoint_settings_under_set(tmp_path) -> None:
    """`train --init-from` builds the checkpoint's model (urn included) without the settings
    being repeated; --set changes the urn, and a network setting that disagrees still fails."""
    import dataclasses

    from ppl_fewshot.cli import build_parser
    from ppl_fewshot.cli_commands import _config_from_args
    from ppl_fewshot.inference import CheckpointError, load_checkpoint

    data = (make_prototype_classes(6, 10), make_prototype_classes(2, 10, seed=3))
    src = TrainConfig(model="vae-small", model_overrides={"z_dim": 4, "urn_concentration": 2.0},
                      protocol="synthetic", steps=1, batch_size=2, set_size=3, val_batches=1,
                      device="cpu")
    train(src, tmp_path / "a", data=data, progress=False)
    ck = str(tmp_path / "a" / "checkpoint.pt")
    parse = build_parser().parse_args
    cfg = _config_from_args(parse(["train", "vae-small", "--init-from", ck]))
    assert cfg.model_overrides == {"z_dim": 4, "urn_concentration": 2.0}
    cont = dataclasses.replace(src, init_from=ck, model_overrides=cfg.model_overrides)
    train(cont, tmp_path / "b", data=data, progress=False)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["model_config"]["z_dim"] == 4
    plain = _config_from_args(parse(["train", "vae-small", "--init-from", ck,
                                     "--set", "urn_concentration=null", "--set", "hidden=64"]))
    assert plain.model_overrides == {"z_dim": 4, "urn_concentration": None, "hidden": 64}
    with pytest.raises(CheckpointError, match="--init-from"):
        train(dataclasses.replace(cont, model_overrides=plain.model_overrides),
              tmp_path / "c", data=data, progress=False)
    with pytest.raises(ValueError, match="holds a vae-small, not a vae"):
        _config_from_args(parse(["train", "vae", "--init-from", ck]))


def test_train_augmentation_flag_reaches_the_config(capsys) -> None:
    from ppl_fewshot.cli import build_parser
    from ppl_fewshot.cli_commands import _config_from_args

    parse = build_parser().parse_args
    assert _config_from_args(parse(["train", "ns-small"])).augmentation is None
    cfg = _config_from_args(parse(["train", "ns-small", "--augmentation", "rot90,flip,dilate"]))
    assert cfg.augmentation == ("rot90", "flip", "dilate")
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    assert _config_from_args(parse(["train", "ns-small", "--augmentation", "none"])
                             ).augmentation == ()
    with pytest.raises(SystemExit):
        parse(["train", "ns-small", "--augmentation", "rot90,blur"])
    assert "blur" in capsys.readouterr().err


def test_train_objective_weight_flags_reach_the_config(capsys) -> None:
    from ppl_fewshot.cli import build_parser
    from ppl_fewshot.cli_commands import _config_from_args

    parse = build_parser().parse_args
    plain = _config_from_args(parse(["train", "gmn-small"]))
    assert plain.position_weights == () and plain.singleton_weight == 0.0
    cfg = _config_from_args(parse(["train", "gmn-small", "--position-weights", "20,1",
                                   "--singleton-weight", "0.25"]))
    assert cfg.position_weights == (20.0, 1.0) and cfg.singleton_weight == 0.25
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    for bad in (["--position-weights", "2,0"], ["--singleton-weight", "-1"]):
        with pytest.raises(SystemExit):
            parse(["train", "gmn-small", *bad])
    assert "must be" in capsys.readouterr().err


def test_train_into_a_folder_another_process_trains_is_one_line(tmp_path, capsys) -> None:
    """A second `train --resume` while another process holds the run is refused."""
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from ppl_fewshot.utils import folder_lock\n"
         f"with folder_lock({str(run_dir)!r}):\n    print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        (run_dir / "checkpoint.pt").write_bytes(b"")  # not read: the lock comes first
        code, _, err = run(["train", "vae-small", "--protocol", "synthetic", "--steps", "2",
                            "--out", str(run_dir), "--resume"], capsys)
        assert code == 2
        assert f"pid {holder.pid}" in one_line_error(err) and "in use" in err
    finally:
        holder.communicate("")
    assert holder.returncode == 0


def test_export_says_the_budget_in_all(checkpoint, tmp_path, capsys) -> None:
    """`export` of a run continued from `checkpoint` reports both runs' steps."""
    import dataclasses

    from ppl_fewshot.inference import load_checkpoint

    first = TrainConfig.from_json(load_checkpoint(checkpoint)["train_config"])
    data = (make_prototype_classes(6, 10), make_prototype_classes(2, 10, seed=3))
    cont = dataclasses.replace(first, steps=2, checkpoint_every=2, init_from=str(checkpoint))
    train(cont, tmp_path / "cont", data=data, progress=False)
    code, out, err = run(["export", "--checkpoint", str(tmp_path / "cont" / "checkpoint.pt"),
                          "--out", str(tmp_path / "zoo.pt")], capsys)
    assert code == 0, err
    assert "2 steps" in out and "after 1 earlier run(s): 5 steps" in out
