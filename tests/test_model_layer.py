"""The model layer's shape (issue 22): a model is ``spec`` plus ``state``, its private
attributes stay in ``models/ldamodel.py``, and one parameter table drives every place that
checks a setting."""

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from distlda import params, persistence
from distlda.cluster.messages import SESSION_RULES, ProtocolError, SessionConfig
from distlda.gibbs.state import GibbsState
from distlda.models import LdaModel

PKG = Path(__file__).resolve().parents[1] / "distlda"
OWNER = PKG / "models" / "ldamodel.py"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _model():
    return LdaModel([[(0, 1), (1, 2)], [(2, 1)]], num_topics=2, iterations=2,
                    distributed=False, workers=1, random_state=0)


def private_names() -> set:
    """Every private attribute an LdaModel has: set on a trained instance, or defined by its
    class or a class it inherits (a mixin's private helper counts too)."""
    lda = _model()
    lda.fold_in([[(0, 1)]])
    names = {n for n in vars(lda) if _private(n)}
    for cls in LdaModel.__mro__[:-1]:
        names |= {n for n in vars(cls) if _private(n)}
    # and whatever ldamodel.py sets on ``self`` on paths this model did not take
    for node in ast.walk(ast.parse(OWNER.read_text())):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "self" and _private(node.attr)):
            names.add(node.attr)
    return names


def mixins() -> set:
    return {c.__name__ for c in LdaModel.__mro__[1:-1]}


def private_uses(source: str, private: set, mixin_names: set) -> list:
    """``(line, name)`` of each read or write of a name in ``private``: on any object, and on
    ``self``/``cls`` inside a class of ``mixin_names`` (``self._x`` in a class of its own is
    that class's business); ``getattr``/``setattr``/``hasattr`` with the name as a string too."""
    found = []

    def visit(node, cls):
        if isinstance(node, ast.ClassDef):
            cls = node.name
        if isinstance(node, ast.Attribute) and node.attr in private:
            own = (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
                   and cls is not None and cls not in mixin_names)
            if not own:
                found.append((node.lineno, node.attr))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in private):
            found.append((node.lineno, node.args[1].value))
        for child in ast.iter_child_nodes(node):
            visit(child, cls)

    visit(ast.parse(source), None)
    return found


def test_the_check_finds_what_it_must():
    bad = (
        "def f(model, lda):\n"
        "    model._state.nwk[0] += 1\n"
        "    return lda._word(3), getattr(lda, '_rng')\n"
        "class TopicsMixin:\n"
        "    def g(self):\n"
        "        self._infer_cache = None\n"
        "class Other:\n"
        "    def h(self):\n"
        "        self._state = 1\n"
    )
    found = private_uses(bad, {"_state", "_word", "_rng", "_infer_cache"}, {"TopicsMixin"})
    assert found == [(2, "_state"), (3, "_word"), (3, "_rng"), (6, "_infer_cache")]


def test_no_module_but_ldamodel_touches_a_private_attribute_of_the_model():
    private, mixin_names = private_names(), mixins()
    assert {"_spec", "_state", "_rng"} <= private  # what it keeps, so the check has teeth
    assert {"TopicsMixin", "InferenceMixin", "GensimCompatMixin"} <= mixin_names
    found = []
    for path in sorted(PKG.rglob("*.py")):
        if path == OWNER:
            continue
        found += [f"{path.relative_to(PKG.parent)}:{line} {name}"
                  for line, name in private_uses(path.read_text(), private, mixin_names)]
    assert not found, "\n".join(found)


