"""The history schema: one place for column names, row layout and the stacked permutation."""

import numpy as np
import pytest

from stellarnet.errors import ConfigError
from stellarnet.schema import HistorySchema, history_frame, parameter_names, parse_column


def test_hr_net_columns_follow_the_assignments_names():
    schema = HistorySchema((1, 6, 1))
    columns = schema.columns
    assert columns[:3] == ["epoch", "output", "loss"]
    assert columns[3:9] == [f"w^1_{i}" for i in range(1, 7)]
    assert columns[9:15] == [f"b^1_{i}" for i in range(1, 7)]
    assert columns[15:21] == [f"w^2_{i}" for i in range(1, 7)] and columns[21] == "b^2_1"
    assert columns[22:28] == [f"g^1_{i}" for i in range(1, 7)] and columns[-1] == "gb^2_1"
    assert len(columns) == 3 + 2 * schema.parameter_count == 3 + 2 * 19


def test_record_groups_validation_and_activations_shape_the_row():
    schema = HistorySchema((2, 3, 1), ("biases", "activations"), validation=True)
    assert schema.columns == [
        "epoch", "output", "loss", "val_loss",
        "b^1_1", "b^1_2", "b^1_3", "b^2_1",
        "a^1_1", "a^1_2", "a^1_3",
    ]  # fmt: skip
    # biases sit after each layer's kernel in the flat parameter vector (w1: 6, b1: 3, w2: 3)
    assert schema.recorded_positions.tolist() == [6, 7, 8, 12]


def test_layers_without_bias_have_no_bias_columns():
    schema = HistorySchema((1, 2, 1), biases=(False, True))
    assert schema.parameter_names("b") == ["b^2_1"]
    assert schema.parameter_count == 2 + 2 + 1


def test_unknown_record_group_is_named():
    with pytest.raises(ConfigError, match="unknown record group"):
        HistorySchema((1, 6, 1), ("kernels", "weights"))


def test_stacked_row_index_maps_a_graph_row_back_to_each_members_row():
    """Two members, parameters interleaved member by member (graph order 'parameter-major');
    a graph row built from known per-member rows comes back as those rows."""
    schema = HistorySchema((1, 2, 1))
    members, count = 2, schema.parameter_count
    params = np.arange(members * count, dtype=float).reshape(members, count) + 100
    grads = -params
    order = (np.arange(count)[:, None] + np.arange(members)[None, :] * count).ravel()
    outputs, losses = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    graph_row = np.concatenate([outputs, losses, params.ravel()[order], grads.ravel()[order]])
    index = schema.stacked_row_index(order, members)
    for k in range(members):
        expected = [outputs[k], losses[k], *params[k], *grads[k]]
        assert graph_row[index[k]].tolist() == expected


def test_parameter_names_and_parse_column_round_trip():
    names = parameter_names((1, 6, 1), "g")
    assert names[0] == "g^1_1" and names[-1] == "g^2_6"
    assert [parse_column(n) for n in names[:2]] == [("g", 1, 1), ("g", 1, 2)]


def test_history_frame_copies_member_rows_to_float64_columns():
    columns = ["epoch", "output", "loss"]
    rows = np.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], np.float32)  # [epochs, members, 2]
    frame = history_frame(rows, [0, 1, 0, 1], columns)
    assert frame["output"].tolist() == [1, 5, 3, 7] and frame["loss"].dtype == np.float64
