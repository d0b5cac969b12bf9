"""The mypyc build: compiled modules pass their doctests, are not stale, and give what the Python gives.

``setup.py`` compiles the modules of ``online.compiled.COMPILED_MODULES``
when it can. These tests check what this install actually runs; on a pure
Python install (no C compiler) there is nothing compiled to check and the
comparisons skip, saying so.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import importlib.util
import io
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from online import compiled
from online.compiled import COMPILED_MODULES, PURE_PYTHON_ENV, compiled_modules, describe, stale_modules
from tests.processes import ROOT

SHARED_DATA = ROOT.parent / "shared" / "data"
COMPILED = compiled_modules()
needs_compiled = pytest.mark.skipif(not COMPILED, reason="this install is pure Python (not compiled): nothing to compare")


def _docstrings(module: str) -> Iterator[tuple[str, str, int]]:
    """``(name, docstring, line)`` of the module, its classes and functions, read from the source (not imported)."""
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    tree = ast.parse(path.read_text(), str(path))

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(child, clean=False)
                if doc:
                    yield f"{prefix}.{child.name}", doc, child.lineno
                yield from walk(child, f"{prefix}.{child.name}")

    doc = ast.get_docstring(tree, clean=False)
    if doc:
        yield module, doc, 0
    yield from walk(tree, module)


@pytest.mark.parametrize("module", COMPILED)
def test_doctests_of_a_compiled_module_pass_against_the_compiled_code(module: str) -> None:
    """pytest's doctest collection skips a compiled module's source; its examples run here, on the compiled code."""
    compiled = importlib.import_module(module)
    assert not str(compiled.__file__).endswith(".py")
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner()
    path = str(ROOT.joinpath(*module.split(".")).with_suffix(".py"))
    examples = 0
    for name, doc, line in _docstrings(module):
        test = parser.get_doctest(doc, dict(vars(compiled)), name, path, line)  # names resolve to compiled objects
        runner.run(test)
        examples += len(test.examples)
    assert examples > 0 and runner.failures == 0, f"{module}: {runner.failures} of {examples} doctest examples failed"


def test_no_compiled_module_was_built_from_another_version_of_its_source() -> None:
    assert stale_modules() == [], "rebuild: `make` or `pip install -e .` (a stale extension runs the old code)"


def test_a_module_listed_since_the_last_build_makes_it_out_of_date(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "native_sources.json"
    monkeypatch.setattr(compiled, "_BUILD_RECORD", record)
    hashes = compiled.source_hashes()
    record.write_text(json.dumps(hashes))
    assert compiled.build_is_current()
    # A module joins the list (as flows.stages did): no extension yet, no hash recorded. make must compile it.
    monkeypatch.setattr(compiled, "COMPILED_MODULES", (*compiled.COMPILED_MODULES, "online.baselines"))
    assert not compiled.build_is_current()
    record.unlink()
    assert not compiled.build_is_current()


def test_every_listed_module_exists_and_a_build_compiles_all_or_none() -> None:
    for module in COMPILED_MODULES:
        assert ROOT.joinpath(*module.split(".")).with_suffix(".py").is_file(), module
    assert len(COMPILED) in (0, len(COMPILED_MODULES)), f"partly compiled: {COMPILED}"


def _eval_json(log: Path, pure: bool) -> dict[str, Any]:
    env = {**os.environ, PURE_PYTHON_ENV: "1" if pure else "0"}
    done = subprocess.run([sys.executable, "-m", "flows.cli", "eval", str(log), "--mode", "both", "--models",
                           "livereco", "--json"], env=env, cwd=ROOT, capture_output=True, timeout=300, check=True)
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


@needs_compiled
@pytest.mark.slow
def test_compiled_and_pure_python_give_identical_evaluations(tmp_path: Path) -> None:
    for name, lines in (("train.tsv", 6001), ("test.tsv", 1501)):
        with (SHARED_DATA / "rsc15-100k" / name).open() as full:
            (tmp_path / name).write_text("".join(line for _, line in zip(range(lines), full, strict=False)))
    compiled, pure = _eval_json(tmp_path, pure=False), _eval_json(tmp_path, pure=True)
    assert str(compiled["build"]).startswith("compiled") and str(pure["build"]).startswith("pure Python")
    strip = ("seconds",)
    rows = [[{k: v for k, v in row.items() if k not in strip} for row in run["results"]]
            for run in (compiled, pure)]
    assert rows[0] == rows[1]
    assert rows[0][0]["predictions"] > 500 and rows[0][0]["HR@20"] > 0.3  # a real run, not two empty ones


def test_pure_python_switch_loads_sources() -> None:
    code = ("import online.blend, online.compiled as c; "
            "print(online.blend.__file__.endswith('.py'), c.describe())")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, PURE_PYTHON_ENV: "1"}, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split(" ", 1) == ["True", f"pure Python ({PURE_PYTHON_ENV}=1)\n"]
    assert describe() in ("pure Python (not compiled)", f"compiled with mypyc ({len(COMPILED)} of "
                                                        f"{len(COMPILED_MODULES)} hot modules)")


def _samples() -> list[object]:
    """One populated instance of every class the compiled modules define that the flow pickles or sends."""
    from online.affinity import CategoryAffinity
    from online.blend import Pool
    from online.contract import CandidateList, Event, EventTypeWeights, Profile, RedisKeys
    from online.contract.events import EventLimits
    from online.covisitation import CoVisitationNeighbours
    from online.exploration import ExplorationPool
    from online.forward_decay import ForwardDecay
    from online.item_embedding import ContextEmbedding, SessionEmbedding
    from online.neighbour_candidates import NeighbourCandidates
    from online.purchases import AfterPurchase, PurchaseWindow
    from online.session_neighbours import SessionNeighbours
    from online.trending import TrendingTop
    from online.user_history import Observation, UserHistory

    neighbours = CoVisitationNeighbours(4, 3600.0)
    for step, item in enumerate(["b", "c", "b", "d", "e", "f"]):
        neighbours.learn_one(item, 1.0 + step, float(step))
    cache = NeighbourCandidates()
    cache.learn_one("a", neighbours.snapshot(3))
    affinity = CategoryAffinity(capacity=3)
    affinity.learn_one("shoes", 2.0, ts=5.0)
    context = ContextEmbedding()
    context.learn_one("b", 2.0)
    session = SessionEmbedding()
    session.learn_one(context.raw()[0], 1.0, context.raw()[1])
    trending = TrendingTop(capacity=3)
    for item, score in (("x", 1.0), ("y", 3.0), ("z", 2.0)):
        trending.learn_one(item, score)
    event = Event(user_id="u", item_id="i", type="purchase", ts=1_700_000_000.0, context={"category": "shoes"})
    history = UserHistory(5, 1800.0)
    history.learn_one(event, 8.0)
    window = PurchaseWindow(purchases=("i",), kinds=frozenset({"shoes"}), bought="i")
    after = AfterPurchase()
    after.learn_one(window, [("j", 1.0)], (("k", "shoes"),))
    sessions = SessionNeighbours(capacity=3, length=4)
    sessions.learn_touch("s1", "b", ["a"])
    sessions.learn_next("s1", "c")
    exploration = ExplorationPool(capacity=4, redraw_every=1)
    for item in ("n1", "n2"):
        exploration.observe(item, events=1, category="shoes")
    exploration.learn_one("n1", incumbent="x", positive="n1")
    return [neighbours, neighbours.snapshot(2), cache, affinity, context, session, trending, event, history,
            window, after, sessions, exploration, exploration.arms["n1"], Observation("s", True, ["a"], "shoes"), Pool([("a", 1.0)], [("t", 1.0)], {"a"}, {"x"}),
            ForwardDecay(60.0), EventTypeWeights.from_spec("view=2"), EventLimits(max_id_length=9),
            RedisKeys("ns", 2), CandidateList(["a"], [1.0], 5.0, 7, ["personal"], [0], ["x"]),
            Profile("s", [("a", 1.0, 2.0)], [0.5], [("shoes", 1.0)]), *_stage_samples()]


def _stage_samples() -> list[object]:
    """The dataflow stages' states and messages (compiled too), from a toy stream through the stage logic.

    Ids of two characters or more: one-character strings are CPython singletons, and unpickling them adds
    sharing the original did not have (the same state, other bytes)."""
    from flows.model import LiverecoModel
    from flows.stages import Link, NeighbourReply, Outcome, ParsedEvent, PurchaseLink, Touch
    from flows.writes import DeadLetter, PrequentialScore, RankerWrite, TrendingWrite, UserListWrite
    from online.blend import Candidates, Pool
    from online.contract import Event, Settings

    model = LiverecoModel(Settings(purchase_window_s=3600.0))
    sessions = [("ann", ["ia", "ib", "ic", "id"]), ("bob", ["ia", "ib", "id", "ie"]), ("cat", ["ib", "id"])]
    for number, (user, items) in enumerate(sessions):
        for step, item in enumerate(items):
            model.learn_one(Event(user, item, "purchase" if item == "id" else "view", 1.7e9 + 60 * number + step,
                                  context={"category": "k" + item}))
    history, items_b, lists = model.histories["ann"], model.items["ib"], model.user_lists["bob"]
    touch = Touch(item_id="ib", user_id="ann", entry_id="1-0", seq=2, weight=1.0, ts=1.7e9, accepted_ms=7,
                  category="kb", previous=["ia"], session_id="s", recent=[("ib", 1.0, 1.7e9)], exclude=[],
                  session_key="ann\x1fs")
    previous = lists.state.previous
    assert previous is not None and items_b.state is not None
    return [history.state, items_b.state, lists.state, model.rankers[0].state, model.rankers[0].state.ranker, touch,
            Link("ia", "ib", 0.5, 1.7e9, "kb", "ann\x1fs"), PurchaseLink("id", "ie", 1.0, 1.7e9),
            NeighbourReply("ib", items_b.state.neighbours.snapshot(3), touch, (0.5, 0.5), 1.0),
            Outcome("bob", "1-0", "ie", 1.7e9, previous), previous,
            ParsedEvent(Event("ann", "ia", "view", 1.7e9), "1-0", 7),
            Candidates.score(Pool(previous.ranked, [("ia", 1.0)], previous.repeats), [1.0] * 10),
            UserListWrite("bob", previous.ranked, 1.7e9, 7, "s", [("ib", 1.0, 1.7e9)], [0], ["id"], ((0.5,), 1.0)),
            TrendingWrite("ib", "kb", 2.5, 1.7e9, 3), RankerWrite(0, {"personal": 1.5}, 4, [("ie", "ke")]),
            PrequentialScore("1-0", "bob", "ie", 2, ("ia", "ie")), DeadLetter("events", "1-0", "ts", "bad", b"{}")]


def _value_tree(obj: object) -> bytes:
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = True  # no memo: every reference written out in full
    pickler.dump(obj)
    return out.getvalue()


@pytest.mark.parametrize("sample", _samples(), ids=lambda sample: type(sample).__name__)
def test_every_compiled_class_pickles_and_comes_back_whole(sample: object) -> None:
    """Recovery snapshots and the exchange between processes pickle these, compiled or not."""
    dumped = pickle.dumps(sample, protocol=pickle.HIGHEST_PROTOCOL)
    copy = pickle.loads(dumped)
    assert type(copy) is type(sample)
    # Every field came back: the same value tree (pickled without the memo, so strings shared by
    # identity in one and not the other do not count), or, a set rebuilt by unpickling may iterate in
    # another order, the same bytes in another order.
    before, after = _value_tree(sample), _value_tree(copy)
    assert after == before or sorted(after) == sorted(before)
    if isinstance(sample, Sequence):
        assert list(copy) == list(sample)  # type: ignore[call-overload]  # a snapshot reads the same



def _written_out_initialisers() -> Iterator[tuple[str, ast.ClassDef, ast.FunctionDef]]:
    for module in COMPILED_MODULES:
        tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any("dataclass" in ast.unparse(d) for d in node.decorator_list):
                init = next((f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
                if init is not None:
                    yield module, node, init


def test_a_written_out_dataclass_initialiser_takes_and_sets_every_field_in_order() -> None:
    """The hot dataclasses write ``__init__`` out so that mypyc compiles it; pickling rebuilds them
    through it by position (``online.init_pickle``), so it must take exactly the fields, in order."""
    checked = []
    for module, cls, init in _written_out_initialisers():
        fields = [stmt.target.id for stmt in cls.body if isinstance(stmt, ast.AnnAssign)
                  and isinstance(stmt.target, ast.Name) and "ClassVar" not in ast.unparse(stmt.annotation)]
        assert [arg.arg for arg in init.args.args[1:]] == fields, f"{module}.{cls.name}.__init__"
        assigned = {target.attr for stmt in ast.walk(init) if isinstance(stmt, ast.Assign)
                    for target in stmt.targets if isinstance(target, ast.Attribute)}
        assert assigned == set(fields), f"{module}.{cls.name}.__init__ leaves {set(fields) - assigned} unset"
        assert any(isinstance(f, ast.FunctionDef) and f.name == "__reduce__" for f in cls.body), \
            f"{module}.{cls.name} needs __reduce__ (online.init_pickle): a compiled __init__ breaks default unpickling"
        checked.append(cls.name)
    assert {"Event", "Touch", "Pool", "Candidates", "Outcome"} <= set(checked)
