"""stellarnet.tfsettings: the TensorFlow settings of the entry points, and what a session
without them (oneDNN on, TensorFlow's default on Intel CPUs with AVX-512) still guarantees."""

from __future__ import annotations

import os
import subprocess
import sys

from stellarnet import tfsettings
from stellarnet.data.registry import PROJECT_ROOT


def test_apply_sets_what_is_unset_and_keeps_what_you_set(monkeypatch):
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "2")
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    tfsettings.apply()
    assert os.environ["TF_NUM_INTRAOP_THREADS"] == "2"
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"


def test_apply_after_tensorflow_started_warns_and_changes_nothing(monkeypatch, caplog):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    tfsettings.apply()
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ
    assert "before importing TensorFlow" in caplog.text


def test_the_tests_run_as_the_command_does():
    """The bit-for-bit tests assume the entry points' settings (conftest applies them)."""
    assert tfsettings.current() == tfsettings.SETTINGS | {"onednn": False}


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python (TensorFlow not yet started) with ``env`` changes;
    a variable given as "" is removed."""
    environ = {k: v for k, v in (os.environ | env).items() if v != ""}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=environ | {"TF_CPP_MIN_LOG_LEVEL": "2"},
        cwd=PROJECT_ROOT,
        check=True,
        timeout=300,
    )


def test_importing_stellarnet_first_turns_onednn_off():
    """TensorFlow's default on Intel CPUs with AVX-512 is on; stellarnet's import sets it off."""
    code = "import stellarnet, tensorflow; print(stellarnet.tfsettings.onednn_enabled())"
    assert python(code, TF_ENABLE_ONEDNN_OPTS="").stdout.split() == ["False"]


def test_training_with_onednn_on_says_so():
    code = """
import logging
import numpy as np
import tensorflow  # before stellarnet, with TF_ENABLE_ONEDNN_OPTS=1: oneDNN stays on
from stellarnet.data.datasets import DEFAULT_SEED
from stellarnet.train.models import HR_NET, build_model
from stellarnet.tfsettings import current
from stellarnet.train.recorder import Recorder
from stellarnet.train.engine import run_epochs

logging.basicConfig()
x = np.linspace(0, 1, 20, dtype=np.float32).reshape(-1, 1)  # SYNTHETIC
run_epochs(Recorder(build_model(HR_NET, DEFAULT_SEED), x, x, "adam", 0.1), 1)
print(current()["onednn"])
"""
    done = python(code, TF_ENABLE_ONEDNN_OPTS="1")
    assert done.stdout.split() == ["True"]
    assert "oneDNN kernels (TF_ENABLE_ONEDNN_OPTS=1)" in done.stderr
    assert "TF_ENABLE_ONEDNN_OPTS=0" in done.stderr  # the fix
