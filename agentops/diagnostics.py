"""diagnose_session(): the facts of the running client as a plain dict, plus rules that
turn those facts into issues and recommendations. Rendering lives in ``report``."""

from __future__ import annotations

from typing import Any

from agentops import vocabulary as v
from agentops.client import Client

NOT_INITIALIZED = "AgentOps SDK not initialized"
CALL_INIT = "Call agentops.init() to initialize the SDK"
NO_TOKEN = "Authentication failed - no JWT token available"
CHECK_KEY = "Check if API key is valid and network connectivity is working"
HEALTHY = "Session appears healthy - data should be reaching backend"


def diagnose(client: Client | None) -> dict[str, Any]:
    if client is None:
        return {
            "sdk_initialized": False, "client_initialized": False, "has_api_key": False,
            "has_auth_token": False, "active_traces": 0, "exporter_healthy": False,
            "export_stats": {}, "auth": {}, "issues": [NOT_INITIALIZED],
            "recommendations": [CALL_INIT],
        }
    auth = client.tracker.snapshot()
    stats = client.stats.snapshot()
    healthy = auth.has_token and stats["last_result_ok"] is not False
    diagnosis: dict[str, Any] = {
        "sdk_initialized": True,
        "client_initialized": not client.closed,
        "has_api_key": bool(client.config.api_key),
        "has_auth_token": auth.has_token,
        "active_traces": len(client.traces),
        "exporter_healthy": healthy,
        "export_stats": stats,
        "auth": auth.as_dict(),
        "config": client.config.public(),
    }
    issues, recommendations = [], []
    if auth.state == v.FAILED or (auth.state == v.PENDING and not auth.has_token):
        issues.append(NO_TOKEN)
        recommendations.append(CHECK_KEY)
    if not issues:
        recommendations.append(HEALTHY)
    diagnosis["issues"], diagnosis["recommendations"] = issues, recommendations
    return diagnosis
