"""Recipe files: the shipped default is valid, and every mistake names the stage and the key."""

from __future__ import annotations

import pytest

from edgecompress.compress.recipe import default_recipe_path, load_recipe
from edgecompress.errors import RecipeError


def test_default_recipe_has_all_four_stages_in_order():
    assert [s.kind for s in load_recipe(default_recipe_path())] == ["distill", "prune", "cluster", "qat"]


def test_defaults_are_filled_in():
    (stage,) = load_recipe({"stages": [{"kind": "cluster"}]})
    assert stage.settings["clusters"] == 16 and stage.settings["epochs"] == 3
    assert stage.settings["optimizer"] == {"name": "adam", "learning_rate": 1e-3}


@pytest.mark.parametrize("stage,needle", [
    ({"kind": "prune", "sparsity": 1.5}, "stage 1 (prune): key 'sparsity'"),
    ({"kind": "prune", "sparsty": 0.5}, "stage 1 (prune): unknown key 'sparsty'"),
    ({"kind": "prune", "schedule": "cubic"}, "key 'schedule'"),
    ({"kind": "prune", "m_by_n": [2]}, "key 'm_by_n'"),
    ({"kind": "cluster", "clusters": 1}, "stage 1 (cluster): key 'clusters'"),
    ({"kind": "cluster", "init": "random"}, "key 'init'"),
    ({"kind": "distill", "width": 0}, "stage 1 (distill): key 'width'"),
    ({"kind": "qat", "epochs": 0}, "stage 1 (qat): key 'epochs'"),
    ({"kind": "qat", "epochs": "three"}, "key 'epochs' must be int"),
    ({"kind": "qat", "optimizer": {"name": "adagrad"}}, "optimizer name"),
    ({"kind": "qat", "optimizer": {"lr": 0.1}}, "unknown optimizer key"),
    ({"kind": "sparsify"}, "unknown kind 'sparsify'"),
])
def test_bad_stage_is_named_with_its_key(stage, needle):
    with pytest.raises(RecipeError, match=needle.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_recipe({"stages": [stage]})


def test_stage_order_is_enforced():
    with pytest.raises(RecipeError, match="in the order distill -> prune -> cluster -> qat"):
        load_recipe({"stages": [{"kind": "qat"}, {"kind": "prune"}]})


def test_unreadable_and_empty_recipes(tmp_path):
    with pytest.raises(RecipeError, match="no such recipe"):
        load_recipe(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("stages: [unclosed")
    with pytest.raises(RecipeError, match="not a readable YAML"):
        load_recipe(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("stages: []\n")
    with pytest.raises(RecipeError, match="non-empty 'stages'"):
        load_recipe(empty)


def test_shipped_recipes_load_by_name_and_a_file_of_that_name_wins(tmp_path, monkeypatch):
    from edgecompress.compress.recipe import shipped_recipes

    assert {"default", "qat"} <= set(shipped_recipes())
    assert [stage.kind for stage in load_recipe("qat")] == ["qat"]
    assert [stage.kind for stage in load_recipe("default")] == ["distill", "prune", "cluster", "qat"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "qat").write_text("stages:\n  - {kind: prune, sparsity: 0.5}\n")
    assert [stage.kind for stage in load_recipe("qat")] == ["prune"]


def test_an_unknown_recipe_name_lists_the_shipped_ones():
    with pytest.raises(RecipeError, match="shipped recipe: default, qat"):
        load_recipe("no-such-recipe")


BILLION_LAUGHS = """
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
stages: [{kind: prune, skip: *g}]
"""


def test_yaml_aliases_are_refused_before_anything_expands(tmp_path):
    (tmp_path / "laughs.yaml").write_text(BILLION_LAUGHS)
    with pytest.raises(RecipeError, match=r"laughs.yaml.*alias"):
        load_recipe(tmp_path / "laughs.yaml")


@pytest.mark.parametrize("stage, needle", [("{kind: [prune]}", "unknown kind"),
                                           ("{kind: prune, skip: [[first]]}", "skip"),
                                           ("{kind: qat, optimizer: {name: [adam]}}", "optimizer name")])
def test_a_list_where_a_name_belongs_is_one_error(tmp_path, stage, needle):
    (tmp_path / "r.yaml").write_text(f"stages:\n  - {stage}\n")
    with pytest.raises(RecipeError, match=needle):
        load_recipe(tmp_path / "r.yaml")


def test_a_recipe_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.yaml")
    with pytest.raises(RecipeError, match="not a regular file"):
        load_recipe(tmp_path / "fifo.yaml")
