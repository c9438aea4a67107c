"""The node registry: what a round attempt changes in each node's snapshot."""

from __future__ import annotations

import dataclasses

from heliosfl.records import NodeInfo
from heliosfl.registry import NodeRegistry


def test_a_contribution_changes_only_what_it_should_and_keeps_every_other_field():
    registry = NodeRegistry()
    registry.register("a", 10)
    registry.note_round({}, {"a": "boom"}, committed=False)  # a failure: fills last_error
    before = {n.node_id: n for n in registry.snapshots()}["a"]
    before = dataclasses.replace(before, recoveries=3)
    registry._nodes["a"] = before

    registry.note_round(
        {"a": {"loss": 0.25, "val_accuracy": 0.75, "duration_secs": 0.5}}, {}, committed=True
    )

    after = registry.snapshots()[0]
    expected = dataclasses.replace(
        before,
        available=True,
        rounds_participated=before.rounds_participated + 1,
        consecutive_failures=0,
        last_loss=0.25,
        last_accuracy=0.75,
        last_duration_secs=0.5,
    )
    assert after == expected
    changed = {"rounds_participated", "consecutive_failures", "last_loss", "last_accuracy"}
    changed |= {"last_duration_secs", "available"}
    kept = {f.name for f in dataclasses.fields(NodeInfo)} - changed
    assert all(getattr(after, name) == getattr(before, name) for name in kept)
    assert after.last_error == "boom" and after.recoveries == 3 and after.failures == 1
