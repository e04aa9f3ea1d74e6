"""environment_defaults: set what the user has not, for the block only."""

import os

from multitask_dr.environment import environment_defaults


def test_defaults_apply_inside_the_block_only_and_never_override_the_user(monkeypatch):
    monkeypatch.delenv("MTDR_TEST_A", raising=False)
    monkeypatch.setenv("MTDR_TEST_B", "user")
    with environment_defaults(MTDR_TEST_A="1", MTDR_TEST_B="ours"):
        assert os.environ["MTDR_TEST_A"] == "1" and os.environ["MTDR_TEST_B"] == "user"
    assert "MTDR_TEST_A" not in os.environ and os.environ["MTDR_TEST_B"] == "user"