def test_a_model_is_a_frozen_spec_and_the_gibbs_state():
    lda = _model()
    assert dataclasses.is_dataclass(lda.spec) and isinstance(lda.spec, params.ModelSpec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lda.spec.chunksize = 5
    assert type(lda.state) is GibbsState
    # the state is the only owner of K, V and the priors
    assert lda.num_topics == lda.state.num_topics and lda.num_terms == lda.state.num_terms
    assert lda.alpha is lda.state.alpha
    for name in ("alpha", "eta", "num_topics", "num_terms", "beta"):
        assert not hasattr(lda.spec, name)
    # a setting changes through its rule, into a new spec
    spec = lda.spec
    lda.chunksize = 7
    assert lda.spec.chunksize == 7 and spec.chunksize == 2000
    with pytest.raises(ValueError, match=r"Invalid 'chunksize' parameter: 0 \(an integer >= 1"):
        lda.chunksize = 0
    with pytest.raises(AttributeError):
        lda.num_topics = 3


def test_spec_fields_are_the_tables():
    in_spec = {p.name for p in params.PARAMS if p.in_spec}
    assert {f.name for f in dataclasses.fields(params.ModelSpec)} == in_spec
    lda = _model()
    assert params.ModelSpec.from_dict(lda.spec.to_dict()) == dataclasses.replace(
        lda.spec, tls=None, progress=None)


def test_every_change_to_the_state_bumps_its_version():
    lda = _model()
    st = lda.state
    seen = [st.version]

    def bumped():
        seen.append(st.version)
        return seen[-1] > seen[-2]

    lda.train(1)
    assert bumped()
    lda.alpha = "asymmetric"
    assert bumped()
    lda.eta = 0.5
    assert bumped()
    st.commit(0, st.chunks[0].topics.copy())
    assert bumped()
    lda.update([[(5, 1)]], iterations=0)  # add_chunk and grow_vocabulary
    assert bumped() and lda.num_terms == 6


def test_the_table_drives_the_file_the_command_line_and_the_session():
    saved = {p.name for p in params.PARAMS if p.saved}
    assert saved <= set(persistence.FIELDS)
    assert persistence.FIELDS["optimize_burnin"][1] == params.PARAM["optimize_burnin"].older
    from distlda.cli import _MODEL_OPTIONS, build_parser
    train = build_parser().parse_args(["train"])
    for p in params.PARAMS:
        if p.cli is not None:
            dest = p.cli.dest or p.name
            assert getattr(train, dest) == p.cli_default
            assert (dest in _MODEL_OPTIONS) == p.cli.fixed_on_resume
    # K's lower bound, written once: the session message takes it from the table
    assert SESSION_RULES["num_topics"].lo == params.PARAM["num_topics"].rule.lo
    good = SessionConfig(3, 10, np.full(3, 0.5), 0.1, num_chunks=1, num_tokens=5).to_wire()
    with pytest.raises(ProtocolError, match=r"num_topics: expected an integer in \[1, "):
        SessionConfig.from_wire(dict(good, num_topics=0))


def test_the_constructor_takes_every_setting_with_the_tables_default():
    import inspect
    signature = inspect.signature(LdaModel).parameters
    derived = {"optimize_alpha", "optimize_eta", "fixed_vocab", "infer_seed"}
    for p in params.PARAMS:
        if p.name not in derived:
            assert signature[p.name].default == p.default, p.name


def test_optimize_burnin_is_written_once_outside_its_use():
    """The example of the issue: optimize_burnin's rule, default, option and field live in
    the table; only the training step uses it (the constructor names it as a keyword)."""
    users = sorted(str(path.relative_to(PKG.parent)) for path in PKG.rglob("*.py")
                   if "optimize_burnin" in path.read_text())
    assert users == ["distlda/models/ldamodel.py", "distlda/params.py", "distlda/training.py"]


def test_the_training_step_owns_the_prior_schedule(monkeypatch):
    """alpha and eta are learned after sweeps s >= optimize_burnin with s % optimize_interval
    == 0, counted across trainings, by the model's step before the monitor sees the sweep."""
    from distlda import monitor, training
    learned, seen_by_monitor = [], []
    monkeypatch.setattr(training, "learn_alpha",
                        lambda state, hist=None: learned.append(("alpha", state.sweeps_done)))
    monkeypatch.setattr(training, "learn_eta",
                        lambda state: learned.append(("eta", state.sweeps_done)))
    real_call = monitor.SweepMonitor.__call__

    def observe(self, it, **kw):
        seen_by_monitor.append((it, self.model.state.sweeps_done, len(learned)))
        return real_call(self, it, **kw)

    monkeypatch.setattr(monitor.SweepMonitor, "__call__", observe)
    lda = LdaModel([[(0, 1), (1, 2)], [(2, 1)]], num_topics=2, iterations=7, alpha="auto",
                   eta="auto", optimize_interval=3, optimize_burnin=4, distributed=False,
                   workers=1, random_state=0)
    lda.train(5)
    assert learned == [("alpha", 6), ("eta", 6), ("alpha", 9), ("eta", 9), ("alpha", 12),
                       ("eta", 12)]
    assert lda.state.sweeps_done == 12 and [h.sweep for h in lda.history] == list(range(1, 13))
    # the monitor observes each sweep after the step counted it (and learned, when due)
    assert seen_by_monitor[5] == (5, 6, 2) and seen_by_monitor[7] == (0, 8, 2)
    assert "optimize" not in Path(monitor.__file__).read_text()


def test_the_state_checks_what_is_assigned_to_it():
    """lda.state is the live Gibbs state: a prior the kernels would misread never reaches it."""
    lda = _model()
    st, K = lda.state, lda.num_topics
    before = st.alpha.copy()
    for bad, match in ((-1.0, r"Invalid 'alpha' parameter: -1\.0"),
                       ([0.1] * (K - 1), rf"shape \({K - 1},\), expected \({K},\)"),
                       (np.full(K, np.nan), "finite number")):
        with pytest.raises(ValueError, match=match):
            st.alpha = bad
    np.testing.assert_array_equal(st.alpha, before)
    for bad in (-1.0, float("inf"), np.full(lda.num_terms + 1, 0.1)):
        with pytest.raises(ValueError):
            st.set_beta(bad)
    for name in ("num_topics", "num_terms"):
        with pytest.raises(AttributeError):
            setattr(st, name, 3)
    for name in ("alpha", "eta"):  # learning is chosen at construction, with its schedule
        with pytest.raises(ValueError, match=f"'auto' \\(learning {name}\\) is chosen when"):
            setattr(lda, name, "auto")


def test_a_spec_made_directly_is_checked_by_the_table():
    with pytest.raises(ValueError, match=r"Invalid 'chunksize' parameter: 0"):
        params.ModelSpec(chunksize=0)
    with pytest.raises(ValueError, match=r"Invalid 'sampler' parameter: 'bogus'"):
        params.ModelSpec(sampler="bogus")
    assert params.ModelSpec(mh_steps=None, distributed=None).mh_steps is None


def test_distributed_takes_a_numpy_bool_and_nothing_else():
    lda = LdaModel(num_topics=2, distributed=np.False_)
    assert lda.distributed is False
    for bad in (1, 0, "yes"):
        with pytest.raises(ValueError, match=r"Invalid 'distributed' parameter: .* \(use None, "
                                             r"True or False\)"):
            LdaModel(num_topics=2, distributed=bad)


def test_ns_conf_is_checked_when_the_model_is_made(caplog):
    """One rule (the table's) for the constructor and the client: a typo fails at once."""
    with pytest.raises(ValueError, match=r"Invalid 'ns_conf' parameter: 5 \(a dict such as"):
        LdaModel(num_topics=2, ns_conf=5, distributed=False)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['hots'\] \(distlda uses host, "
                                         r"port and broadcast\)"):
        LdaModel(num_topics=2, ns_conf=dict(hots="10.0.0.1"), distributed=False)
    lda = LdaModel(num_topics=2, ns_conf=dict(host="10.0.0.1", hmac_key="x"), distributed=False)
    assert lda.ns_conf == {"host": "10.0.0.1"} and "ignoring hmac_key" in caplog.text
