"""The ``agentops`` command. ``agentops doctor`` answers, in one run, whether this setup can
deliver session data: the connectivity test, the effective configuration with where
each value came from, versions, TLS (OpenSSL and the CA bundle in use) and proxy settings.

``doctor_report()`` collects the facts into a plain dict; ``render_doctor_report()`` and
``--json`` only present them. The output is safe to paste into a support ticket: the API
key appears masked, the token never, proxy credentials as ``***``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import ssl
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import requests

from agentops import terminal
from agentops.config import (
    DEFAULT_API_ENDPOINT,
    DEFAULT_EXPORTER_ENDPOINT,
    MAX_SECONDS,
    SETTINGS,
    Config,
    ConfigError,
)
from agentops.diagnostics import CA_VARIABLES, PROXY_VARIABLES
from agentops.diagnostics.findings import plural
from agentops.helpers.debug_session import (
    print_connectivity_test_results,
    test_session_connectivity,
)
from agentops.http import mask_url_credentials
from agentops.redaction import redact, redact_data
from agentops.timestamps import iso

DISTRIBUTIONS = ("opentelemetry-api", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http",
                 "requests", "urllib3", "PyJWT", "protobuf")
DEFAULT_TIMEOUT = 15.0
FLUSH_TIMEOUT = 60.0

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128 + 2
"""Ctrl-C (SIGINT), as shells report a command it ended."""


def versions() -> dict[str, str | None]:
    from agentops import __version__

    found: dict[str, str | None] = {
        "agentops": __version__,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(terse=True),
    }
    for name in DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def tls_facts(environ: Mapping[str, str], url: str) -> dict[str, Any]:
    """The TLS library and the CA bundle the SDK's HTTPS requests to ``url`` verify against.

    The bundle is resolved as requests resolves it (it reads the process environment):
    ``REQUESTS_CA_BUNDLE``, then ``CURL_CA_BUNDLE``, else certifi's bundle.
    ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` only change OpenSSL's default paths, which
    requests does not use; set to another path than the bundle's, they are listed under
    ``not_used_by_requests``. ``environ`` supplies the variables named as the source.
    Returns ``{"openssl_version", "ca_bundle": {"path", "source", "kind"}, ...}``, kind
    ``file``, ``directory`` or ``missing``.
    """
    with requests.Session() as session:
        verify = session.merge_environment_settings(url, {}, None, None, None)["verify"]
    bundle: dict[str, Any]
    if verify is False:
        bundle = {"path": None, "source": "verification turned off", "kind": None}
    elif verify is True:
        path = requests.utils.extract_zipped_paths(requests.utils.DEFAULT_CA_BUNDLE_PATH)
        try:
            certifi = f"certifi {importlib.metadata.version('certifi')}"
        except importlib.metadata.PackageNotFoundError:
            certifi = "requests.certs.where()"
        bundle = {"path": path, "source": f"{certifi} (requests' default)"}
    else:
        source = next((name for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
                       if environ.get(name) == verify), "the environment")
        bundle = {"path": verify, "source": source}
    if bundle["path"] is not None:
        bundle["kind"] = ("directory" if os.path.isdir(bundle["path"])
                          else "file" if os.path.isfile(bundle["path"]) else "missing")
    ignored = {name: environ[name] for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")
               if environ.get(name) and environ[name] != bundle["path"]}
    return {"openssl_version": ssl.OPENSSL_VERSION, "ca_bundle": bundle,
            "not_used_by_requests": ignored}


def _tls_lines(tls: Mapping[str, Any]) -> list[str]:
    if not tls:
        return []
    bundle = tls.get("ca_bundle") or {}
    lines = ["", "TLS:", f"  {tls.get('openssl_version')} (Python's ssl module)"]
    if bundle.get("path") is None:
        lines.append(f"  CA bundle: none ({bundle.get('source')})")
    elif bundle.get("kind") == "missing":
        lines.append(f"  CA bundle: {bundle['path']} (from {bundle.get('source')}): MISSING, "
                     "every HTTPS request fails until it names an existing file")
    else:
        lines.append(f"  CA bundle: {bundle['path']} ({bundle.get('kind')}, from "
                     f"{bundle.get('source')})")
    for name, value in (tls.get("not_used_by_requests") or {}).items():
        lines.append(f"  {name}={value} is set, but requests does not read it: set "
                     "REQUESTS_CA_BUNDLE to that path to verify against it")
    return lines


def proxy_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """Proxy variables in any case, credentials masked (requests reads both cases)."""
    return {name: mask_url_credentials(value) for name, value in sorted(environ.items())
            if name in PROXY_VARIABLES and value.strip()}


def configuration(connectivity: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every setting: the effective value (key masked), its source and its default, as the
    connectivity test resolved them."""
    public = connectivity.get("config") or {}
    sources = connectivity.get("sources") or {}
    problems = connectivity.get("config_errors") or {}
    rows = []
    for setting in SETTINGS:
        row: dict[str, Any] = {"name": setting.name, "value": public.get(setting.name),
                               "source": sources.get(setting.name, "default"),
                               "env": setting.env, "default": setting.show(setting.default)}
        if setting.name in problems:
            row["error"] = problems[setting.name]
        rows.append(row)
    return rows


def doctor_report(api_key: str | None = None, endpoint: str | None = None,
                  exporter_endpoint: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                  environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The doctor's facts as a JSON-serialisable dict, redacted; never raises for a bad
    setting.

    Settings come from the arguments and the process environment; ``environ`` only
    supplies the proxy and certificate variables shown."""
    environ = os.environ if environ is None else environ
    connectivity = test_session_connectivity(api_key=api_key, timeout=timeout, endpoint=endpoint,
                                             exporter_endpoint=exporter_endpoint)
    otlp_url = (connectivity.get("endpoints") or {}).get("otlp") or DEFAULT_EXPORTER_ENDPOINT
    return redact_data({
        "passed": bool(connectivity.get("test_passed")),
        "generated_at": iso(time.time()),
        "versions": versions(),
        "configuration": configuration(connectivity),
        "proxies": proxy_settings(environ),
        "ca_bundles": {name: environ[name] for name in CA_VARIABLES if environ.get(name)},
        "tls": tls_facts(environ, otlp_url),
        "opentelemetry_variables": sorted(name for name in environ if name.startswith("OTEL_")),
        "instrumentation": llm_instrumentation(),
        "storage": storage_facts(api_key, endpoint, exporter_endpoint),
        "connectivity": connectivity,
        "issues": list(connectivity.get("issues", [])),
        "recommendations": list(connectivity.get("recommendations", [])),
    })


def storage_facts(api_key: str | None, endpoint: str | None,
                  exporter_endpoint: str | None) -> dict[str, Any]:
    """Offline storage for these settings: ``{enabled, directory, pending_batches,
    pending_spans, bytes, oldest_at}`` (``error`` when the store cannot be read)."""
    from agentops.client import Client, storage_status

    config = Config.resolve(check_all=True, api_key=api_key, endpoint=endpoint,
                            exporter_endpoint=exporter_endpoint)
    return storage_status(config, Client.open_store(config), fresh=True)


def _storage_lines(facts: Mapping[str, Any]) -> list[str]:
    lines = ["", "Offline storage (spans kept until the receiver accepts them):"]
    if not facts.get("enabled"):
        why = "off" if facts.get("directory") is None else "unused without an API key"
        return lines + [f"  {why}"]
    lines.append(f"  {facts.get('directory')}")
    if facts.get("error"):
        lines.append(f"  cannot be read: {facts['error']}")
    elif facts.get("write_error"):
        lines.append(f"  cannot be written: {facts['write_error']}: spans that cannot be "
                     "delivered would be lost; point storage_directory "
                     "(AGENTOPS_STORAGE_DIRECTORY) at a writable directory")
    elif facts.get("pending_batches"):
        lines.append(f"  {plural(facts['pending_spans'], 'span')} "
                     f"({plural(facts['pending_batches'], 'batch', 'batches')}, "
                     f"{facts['bytes']} bytes) waiting since {facts['oldest_at']}: "
                     "`agentops flush` sends them now")
    else:
        lines.append("  nothing waiting")
    return lines


def llm_instrumentation() -> dict[str, Any]:
    """Per supported LLM library: installed version and instrumentor, as a program on this
    machine would find them (doctor imports neither, so neither is active here)."""
    from agentops.instrumentation import instrumentation

    return {name: {key: facts[key] for key in ("installed", "version", "instrumentor",
                                               "instrumentor_version", "entry_point",
                                               "pip_install")}
            for name, facts in instrumentation.snapshot().items()}


def _instrumentation_lines(facts: Mapping[str, Any]) -> list[str]:
    lines = ["", "LLM instrumentation (instrument_llm_calls activates it when the library is "
             "imported):"]
    for name, lib in facts.items():
        if not lib.get("installed"):
            lines.append(f"  {name:<10} not installed")
        elif lib.get("instrumentor"):
            lines.append(f"  {name:<10} {lib.get('version')}: instrumentor "
                         f"{lib['instrumentor']} {lib.get('instrumentor_version')}")
        else:
            lines.append(f"  {name:<10} {lib.get('version')}: no instrumentor installed, "
                         f"calls not recorded ({lib.get('pip_install')})")
    return lines


def _shown(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    return str(value)


def render_doctor_report(report: Mapping[str, Any], stream: TextIO) -> None:
    dot = " \u00b7 " if terminal.can_encode(stream, "\u00b7") else " | "
    found = report.get("versions", {})
    lines = ["AgentOps doctor", "", "Versions:"]
    lines.append("  " + dot.join(f"{name} {found[name]}" for name in ("agentops", "python")
                                 if found.get(name)) + f"{dot}{found.get('platform')}")
    lines.append("  " + dot.join(f"{name} {found.get(name) or 'not installed'}"
                                 for name in DISTRIBUTIONS))
    lines += ["", "Configuration (value, where it came from):"]
    for row in report.get("configuration", []):
        line = f"  {row['name']:<24} {_shown(row['value']):<40} {row['source']}"
        if row.get("error"):
            line += f"  (refused: {row['error']})"
        lines.append(line.rstrip())
    proxies = report.get("proxies") or {}
    lines += ["", "Proxy settings:"]
    lines += [f"  {name}={value}" for name, value in proxies.items()] or ["  none"]
    lines += _tls_lines(report.get("tls") or {})
    if report.get("opentelemetry_variables"):
        lines += ["", "OpenTelemetry variables set (values not shown): "
                  + ", ".join(report["opentelemetry_variables"])]
    lines += _instrumentation_lines(report.get("instrumentation") or {})
    lines += _storage_lines(report.get("storage") or {})
    lines.append("")
    terminal.write_text(stream, redact("\n".join(lines) + "\n"))
    print_connectivity_test_results(report.get("connectivity", {}), stream)


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < seconds <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds above 0 and at most {MAX_SECONDS:g}, got {text!r}")
    return seconds


def _parser() -> argparse.ArgumentParser:
    from agentops import __version__

    parser = argparse.ArgumentParser(prog="agentops", description="AgentOps SDK tools.")
    parser.add_argument("--version", action="version", version=f"agentops {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    doctor = commands.add_parser(
        "doctor", help="check that this setup can deliver session data to AgentOps",
        description="Run the connectivity test and show the effective configuration, versions "
                    "and proxy settings. Safe to paste into a support ticket: the API key is "
                    "masked and the token never shown. Exit status: 0 passed, 1 failed, "
                    "2 usage error.")
    doctor.add_argument("--api-key", help="project API key (default: AGENTOPS_API_KEY)")
    doctor.add_argument("--endpoint", help="API base URL (default: AGENTOPS_API_ENDPOINT or "
                                           f"{DEFAULT_API_ENDPOINT})")
    doctor.add_argument("--exporter-endpoint",
                        help="OTLP traces URL (default: AGENTOPS_EXPORTER_ENDPOINT or "
                             f"{DEFAULT_EXPORTER_ENDPOINT})")
    doctor.add_argument("--timeout", type=_positive_seconds, default=DEFAULT_TIMEOUT,
                        help=f"seconds the whole test may take (default {DEFAULT_TIMEOUT:g})")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(command_parser=doctor)
    flush = commands.add_parser(
        "flush", help="send what offline storage holds now",
        description="Send the spans offline storage kept for this API key and exporter "
                    "endpoint (programs send them on their own once the receiver accepts "
                    "again). Exit status: 0 when everything stored was accepted, 1 otherwise "
                    "(the cause is printed), 2 usage error.")
    flush.add_argument("--api-key", help="project API key (default: AGENTOPS_API_KEY)")
    flush.add_argument("--endpoint", help="API base URL (default: AGENTOPS_API_ENDPOINT)")
    flush.add_argument("--exporter-endpoint",
                       help="OTLP traces URL the spans were meant for (default: "
                            "AGENTOPS_EXPORTER_ENDPOINT)")
    flush.add_argument("--storage-directory",
                       help="offline storage directory (default: AGENTOPS_STORAGE_DIRECTORY "
                            "or the user cache directory)")
    flush.add_argument("--timeout", type=_positive_seconds, default=FLUSH_TIMEOUT,
                       help=f"seconds the whole flush may take (default {FLUSH_TIMEOUT:g})")
    flush.set_defaults(command_parser=flush)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentops`` console script; returns the exit status (1, without
    a traceback, when the reader of its output goes away, as with ``| head``)."""
    return terminal.quiet_on_broken_pipe(lambda: _command(argv))


def _command(argv: Sequence[str] | None) -> int:
    parser = _parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # said by the command's own parser, so its usage is what is shown
            getattr(args, "command_parser", parser).error(
                f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exit_request:  # argparse exits 2 on bad usage, 0 for --help
        return exit_request.code if isinstance(exit_request.code, int) else EXIT_USAGE
    if args.command == "flush":
        return _flush(args)
    if args.command != "doctor":
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    report = doctor_report(api_key=args.api_key, endpoint=args.endpoint,
                           exporter_endpoint=args.exporter_endpoint, timeout=args.timeout)
    if args.json:
        terminal.write_text(sys.stdout, redact(json.dumps(report, indent=2)) + "\n")
    else:
        render_doctor_report(report, sys.stdout)
    return EXIT_PASSED if report["passed"] else EXIT_FAILED


def _flush(args: argparse.Namespace) -> int:
    from agentops.export.replay import flush_stored

    try:
        config = Config.resolve(api_key=args.api_key, endpoint=args.endpoint,
                                exporter_endpoint=args.exporter_endpoint,
                                storage_directory=args.storage_directory)
    except ConfigError as error:
        terminal.write_text(sys.stderr, redact(f"agentops flush: {error}") + "\n")
        return EXIT_USAGE
    try:
        report = flush_stored(config, args.timeout)
    except KeyboardInterrupt:
        from agentops.client import Client, storage_status

        left = storage_status(config, Client.open_store(config), fresh=True)
        terminal.write_text(sys.stderr, redact(
            f"agentops flush: interrupted; {plural(left['pending_spans'], 'span')} "
            f"({plural(left['pending_batches'], 'batch', 'batches')}) still stored in "
            f"{left['directory']}") + "\n")
        return EXIT_INTERRUPTED
    terminal.write_text(sys.stdout, redact("\n".join(report.lines())) + "\n")
    return EXIT_PASSED if report.ok else EXIT_FAILED
