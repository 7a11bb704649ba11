"""Upstream agentops 0.4's ``agentops.sdk`` import paths (``agentops.sdk.decorators``,
``agentops.sdk.core``), kept so programs importing from them run unchanged."""
