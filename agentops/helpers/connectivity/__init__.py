"""The connectivity test's parts; its public entry points are in
:mod:`agentops.helpers.debug_session`.

- :mod:`.records`: what one step found (:class:`~.records.StepResult`), as data.
- :mod:`.probe`: one deadline, and the reachability of one endpoint (DNS, TCP, TLS, HTTP).
- :mod:`.steps`: the shared context, one small function per step, and ``STEPS``, the
  ordered table that says which step needs what.
- :mod:`.render`: the result as text for a terminal, or as JSON.
"""
