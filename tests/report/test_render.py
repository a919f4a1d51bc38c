"""The commands a report and its errors suggest are pasted into a shell: they quote paths, and they name the study's
dataset (a pasted command without it trains on Fashion-MNIST)."""

from __future__ import annotations

import shlex

import pytest

from convlens.errors import UsageError
from convlens.report.render import render_report, same_data_args


@pytest.mark.parametrize("dataset, expected", [
    ("fashion-mnist", ""),
    (None, ""),  # a results.json from before the key: the default dataset
    ("digits", " --dataset digits"),
    ("folder:/data/my photos", " --dataset 'folder:/data/my photos'"),
    ("folder:/data/a`b", " --dataset DATASET"),  # a backtick would end the Markdown code span it is shown in
    ("folder:/data/<b>", " --dataset DATASET"),
    ("folder:/data/x\n\n![](http://example.com/y.png)", " --dataset DATASET"),  # out of the span: Markdown
])
def test_suggested_commands_run_on_the_studys_dataset(dataset, expected):
    assert str(same_data_args({"study": {"config": {"dataset": dataset}}})) == expected
    if expected and expected != " --dataset DATASET":
        assert shlex.split(expected) == ["--dataset", dataset]  # what the shell hands convlens


def test_an_experiment_directory_given_to_report_names_a_command_that_pastes(tmp_path):
    experiment = tmp_path / "my exp"
    experiment.mkdir()
    (experiment / "experiment.json").write_text("{}")
    with pytest.raises(UsageError) as info:
        render_report(experiment)
    command = str(info.value).split("'convlens experiment table ", 1)[1].rsplit("' prints", 1)[0]
    assert shlex.split(command) == [str(experiment)]
