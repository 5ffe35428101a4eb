from core import lifecycle as L


def test_forward_path_and_terminal_states():
    assert L.can_transition(L.QUEUED, L.PROVISIONING)
    assert L.can_transition(L.PROVISIONING, L.RUNNING)
    assert L.can_transition(L.RUNNING, L.COMPLETING)
    assert L.can_transition(L.COMPLETING, L.COMPLETED)
    assert not L.can_transition(L.QUEUED, L.COMPLETED)
    assert not L.can_transition(L.RUNNING, L.QUEUED)
    for t in L.TERMINAL:
        assert L.allowed_next(t) == frozenset()
    for s in L.LIVE:
        assert {L.FAILED, L.CANCELLED, L.BUDGET_STOPPED} <= L.allowed_next(s)


def test_sources_for_completed_is_only_completing():
    assert L.sources_for(L.COMPLETED) == (L.COMPLETING,)
