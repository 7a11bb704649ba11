"""LLM calls recorded through OpenTelemetry instrumentors: discovery, activation, and what
the diagnosis says about them.

For each supported client library (``SUPPORTED``) the instrumentor is found the standard
way, through the ``opentelemetry_instrumentor`` entry points its distribution declares,
and activated when the library is imported: at ``init`` if it already is, otherwise by a
post-import hook, so a program that never imports ``openai`` never pays for importing it.
Instrumentors are process-wide singletons (``BaseInstrumentor``): one the program already
activated is left alone, and ``instrument_llm_calls=False`` deactivates only those this
module activated.

The spans themselves are prepared for AgentOps in ``agentops.llm_spans``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from opentelemetry import trace

logger = logging.getLogger("agentops")

ENTRY_POINT_GROUP = "opentelemetry_instrumentor"

CONTENT_VARIABLE = "TRACELOOP_TRACE_CONTENT"
"""The switch the chosen instrumentors (OpenLLMetry's) read on every call to decide whether
prompts and completions are recorded; unset means record them."""


@dataclass(frozen=True)
class Library:
    """A supported LLM client library and the instrumentor chosen for it."""

    name: str
    """Import name, the entry point's name and the distribution's name alike."""
    instrumentor: str
    """Distribution of the chosen instrumentor (OpenLLMetry's)."""
    extra: str
    """``pip install 'agentops[<extra>]'`` installs that instrumentor."""
    native_scope: str | None = None
    """Instrumentation scope of spans the library emits by itself, if it does."""

    @property
    def pip_install(self) -> str:
        return f"pip install 'agentops[{self.extra}]'"


SUPPORTED: tuple[Library, ...] = (
    Library("openai", "opentelemetry-instrumentation-openai", "openai"),
    # anthropic 2.x traces its own calls (scope from anthropic._tracing.INSTRUMENTATION_SCOPE)
    Library("anthropic", "opentelemetry-instrumentation-anthropic", "anthropic",
            native_scope="com.anthropic.sdk.python"),
)
BY_NAME = {library.name: library for library in SUPPORTED}


@dataclass
class LibraryState:
    """What this process knows about one supported library's instrumentation."""

    library: Library
    activated_by: str | None = None
    """``agentops``, ``program`` (active before the SDK looked), or None (not active)."""
    error: str | None = None
    """Why activation failed (an exception or a version the instrumentor refuses)."""
    instrumentor: Any = None
    found: Found | None = None
    hooked: bool = False


@dataclass(frozen=True)
class Found:
    """An installed instrumentor, from its entry point."""

    entry_point: str
    """``module:Class`` as declared."""
    distribution: str | None
    version: str | None
    loader: Any = field(default=None, compare=False, repr=False)
    """The ``importlib.metadata.EntryPoint``."""

    @property
    def module(self) -> str:
        return self.entry_point.partition(":")[0]

    def load(self) -> Any:
        """The instrumentor (a process-wide singleton), or None if it cannot be loaded."""
        try:
            return self.loader.load()()
        except Exception:
            logger.debug("could not load %s", self.entry_point, exc_info=True)
            return None


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


class _Discovery:
    """Entry points and versions read once per process: scanning installed distributions
    costs milliseconds, and a diagnosis must cost microseconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instrumentors: dict[str, list[Found]] | None = None
        self._versions: dict[str, str | None] = {}

    def instrumentors(self, name: str) -> list[Found]:
        """Installed instrumentors registered under ``name``, the chosen distribution first."""
        with self._lock:
            if self._instrumentors is None:
                self._instrumentors = self._scan()
            return self._instrumentors.get(name, [])

    def version(self, distribution: str) -> str | None:
        with self._lock:
            if distribution not in self._versions:
                self._versions[distribution] = _distribution_version(distribution)
            return self._versions[distribution]

    def forget(self) -> None:
        with self._lock:
            self._instrumentors = None
            self._versions.clear()

    @staticmethod
    def _scan() -> dict[str, list[Found]]:
        found: dict[str, list[Found]] = {}
        try:
            entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        except Exception:  # a broken distribution's metadata must not break init
            logger.debug("could not read %s entry points", ENTRY_POINT_GROUP, exc_info=True)
            return found
        for entry_point in entry_points:
            library = BY_NAME.get(entry_point.name)
            if library is None:
                continue
            dist = getattr(entry_point, "dist", None)
            name = dist.metadata["Name"] if dist is not None else None
            version = dist.version if dist is not None else None
            found.setdefault(library.name, []).append(
                Found(entry_point.value, name, version, entry_point))
        for library_name, candidates in found.items():
            chosen = BY_NAME[library_name].instrumentor
            candidates.sort(key=lambda f: (f.distribution or "").lower() != chosen)
        return found


discovery = _Discovery()


# -- post-import hooks -------------------------------------------------------------------

class _HookedLoader(importlib.abc.Loader):
    """Runs the real loader, then the hook, then puts the real loader back on the module."""

    def __init__(self, loader: importlib.abc.Loader, hook: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._hook = hook

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        try:
            self._loader.exec_module(module)
        finally:
            module.__loader__ = self._loader
            if module.__spec__ is not None:
                module.__spec__.loader = self._loader
        self._hook(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Calls a hook once a watched top-level module has been imported.

    wrapt's ``register_post_import_hook`` does the same, but importing wrapt 2 imports
    asyncio: tens of milliseconds at ``init`` for every program that merely has an LLM
    library installed, which the start-up budget cannot afford.
    """

    def __init__(self) -> None:
        self.hooks: dict[str, Callable[[ModuleType], None]] = {}
        self._local = threading.local()

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        hook = self.hooks.get(fullname)
        if hook is None or getattr(self._local, "busy", False):
            return None
        self._local.busy = True  # find_spec below consults sys.meta_path, us included
        try:
            spec = importlib.util.find_spec(fullname)
        except (ImportError, ValueError):
            return None
        finally:
            self._local.busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        self.hooks.pop(fullname, None)
        spec.loader = _HookedLoader(spec.loader, hook)
        return spec


_finder = _PostImportFinder()


def when_imported(name: str, hook: Callable[[ModuleType], None]) -> None:
    """Call ``hook(module)`` now if ``name`` is imported, else right after its import."""
    module = sys.modules.get(name)
    if module is not None:
        hook(module)
        return
    _finder.hooks[name] = hook
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def _forget_hook(name: str) -> None:
    _finder.hooks.pop(name, None)
    if not _finder.hooks and _finder in sys.meta_path:
        sys.meta_path.remove(_finder)


# -- activation ----------------------------------------------------------------------------

class GatedTracerProvider(trace.TracerProvider):
    """The provider the SDK hands the instrumentors it activates: while ``open`` is false
    their tracers make non-recording spans (carrying the current span's context, so what
    nests inside stays in its trace).

    This is how ``instrument_llm_calls=False`` deactivates them: an instrumentor's own
    ``uninstrument()`` cannot be relied on (OpenLLMetry's openai instrumentor leaves its
    wrappers in place with current opentelemetry-instrumentation releases, and a second
    ``instrument()`` would then wrap twice and double every span).
    """

    def __init__(self, provider: trace.TracerProvider) -> None:
        self.provider = provider
        self.open = True

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _GatedTracer(self, self.provider.get_tracer(*args, **kwargs))


class _GatedTracer(trace.Tracer):
    def __init__(self, gate: GatedTracerProvider, tracer: trace.Tracer) -> None:
        self._gate = gate
        self._tracer = tracer

    def start_span(self, name: str, context: Any = None, *args: Any, **kwargs: Any) -> trace.Span:
        if self._gate.open:
            return self._tracer.start_span(name, context, *args, **kwargs)
        return trace.NonRecordingSpan(trace.get_current_span(context).get_span_context())

    def start_as_current_span(self, name: str, context: Any = None, *args: Any,
                              **kwargs: Any) -> Any:
        if self._gate.open:
            return self._tracer.start_as_current_span(name, context, *args, **kwargs)
        return trace.use_span(self.start_span(name, context), end_on_exit=False)

@dataclass
class _Settings:
    enabled: bool = False
    capture_content: bool = True
    gate: GatedTracerProvider | None = None
    content_variable_set: bool = False
    """True when the SDK set CONTENT_VARIABLE itself (and so must remove it again)."""


class Instrumentation:
    """The process's LLM instrumentation: which instrumentors are active and who activated
    them. One per process, like the instrumentors themselves."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._settings = _Settings()
        self.states: dict[str, LibraryState] = {lib.name: LibraryState(lib) for lib in SUPPORTED}

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    @property
    def capture_content(self) -> bool:
        return self._settings.capture_content

    def configure(self, enabled: bool, capture_content: bool,
                  provider: trace.TracerProvider | None) -> None:
        """Apply ``instrument_llm_calls`` and ``capture_content``; never raises."""
        with self._lock:
            self._settings.enabled = enabled
            self._settings.capture_content = capture_content
            if provider is not None and (self._settings.gate is None
                                         or self._settings.gate.provider is not provider):
                # Instrumentors keep the tracer they got when activated: only a gate
                # made before then can switch them off.
                self._settings.gate = GatedTracerProvider(provider)
            if self._settings.gate is not None:
                self._settings.gate.open = enabled
            self._apply_content_switch(enabled and not capture_content)
            for state in self.states.values():
                try:
                    if enabled:
                        self._watch(state)
                    else:
                        self._deactivate(state)
                except Exception as error:  # never let instrumentation break init
                    state.error = f"{type(error).__name__}: {error}"
                    logger.warning("LLM instrumentation of %s failed: %s", state.library.name,
                                   state.error)

    def _apply_content_switch(self, off: bool) -> None:
        settings = self._settings
        if off and not settings.content_variable_set and CONTENT_VARIABLE not in os.environ:
            os.environ[CONTENT_VARIABLE] = "false"
            settings.content_variable_set = True
        elif not off and settings.content_variable_set:
            os.environ.pop(CONTENT_VARIABLE, None)
            settings.content_variable_set = False

    def _watch(self, state: LibraryState) -> None:
        name = state.library.name
        if state.hooked or state.activated_by is not None:
            return  # a gated instrumentor of ours records again: configure opened the gate
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            return  # not installed: nothing to watch
        state.hooked = True
        when_imported(name, lambda module: self._on_import(state))

    def _on_import(self, state: LibraryState) -> None:
        with self._lock:
            state.hooked = False
            if not self._settings.enabled:
                return
            try:
                self._activate(state)
            except Exception as error:
                state.error = f"{type(error).__name__}: {error}"
                logger.warning("Could not activate the OpenTelemetry instrumentor for %s: %s; "
                               "its calls are not recorded", state.library.name, state.error)

    def _activate(self, state: LibraryState) -> None:
        from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

        library = state.library
        candidates = discovery.instrumentors(library.name)
        if not candidates:
            return  # the diagnosis reports it, with the pip install line
        instrumentors = [(found, found.load()) for found in candidates]
        for found, instrumentor in instrumentors:
            if instrumentor is not None and instrumentor.is_instrumented_by_opentelemetry:
                state.instrumentor, state.activated_by, state.error = instrumentor, "program", None
                state.found = found
                logger.debug("%s instrumentor %s was already active; left as it is",
                             library.name, found.entry_point)
                return
        found, instrumentor = instrumentors[0]
        if instrumentor is None:
            state.error = f"could not load {found.entry_point}"
            return
        conflict = get_dependency_conflicts(instrumentor.instrumentation_dependencies())
        if conflict is not None:
            state.error = str(conflict)
            logger.warning("The %s instrumentor (%s %s) does not support the installed %s: "
                           "%s; its calls are not recorded", library.name, found.distribution,
                           found.version, library.name, conflict)
            return
        kwargs: dict[str, Any] = {}
        if self._settings.gate is not None:
            kwargs["tracer_provider"] = self._settings.gate
        instrumentor.instrument(**kwargs)
        if instrumentor.is_instrumented_by_opentelemetry:
            state.instrumentor, state.activated_by, state.error = instrumentor, "agentops", None
            state.found = found
            logger.debug("Activated %s (%s %s)", found.entry_point, found.distribution,
                         found.version)
        else:
            state.error = f"{found.entry_point} did not activate"

    def _deactivate(self, state: LibraryState) -> None:
        """Unwatch the library; the gate (closed by ``configure``) silences an instrumentor
        the SDK activated, one the program activated is left alone."""
        _forget_hook(state.library.name)
        state.hooked = False

    # -- facts -----------------------------------------------------------------------

    def snapshot(self, spans: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
        """Per supported library: ``installed`` (bool), ``version``, ``imported`` (bool),
        ``instrumentor`` (distribution or None), ``instrumentor_version``, ``entry_point``,
        ``active`` (bool), ``activated_by`` (``agentops``, ``program`` or None), ``error``,
        ``spans`` (spans of its instrumentor this client exported or tried to) and, for a
        library that traces itself, ``library_spans``."""
        spans = spans or {}
        facts: dict[str, Any] = {}
        with self._lock:
            for name, state in self.states.items():
                library = state.library
                found = discovery.instrumentors(name)
                chosen = found[0] if found else None
                gate = self._settings.gate
                active = _is_active(state, chosen, gate is None or gate.open)
                entry: dict[str, Any] = {
                    "installed": discovery.version(name) is not None,
                    "version": discovery.version(name),
                    "imported": name in sys.modules,
                    "instrumentor": chosen.distribution if chosen else None,
                    "instrumentor_version": chosen.version if chosen else None,
                    "entry_point": chosen.entry_point if chosen else None,
                    "active": active,
                    "activated_by": (state.activated_by or "program") if active else None,
                    "error": state.error,
                    "spans": spans.get(name, {}).get("instrumentor", 0),
                    "pip_install": library.pip_install,
                }
                if library.native_scope:
                    entry["library_spans"] = spans.get(name, {}).get("library", 0)
                facts[name] = entry
        return facts



def _is_active(state: LibraryState, chosen: Found | None, gate_open: bool) -> bool:
    if state.instrumentor is not None:
        if state.activated_by == "agentops" and not gate_open:
            return False
        return bool(state.instrumentor.is_instrumented_by_opentelemetry)
    if chosen is None or chosen.module not in sys.modules:
        return False  # never imported, so never activated; importing it here would cost
    instrumentor = chosen.load()
    return bool(instrumentor is not None and instrumentor.is_instrumented_by_opentelemetry)


def scope_owners() -> dict[str, str]:
    """Module of every installed instrumentor of a supported library, and each library's
    own scope, mapped to the library: a span belongs to the library whose key its
    instrumentation scope name starts with."""
    owners: dict[str, str] = {}
    for library in SUPPORTED:
        for found in discovery.instrumentors(library.name):
            owners[found.module] = library.name
    return owners


instrumentation = Instrumentation()
