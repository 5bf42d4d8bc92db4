"""The one run configuration: defaults written once, built the same from flags, env and forms."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agebatch.cli import build_parser
from agebatch.cli.options import flag, run_config
from agebatch.config import PhotoKind, PredictConfig, RunConfig
from agebatch.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
PATHS = {"photos": "p", "transactions": "t", "catalog": "c.csv", "out": "o"}

# The defaults that used to be written in three to five places each, as they were written
# (a name, then its value within a few characters, across line breaks).
ONCE = {
    "legal age 18": r"legal[_-]age[\s\S]{0,60}?\b18(\.0)?\b",
    "challenge age 25": r"challenge[_-]age[\s\S]{0,60}?\b25(\.0)?\b",
    "window 120 s before": r"window[_-]before[\s\S]{0,60}?\b120(\.0)?\b",
    "window 5 s after": r"window[_-]after[\s\S]{0,60}?\b5(\.0)?\b",
    "age groups": r"\(18, ?25, ?35, ?45, ?55, ?65\)|18,25,35,45,55,65",
    "time zone": r"Europe/London",
    "photo kinds": r"[\"']frames[\"']",
    "batch size 256": r"batch[_-]size[\s\S]{0,40}?\b256\b",
    "affinity window 28 days": r"affinity[_-]days[\s\S]{0,60}?\b28\b",
    "minimum receipts 20": r"min[_-]receipts[\s\S]{0,60}?\b20\b",
    "affinity confidence 0.95": r"confidence[\s\S]{0,60}?\b0\.95\b",
}
# (TrainConfig's batch size, 64, is training's own setting: not checked here.)
ELSEWHERE: dict[str, tuple[str, ...]] = {}


def _code() -> dict[str, str]:
    """The shipped code: the package and the flows (tests and tools are not run settings)."""
    files = [*ROOT.joinpath("agebatch").rglob("*.py"), *ROOT.joinpath("flows").rglob("*.py")]
    return {str(path.relative_to(ROOT)): path.read_text() for path in files}


@pytest.mark.parametrize("what", sorted(ONCE))
def test_each_default_is_written_once(what: str) -> None:
    found = {name for name, text in _code().items() if re.search(ONCE[what], text)}
    assert "agebatch/config.py" in found
    assert found - {"agebatch/config.py", *ELSEWHERE.get(what, ())} == set()


def test_flags_env_and_defaults_build_the_same_config() -> None:
    parser = build_parser()
    args = parser.parse_args(["run", "--photos", "p", "--out", "o", "--margin", "1"])
    env = {"AGEBATCH_TRANSACTIONS": "t", "AGEBATCH_CATALOG": "c.csv", "AGEBATCH_OUT": "ignored"}
    config = run_config(args, env)
    assert config == RunConfig(**PATHS, margin=1.0)  # flags win over the environment
    assert config.window_before_s == 120 and config.age_groups == (18, 25, 35, 45, 55, 65)
    assert config.photo_kind is PhotoKind.AUTO and config.policy is None


def test_settings_from_text_as_the_environment_and_forms_give_them() -> None:
    env = {
        "AGEBATCH_AGE_GROUPS": "16,21,65",
        "AGEBATCH_FACE_REGION": "0.2,0,0.8,1",
        "AGEBATCH_DECODE_PROCESSES": "true",
        "AGEBATCH_POLICY": "",
        "AGEBATCH_PHOTO_KIND": "frames",
        "AGEBATCH_UNKNOWN": "x",
    }
    config = RunConfig.build({**PATHS, **RunConfig.from_env(env)})
    assert config.age_groups == (16, 21, 65) and config.face_region == (0.2, 0.0, 0.8, 1.0)
    assert config.decode_processes is True and config.policy is None
    assert config.photo_kind is PhotoKind.FRAMES
    assert RunConfig.model_validate_json(config.model_dump_json()) == config  # flow round trip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"legal_age": 21, "challenge_age": 20}, "at most the challenge age"),
        ({"age_groups": "25,18"}, "increasing positive ages"),
        ({"face_region": "0.5,0,0.4,1"}, "0 <= x0 < x1 <= 1"),
        ({"timezone": "Mars/Olympus"}, "not an IANA name"),
        ({"photo_kind": "faces"}, "photo_kind"),
        ({"batch_size": 0}, "batch_size"),
        ({"window_before_s": -1}, "window_before_s"),
        ({"margin": -0.5}, "margin"),
    ],
)
def test_bad_settings_are_one_sentence(change: dict, message: str) -> None:
    with pytest.raises(InputError, match=message) as error:
        RunConfig.build({**PATHS, **change})
    assert "\n" not in str(error.value) and str(error.value).startswith("Setting ")


def test_a_missing_setting_names_its_flag_and_variable() -> None:
    with pytest.raises(InputError, match="Setting out is missing: give --out or set AGEBATCH_OUT"):
        RunConfig.build({k: v for k, v in PATHS.items() if k != "out"})


def test_all_missing_settings_are_named_in_one_sentence() -> None:
    with pytest.raises(InputError) as error:
        RunConfig.build({"catalog": "c.csv"})
    assert str(error.value) == (
        "Settings photos, transactions and out are missing: give --photos, --transactions and "
        "--out, or set AGEBATCH_PHOTOS, AGEBATCH_TRANSACTIONS and AGEBATCH_OUT."
    )


def test_each_default_is_printed_once_in_the_help() -> None:
    """`agebatch run --help` used to print '(default: the bundled one) (default: none)'."""
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    helps = {a.dest: a.help or "" for a in run._actions if a.dest in RunConfig.model_fields}
    assert set(helps) == set(RunConfig.model_fields)
    for name, text in helps.items():
        expected = 0 if RunConfig.model_fields[name].is_required() else 1
        assert text.count("(default:") == expected, (name, text)
    assert "(default: the bundled one)" in helps["model"]
    text = " ".join(run.format_help().split())
    optional = sum(not f.is_required() for f in RunConfig.model_fields.values())
    assert text.count("(default:") == optional + 1  # and --day's: yesterday
    for command, parser in build_parser()._subparsers._group_actions[0].choices.items():
        for action in parser._actions:  # every command's options: a default said once at most
            assert (action.help or "").count("default:") <= 1, (command, action.dest)


def test_every_setting_is_a_flag_of_run_with_its_default_in_the_help() -> None:
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    text = run.format_help()
    for name, field in RunConfig.model_fields.items():
        assert flag(name) in text, name
        assert (field.description or "")[:30].split()[0] in text
    assert "(default: 120.0)" in text and "(default: 18,25,35,45,55,65)" in text


def test_the_flow_takes_the_day_and_one_config_object() -> None:
    from agebatch.flows.nightly import nightly

    schema = nightly.parameters.model_dump()
    assert set(schema["properties"]) == {"config", "day"}
    assert schema["required"] == ["config"]
    definition = schema["definitions"]["RunConfig"]
    assert set(definition["properties"]) == set(RunConfig.model_fields)
    assert definition["properties"]["window_before_s"]["default"] == 120.0
    assert set(PredictConfig.model_fields) < set(RunConfig.model_fields)


@pytest.mark.parametrize(
    ("workers", "setting", "processes"),
    [(2, None, False), (4, None, False), (5, None, True), (16, None, True),
     (16, False, False), (2, True, True), (1, True, False)],
)  # fmt: skip
def test_decoding_in_processes_by_default_only_with_many_workers(
    workers: int, setting: bool | None, processes: bool
) -> None:
    config = PredictConfig.build({"workers": workers, "decode_processes": setting})
    assert config.decodes_in_processes() is processes
    assert PredictConfig.build({"decode_processes": ""}).decode_processes is None  # env unset


def test_auto_sample_and_acceleration_settings() -> None:
    assert PredictConfig.build({"auto_sample": "8", "accelerate": "on"}).auto_sample == 8
    with pytest.raises(InputError, match="auto_sample"):
        PredictConfig.build({"auto_sample": 0})
    with pytest.raises(InputError, match="accelerate"):
        PredictConfig.build({"accelerate": "sometimes"})
