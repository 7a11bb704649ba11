"""Every outcome of the token call maps to one reason of the vocabulary (HTTP faked with
`responses`; the real server is exercised in the end-to-end tests)."""

from __future__ import annotations

import time

import jwt
import pytest
import requests
import responses

from agentops.api import AgentOpsAPI

BASE = "https://api.example.test"
URL = f"{BASE}/v3/auth/token"
KEY = "6f4e1c2a-9b1d-4c3e-8f00-123456787f79"


def a_jwt(**claims) -> str:
    return jwt.encode({"project_id": "p1", "exp": int(time.time()) + 3600, **claims},
                      "s" * 32, algorithm="HS256")


@responses.activate
def test_200_with_a_jwt_is_authenticated_with_project_and_expiry():
    token = a_jwt()
    responses.post(URL, json={"token": token, "project_id": "p1", "project_prem_status": "free"})
    outcome = AgentOpsAPI(BASE).fetch_token(KEY, timeout=2)
    assert outcome.ok and outcome.reason is None and outcome.http_status == 200
    assert outcome.project_id == "p1" and outcome.expires_at > time.time()
    assert token not in repr(outcome)


@pytest.mark.parametrize("status, body, reason", [
    (400, {"error": "Invalid API key format"}, "invalid_key_format"),
    (401, {"error": "Unauthorized"}, "invalid_key"),
    (403, {"error": "Invalid API key"}, "invalid_key"),
    (500, {"error": "Authentication failed"}, "server_error"),
    (503, {"error": "unavailable"}, "server_error"),
    (418, {"error": "teapot"}, "unexpected_status"),
])
@responses.activate
def test_error_statuses_map_to_their_reason_with_the_servers_words(status, body, reason):
    responses.post(URL, json=body, status=status)
    outcome = AgentOpsAPI(BASE).fetch_token(KEY, timeout=2)
    assert (outcome.reason, outcome.http_status) == (reason, status)
    assert outcome.detail == body["error"] and not outcome.ok


@pytest.mark.parametrize("body, content_type", [
    ("<html><body>Sign in to the Wi-Fi</body></html>", "text/html"),
    ('{"token": "not-a-jwt"}', "application/json"),
    ('{"token": 42}', "application/json"),
    ('{"no_token": true}', "application/json"),
    ("{broken", "application/json"),
])
@responses.activate
def test_200_without_a_usable_token_is_bad_response(body, content_type):
    responses.post(URL, body=body, content_type=content_type)
    outcome = AgentOpsAPI(BASE).fetch_token(KEY, timeout=2)
    assert outcome.reason == "bad_response" and outcome.http_status == 200


@responses.activate
def test_redirect_is_not_followed_and_is_unexpected_status():
    responses.post(URL, status=302, headers={"Location": URL})
    outcome = AgentOpsAPI(BASE).fetch_token(KEY, timeout=2)
    assert outcome.reason == "unexpected_status" and outcome.http_status == 302
    assert len(responses.calls) == 1


@responses.activate
def test_oversized_body_is_bad_response_without_reading_it_all():
    responses.post(URL, body=b"x" * (10 * 1024 * 1024), content_type="application/json")
    outcome = AgentOpsAPI(BASE).fetch_token(KEY, timeout=2)
    assert outcome.reason == "bad_response" and "larger than" in outcome.detail


@pytest.mark.parametrize("error, reason", [
    (requests.exceptions.ConnectionError("[Errno 111] Connection refused"), "connection_error"),
    (requests.exceptions.ConnectTimeout("connect timed out"), "timeout"),
    (requests.exceptions.ReadTimeout("read timed out"), "timeout"),
    (requests.exceptions.SSLError("CERTIFICATE_VERIFY_FAILED"), "tls_error"),
])
@responses.activate
def test_transport_errors_map_to_their_reason_naming_the_endpoint(error, reason):
    responses.post(URL, body=error)
    outcome = AgentOpsAPI(BASE).fetch_token(KEY, timeout=2)
    assert outcome.reason == reason and outcome.http_status is None
    assert "api.example.test:443" in outcome.detail


@responses.activate
def test_verify_token_reports_acceptance_without_echoing_the_key():
    responses.get(URL, json={"project_id": "p1", "api_key": KEY, "expires_at": "2030-01-01T00:00:00Z"})
    outcome = AgentOpsAPI(BASE).verify_token(a_jwt(), timeout=2)
    assert outcome.reason is None and outcome.payload["expires_at"]
    assert KEY not in str(outcome.payload)
    responses.get(URL, json={"error": "expired"}, status=401)
    assert AgentOpsAPI(BASE).verify_token(a_jwt(), timeout=2).reason == "invalid_key"
