"""AuthTracker against the local backend: retries, no retries, single-flight refresh."""

from __future__ import annotations

import logging
import threading
import time

from agentops import vocabulary as v
from agentops.api import AgentOpsAPI
from agentops.auth import AuthTracker
from agentops.testing import Faults


def tracker_for(backend, key=None, **kwargs) -> AuthTracker:
    tracker = AuthTracker(AgentOpsAPI(backend.api_url), key or backend.api_key, **kwargs)
    tracker.start()
    return tracker


def test_transient_failures_are_retried_until_a_token_arrives(local_backend, caplog):
    local_backend.faults = Faults(auth_status=503)
    with caplog.at_level(logging.WARNING, logger="agentops"):
        tracker = tracker_for(local_backend)
        assert tracker.wait(3) == v.FAILED
        assert tracker.snapshot().reason == v.SERVER_ERROR and tracker.retrying
        local_backend.set_faults(auth_status=None)
        deadline = time.monotonic() + 10
        while not tracker.has_token and time.monotonic() < deadline:
            time.sleep(0.05)
    snap = tracker.snapshot()
    assert snap.state == v.AUTHENTICATED and snap.attempts >= 2 and snap.reason is None
    failures = [r for r in caplog.records if "Authentication failed" in r.getMessage()]
    assert len(failures) == 1 and "server_error" in failures[0].getMessage()
    tracker.close()


def test_definitive_failure_is_not_retried(local_backend):
    tracker = tracker_for(local_backend, key="00000000-0000-4000-8000-000000000000")
    assert tracker.wait(3) == v.FAILED
    time.sleep(1.5)
    snap = tracker.snapshot()
    assert (snap.reason, snap.http_status, snap.attempts) == (v.INVALID_KEY, 403, 1)
    assert not snap.retrying and len(local_backend.auth_requests) == 1


def test_many_exporters_asking_for_a_fresh_token_share_one_request(local_backend):
    local_backend.token_ttl = 2
    tracker = tracker_for(local_backend)
    tracker.wait(3)
    first = tracker.current_token()
    time.sleep(1.6)  # past half the token's life (at most 1.5 s of its 2-3 s): due for refresh
    tokens: list[str | None] = []
    barrier = threading.Barrier(16)

    def ask():
        barrier.wait()
        tokens.append(tracker.current_token())

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert local_backend.tokens_issued == 2
    assert len(set(tokens)) == 1 and tokens[0] != first


def test_snapshot_carries_expiry_and_project_but_never_the_token(local_backend):
    tracker = tracker_for(local_backend)
    tracker.wait(3)
    snap = tracker.snapshot().as_dict()
    assert snap["token_expires_at"] and snap["project_id"] == local_backend.project_id
    assert snap["authenticated_at"] and snap["has_token"] is True
    assert tracker.current_token() not in str(snap)


def test_without_a_key_the_state_is_disabled_and_nothing_is_requested(local_backend):
    tracker = AuthTracker(AgentOpsAPI(local_backend.api_url), None)
    tracker.start()
    assert tracker.wait(0) == v.DISABLED
    assert tracker.wait_for_token() is None and local_backend.auth_requests == []
