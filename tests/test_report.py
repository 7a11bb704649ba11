"""print_session_status() rendering: the documented layout to the character, colour only
where wanted, ASCII where the console cannot encode the marks, and never an exception."""

from __future__ import annotations

import io

import pytest

import agentops
from agentops.client import replace_current
from agentops.report import print_report, render_report
from tests.streams import FailingStream, Terminal

DOCUMENTED = """\
==================================================
AgentOps Session Diagnostic Report
==================================================

Status:
  \u2713 SDK Initialized: True
  \u2713 Client Initialized: True
  \u2713 API Key Present: True
  \u2717 Authenticated: False
  \u2717 Exporter Healthy: False

Active Traces: 1

Export Statistics:
  Total Attempts: 3
  Successful: 0
  Failed: 3
  Success Rate: 0.0%

Issues Found:
  \u2022 Authentication failed - no JWT token available

Recommendations:
  \u2022 Check if API key is valid and network connectivity is working
==================================================
"""

FAILED_AUTH = {
    "sdk_initialized": True, "client_initialized": True, "has_api_key": True,
    "has_auth_token": False, "active_traces": 1, "exporter_healthy": False,
    "export_stats": {"total_attempts": 3, "successful_exports": 0, "failed_exports": 3,
                     "success_rate": 0.0},
    "issues": ["Authentication failed - no JWT token available"],
    "recommendations": ["Check if API key is valid and network connectivity is working"],
}

DETAILED = dict(
    FAILED_AUTH,
    export_stats=dict(FAILED_AUTH["export_stats"], spans_made=30, spans_exported=0,
                      spans_failed=30, spans_pending=0,
                      failures_by_cause={"not_authenticated": 30},
                      last_error="no token: authentication failed (invalid_key)",
                      last_error_cause="not_authenticated",
                      last_error_at="2026-01-01T10:00:00.000+00:00"),
    auth={"state": "failed", "reason": "invalid_key", "http_status": 403,
          "detail": "Invalid API key", "attempts": 1, "since": "2026-01-01T09:59:59.000+00:00"},
)


def printed(diagnosis, stream=None, **kwargs) -> str:
    stream = stream if stream is not None else io.StringIO()
    print_report(diagnosis, stream, **kwargs)
    return stream.getvalue()


def test_failed_auth_report_matches_the_documented_layout_exactly():
    assert render_report(FAILED_AUTH, colour=False, unicode=True) == DOCUMENTED


def test_print_report_to_a_plain_stream_is_the_documented_layout_without_colour():
    assert printed(FAILED_AUTH) == DOCUMENTED


def test_details_appear_only_between_export_statistics_and_issues():
    text = render_report(DETAILED, colour=False, unicode=True)
    head, tail = DOCUMENTED.split("  Success Rate: 0.0%\n")
    assert text.startswith(head + "  Success Rate: 0.0%\n")
    assert text.endswith("\nIssues Found:" + tail.split("\nIssues Found:")[1])
    middle = text[len(head):-len(tail)]
    assert "  Spans: 30 made, 0 exported, 30 not sent, 0 pending" in middle
    assert "  Not Sent By Cause: not_authenticated 30" in middle
    assert "  Last Error: not_authenticated: no token" in middle
    assert "Authentication:\n  State: failed (invalid_key, HTTP 403)" in middle
    assert "  Detail: Invalid API key" in middle


def test_marks_are_green_and_red_when_colour_is_forced_on():
    text = printed(FAILED_AUTH, colour=True)
    assert "\x1b[32m\u2713\x1b[0m SDK Initialized: True" in text
    assert "\x1b[31m\u2717\x1b[0m Authenticated: False" in text


def test_a_tty_gets_colour_and_no_color_turns_it_off(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\x1b[" in printed(FAILED_AUTH, Terminal())
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in printed(FAILED_AUTH, Terminal())


@pytest.mark.parametrize("encoding", ["cp1252", "ascii"])
def test_a_console_that_cannot_encode_the_marks_gets_ascii_marks_and_no_error(encoding):
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding=encoding)  # strict errors: would raise
    diagnosis = dict(DETAILED, issues=["server said \u201cno\u201d \u2192 \U0001f534"])
    print_report(diagnosis, stream)
    stream.flush()
    text = raw.getvalue().decode(encoding)
    assert "  [OK] SDK Initialized: True" in text
    assert "  [NO] Authenticated: False" in text
    assert "  * Check if API key is valid" in text
    assert "\u2022" not in text, "marks switch to ASCII together, never mixed"
    assert text.endswith("=" * 50 + "\n")


LOST_REPORT = "could not print the session report"


def test_a_closed_stream_does_not_raise_and_the_lost_report_is_logged(caplog):
    stream = io.StringIO()
    stream.close()
    with caplog.at_level("DEBUG", logger="agentops"):
        print_report(FAILED_AUTH, stream)
    assert [r.getMessage() for r in caplog.records] == [LOST_REPORT]


def test_a_stream_whose_write_raises_does_not_raise_and_the_lost_report_is_logged(caplog):
    stream = FailingStream()
    with caplog.at_level("DEBUG", logger="agentops"):
        print_report(FAILED_AUTH, stream)
    assert stream.attempts == [DOCUMENTED], "the whole report was offered to the stream"
    assert [r.getMessage() for r in caplog.records] == [LOST_REPORT]


def test_default_stream_is_sys_stdout_looked_up_at_call_time(capsys):
    print_report(FAILED_AUTH)
    assert capsys.readouterr().out == DOCUMENTED


def test_not_initialized_report_shows_zero_statistics_and_the_init_advice():
    replace_current(None)
    stream = io.StringIO()
    agentops.print_session_status(stream)
    text = stream.getvalue()
    assert "  \u2717 SDK Initialized: False" in text
    assert "Active Traces: 0" in text
    assert ("  Total Attempts: 0\n  Successful: 0\n  Failed: 0\n"
            "  Success Rate: n/a (nothing sent yet)\n") in text
    assert "  \u2022 AgentOps SDK not initialized" in text
    assert "  \u2022 Call agentops.init() to initialize the SDK" in text


def test_without_issues_the_section_says_none_and_recommendations_are_kept():
    healthy = dict(FAILED_AUTH, has_auth_token=True, exporter_healthy=True, issues=[],
                   recommendations=["Session appears healthy - data should be reaching backend"])
    text = render_report(healthy, colour=False, unicode=True)
    assert "\nIssues Found:\n  None\n\nRecommendations:\n" in text
    assert "  \u2022 Session appears healthy - data should be reaching backend\n" in text


def test_odd_values_in_a_diagnosis_do_not_break_the_report():
    text = printed({"issues": "one issue", "export_stats": None, "active_traces": "x",
                    "auth": {"state": None}})
    assert "  \u2022 one issue" in text and "Total Attempts: 0" in text
    assert printed(None).startswith("=" * 50)
