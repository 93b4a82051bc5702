"""The engine's one interface: the recorder protocol and the execution policy."""

import pytest

from stellarnet.errors import ConfigError
from stellarnet.train.engine import EpochRecorder
from stellarnet.train.policy import STACKED_POLICY, ExecutionPolicy
from stellarnet.train.recorder import Recorder
from stellarnet.train.stacked import StackedRecorder


def test_auto_engine_traces_long_runs_only():
    policy = ExecutionPolicy()
    assert policy.engine_for(policy.graph_min_epochs - 1) == "eager"
    assert policy.engine_for(policy.graph_min_epochs) == "graph"
    assert ExecutionPolicy(jit_compile=True).engine_for(2) == "graph"
    assert ExecutionPolicy(engine="eager").engine_for(10_000) == "eager"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"engine": "fast"}, "engine must be one of"),
        ({"engine": "eager", "jit_compile": True}, "needs the graph engine"),
    ],
)
def test_bad_policies_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        ExecutionPolicy(**settings)


def test_xla_chunks_hold_whole_records():
    assert ExecutionPolicy(xla_chunk_epochs=1024).xla_chunk_rows(50) == 20
    assert ExecutionPolicy(xla_chunk_epochs=10).xla_chunk_rows(50) == 1


@pytest.mark.parametrize("recorder", [Recorder, StackedRecorder])
def test_both_recorders_provide_the_protocol(recorder):
    wanted = {name for name in dir(EpochRecorder) if not name.startswith("_")} | set(
        EpochRecorder.__annotations__
    )
    assert wanted <= set(dir(recorder)) | {"data"}  # data is set per instance
    assert isinstance(recorder.default_policy, ExecutionPolicy)


def test_stacked_groups_run_side_by_side_on_the_default_executor():
    assert STACKED_POLICY.executor == "" and STACKED_POLICY.engine == "graph"
    assert Recorder.default_policy.executor == "SINGLE_THREADED_EXECUTOR"


@pytest.mark.parametrize(
    "settings", [{}, {"dropout": 0.1}, {"l2": 1e-3}, {"hidden": (4, 3), "activation": "tanh"}]
)
def test_a_specs_plain_flag_matches_the_model_it_builds(settings):
    """'Plain Dense net' is one test, asked of a ModelSpec or of the Keras model it builds."""
    from stellarnet.train.chain import DenseChain
    from stellarnet.train.models import ModelSpec, build_model

    spec = ModelSpec(**settings)
    assert DenseChain(build_model(spec, 0)).plain == spec.plain
