"""YAML 1.1 reads `yes`, `no`, `on` and `off` as booleans: `choices: [no, yes]` became
[False, True] and `activation: [on, off]` searched True and False, silently. In a list
they are refused with the key path; quoted they are the words, `true`/`false` booleans."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tuner.spec import CategoricalParam, SpecError, read_spec

HEAD = textwrap.dedent(
    """\
    name: words
    trainable: builtin:classifier
    metric: val_accuracy
    mode: max
    params:
      lr: {type: float, low: 0.0001, high: 0.1, log: true}
    """
)


@pytest.mark.parametrize(
    ("param", "key", "problem"),
    [
        (
            "{type: categorical, choices: [no, yes]}",
            "params.answer.choices[0]",
            "YAML 1.1 reads no as false, not as text: write 'no' in quotes for the word, "
            "or false for the boolean",
        ),
        (
            "{type: categorical, choices: [relu, On]}",
            "params.answer.choices[1]",
            "YAML 1.1 reads On as true, not as text: write 'On' in quotes for the word, "
            "or true for the boolean",
        ),
        ("{type: grid, values: [OFF]}", "params.answer.values[0]", "YAML 1.1 reads OFF as false"),
        (
            "{type: categorical, choices: [a, b], when: {lr: [yes]}}",
            "params.answer.when.lr[0]",
            "YAML 1.1 reads yes as true",
        ),
    ],
)
def test_an_unquoted_boolean_word_in_a_list_is_one_line_with_its_key(
    tmp_path: Path, param: str, key: str, problem: str
) -> None:
    path = tmp_path / "words.yaml"
    path.write_text(HEAD + f"  answer: {param}\n")
    with pytest.raises(SpecError) as caught:
        read_spec(path)
    assert (caught.value.file, caught.value.key) == (str(path), key)
    assert caught.value.problem.startswith(problem)


def test_quoted_words_stay_text_and_true_false_stay_booleans(tmp_path: Path) -> None:
    path = tmp_path / "words.yaml"
    path.write_text(
        HEAD
        + "  answer: {type: categorical, choices: ['no', \"yes\", 'on', !!str off, y, n]}\n"
        + "  flag: {type: categorical, choices: [true, false]}\n"
        + "config: {epochs: 1, shuffle: yes}\n"  # a mapping's value: its key types it
    )
    spec = read_spec(path)
    answer, flag = spec.params["answer"], spec.params["flag"]
    assert isinstance(answer, CategoricalParam) and isinstance(flag, CategoricalParam)
    assert answer.choices == ["no", "yes", "on", "off", "y", "n"]
    assert flag.choices == [True, False]
    assert spec.config["shuffle"] is True


def test_aliases_to_a_list_are_walked_once(tmp_path: Path) -> None:
    """The check walks YAML's nodes before the size limit has seen the values: an alias
    shared a billion times over must not be walked a billion times."""
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = tmp_path / "laughs.yaml"
    path.write_text(HEAD + "config:\n" + "".join(f"  {line}\n" for line in levels))
    with pytest.raises(SpecError, match="expands to more than"):
        read_spec(path)


@pytest.mark.e2e
def test_validate_refuses_choices_of_on_and_off_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "words.yaml"
    path.write_text(HEAD + "  activation: {type: categorical, choices: [on, off]}\n")
    done = run_cli("validate", str(path), cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stderr == (
        f"error: {path}: params.activation.choices[0]: YAML 1.1 reads on as true, not as "
        "text: write 'on' in quotes for the word, or true for the boolean\n"
    )
