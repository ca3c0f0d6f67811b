"""The operating commands: decisions, submissions, resume, cancel and fork.

The ``delite`` command has no model and no tools of its own, so by default it only *records* decisions and
submissions (exactly what ``Agent.approve`` and friends with ``advance=False`` do); the execution then
continues when an application resumes it. With ``--agent MODULE:FACTORY`` (or ``DELITE_AGENT``) the command
builds the application's own ``Agent`` and continues the run itself; ``resume`` always needs one.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from delite_cli import _format as f
from delite_cli._errors import CliError

if TYPE_CHECKING:
    from delite import Agent, Response
    from delite_cli._target import Target

__all__ = [
    "BadInputError",
    "decode_json",
    "load_agent",
    "parse_json",
    "read_input",
    "run_cancel",
    "run_decide",
    "run_fork",
    "run_resolve",
    "run_resume",
    "run_submit_input",
    "run_submit_tool_results",
    "utf8",
]


def _usage(message: str) -> CliError:
    return CliError(message, kind="UsageError", exit_code=2)


def load_agent(spec: str, target: Target) -> Agent:
    """Build the application's agent from ``MODULE:ATTR``.

    ``ATTR`` is an ``Agent``, or a callable taking the data directory (a string; the store, when the CLI was
    given one) and returning one. The current directory is importable, as with ``python -m``. The agent must
    use this data directory (or store).
    """
    from delite import Agent

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise _usage(f"--agent must be MODULE:FACTORY, not {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise _usage(f"cannot import {module_name!r} for --agent: {e}") from e
    except Exception as e:  # the module itself failed: a syntax error, an exception at import
        raise _usage(f"importing {module_name!r} for --agent failed: {type(e).__name__}: {e}") from e
    attr_value: Any = module
    for part in attr.split("."):
        try:
            attr_value = getattr(attr_value, part)
        except AttributeError:
            raise _usage(f"{module_name!r} has no attribute {attr!r}") from None
    found: object = attr_value
    agent: object = found
    if not isinstance(found, Agent) and callable(found):
        agent = _build(spec, found, target.factory_argument)
    if not isinstance(agent, Agent):
        raise _usage(f"--agent {spec} must name an Agent or a factory returning one, got {type(agent).__name__}")
    if not target.uses(agent):
        if target.directory is None:
            raise _usage(f"the agent from {spec} uses another store ({agent.store!r}), not {target.where}")
        root = getattr(getattr(agent.store, "layout", None), "root", None)
        raise _usage(f"the agent from {spec} uses another data directory ({root}), not {target.directory}")
    return agent


def _build(spec: str, factory: Any, argument: object) -> object:
    """Call the factory with the data directory; a wrong signature is a usage error, its own failure is named.

    delite's own errors (a bad key file, a store that cannot be opened) pass through as they are.
    """
    from delite.errors import DeliteError

    try:
        inspect.signature(factory).bind(argument)
    except TypeError:
        raise _usage(
            f"--agent {spec} names a factory that cannot be called with one argument (the data directory, a path "
            "or a URL): define it as def build(data_dir): ... return Agent(data_dir, ...)"
        ) from None
    except ValueError:  # no signature to look at (a builtin): the call says
        pass
    try:
        return factory(argument)
    except DeliteError:
        raise
    except Exception as e:
        raise CliError(f"the factory {spec} failed: {type(e).__name__}: {e}", kind=type(e).__name__) from e


def _operator(target: Target, agent_spec: str | None) -> tuple[Agent, bool]:
    """The agent to act with, and whether it can advance the execution."""
    if agent_spec:
        return load_agent(agent_spec, target), True
    return target.agent(), False


def _report(
    response: Response, *, action: str, advanced: bool, json_: bool, extra: dict[str, Any] | None = None
) -> None:
    r = response
    if json_:
        payload: dict[str, Any] = {
            "execution_id": r.execution_id,
            "action": action,
            "advanced": advanced,
            "status": r.status.value,
            "answer": r.answer,
            "suspend_reason": r.suspend_reason,
            "steps": r.steps,
            "usage": r.usage,
            "error": r.error,
        }
        payload.update(extra or {})
        f.echo_json(payload)
        return
    out = f.console()
    if not advanced and not r.status.is_terminal:
        out.print(f.text(f"recorded: {action} for execution {r.execution_id} (status {r.status.value} until resumed)"))
        out.print(f.text("Continue it from your application (agent.resume(id)), or run:", "dim"))
        out.print(f.text(f"  delite resume {r.execution_id} --agent MODULE:FACTORY", "dim"))
        return
    out.print(f.text(f"{action}: execution {r.execution_id} is now {r.status.value}", f.status_style(r.status.value)))
    if r.suspend_reason is not None:
        out.print(f.text(f"waiting for {r.suspend_reason}", "yellow", newlines=False, limit=500))
    if r.answer is not None:
        out.print(f.text(f"answer: {r.answer}", limit=2000))
    if r.error:
        out.print(f.text(f"error: {r.error}", "red", limit=2000))


def run_decide(
    target: Target,
    execution_id: str,
    call_ids: tuple[str, ...],
    *,
    approve: bool,
    every: bool,
    reason: str | None,
    agent_spec: str | None,
    json_: bool,
) -> None:
    """Approve or reject pending calls."""
    eid = execution_id
    if every and call_ids:
        raise _usage("give call ids or --all, not both")
    view = target.data.execution(eid)
    waiting = view.detail.suspend_reason
    listed = waiting.confirmation_ids if waiting is not None and waiting.kind in ("approval", "contract") else []
    decided = {t.call_id for t in view.tool_calls if t.decision is not None}
    # The calls still waiting for a decision; when none is left, all of them, so the engine says why
    # (already decided: 409). Nothing pending at all: an empty batch, which the engine refuses by state
    # first (ended, not suspended, waiting for something else: 409). Every check is made again under the claim.
    pending = [c for c in listed if c not in decided] or listed
    ids = list(call_ids)
    if every:
        ids = pending
    elif not ids:
        if len(pending) > 1:
            raise _usage(f"execution {eid} waits on {len(pending)} calls ({', '.join(pending)}); name them or --all")
        ids = pending
    agent, advance = _operator(target, agent_spec)
    with agent:
        decisions = dict.fromkeys(ids, approve)
        reasons = dict.fromkeys(ids, reason)
        response = agent.decide(eid, decisions, reasons=reasons, advance=advance)
    verb = "approved" if approve else "rejected"
    _report(response, action=f"{verb} {', '.join(ids)}", advanced=advance, json_=json_, extra={"calls": ids})


def run_submit_input(target: Target, execution_id: str, text: str, *, agent_spec: str | None, json_: bool) -> None:
    """Answer a human-input question."""
    eid = execution_id
    if text == "-":
        text = read_input("-", "the input")
    agent, advance = _operator(target, agent_spec)
    with agent:
        response = agent.submit_input(eid, text, advance=advance)
    _report(response, action="answered", advanced=advance, json_=json_)


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (``{"c1.0": 1, "c1.0": 2}`` is two answers for one call)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(f"the key {key!r:.80} is given twice")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")  # Python's json takes NaN and Infinity; JSON has neither


class BadInputError(ValueError):
    """What a user gave cannot be read: not UTF-8, not JSON, nested too deeply, a key given twice.

    ``tail`` ends a sentence that names the input (``" is not valid JSON: ..."``), so each caller says which
    input it was. ``syntax``: the text is simply not JSON (``--meta`` then matches it as a string); the other
    failures are refused whatever the caller does with plain text.
    """

    def __init__(self, tail: str, *, syntax: bool = False) -> None:
        """Build from the end of the sentence and whether the text is simply not JSON."""
        super().__init__(tail)
        self.tail = tail
        self.syntax = syntax


def utf8(raw: str | bytes) -> str:
    """``raw`` as text, when it is UTF-8: bytes are decoded strictly, and text must hold no lone surrogate.

    A byte that is not UTF-8 reaches a command as a lone surrogate in an argument (Python decodes ``argv``
    with ``surrogateescape``): refused here like the same byte in a file, before anything parses or records it.

    Raises:
        BadInputError: ``raw`` is not UTF-8.
    """
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8-sig")  # a leading byte order mark (some editors write one) is no content
        except UnicodeDecodeError as e:
            raise BadInputError(f" is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadInputError(f" is not UTF-8 text (at character {e.start})") from None
    return raw


def decode_json(raw: str | bytes) -> Any:
    """``raw`` (text, or UTF-8 bytes) as JSON, refusing a key given twice, ``NaN`` and ``Infinity``.

    Every way it can fail is one :class:`BadInputError`: bytes that are not UTF-8, text that is not JSON,
    nesting deeper than the parser's recursion limit (``json`` raises ``RecursionError`` there), a key given
    twice.

    Raises:
        BadInputError: ``raw`` is not JSON the CLI can take.
    """
    text = utf8(raw)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _DuplicateKeyError as e:
        raise BadInputError(f": {e}") from None
    except RecursionError:
        raise BadInputError(" is nested too deeply to read as JSON") from None
    except ValueError as e:  # JSONDecodeError, and an integer too long to convert
        raise BadInputError(f" is not valid JSON: {e}", syntax=True) from None


def parse_json(raw: str | bytes, what: str, *, hint: str = "") -> Any:
    """``raw`` as JSON, else a usage error (exit 2) that names ``what`` (``--result``) and says what is wrong.

    The one way the commands read JSON a user gives (the serve API reads its bodies with the same rules).
    ``hint`` ends the message when the text is simply not JSON (how to quote a string, say).

    Raises:
        CliError: a usage error; see :func:`decode_json`.
    """
    try:
        return decode_json(raw)
    except BadInputError as e:
        raise _usage(what + e.tail + (hint if e.syntax else "")) from e


def read_input(source: str, what: str) -> str:
    """The text of the file ``source``, or of stdin when it is ``-``: UTF-8, else a usage error naming it.

    Read as bytes and decoded here, whatever the locale, so a file that is not UTF-8 is a usage error rather
    than a decoder's traceback (or, from stdin, lone surrogates passed on). Line ends are what text mode
    makes of them: a Windows or old Mac line end is a newline.

    Raises:
        CliError: a usage error; the file cannot be read, or is not UTF-8.
    """
    raw: str | bytes
    try:
        if source == "-":
            if sys.stdin is None:  # started with stdin closed
                raise _usage(f"cannot read {what} from -: stdin is closed")
            stream = getattr(sys.stdin, "buffer", None)  # the bytes under the text; a plain text stream has none
            raw = stream.read() if stream is not None else sys.stdin.read()
        else:
            with open(source, "rb") as fh:
                raw = fh.read()
    except OSError as e:
        raise _usage(f"cannot read {what} from {source}: {e.strerror or e}") from e
    try:
        text = utf8(raw)
    except BadInputError as e:
        raise _usage(f"{what} from {source}{e.tail}") from e
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_json(source: str, what: str) -> Any:
    """The JSON in the file ``source`` (``-``: stdin); every failure a usage error naming it."""
    return parse_json(read_input(source, what), f"{what} from {source}")


def run_submit_tool_results(
    target: Target, execution_id: str, source: str, *, agent_spec: str | None, json_: bool
) -> None:
    """Give the results of client tool calls, as a JSON object ``{call_id: result}``."""
    eid = execution_id
    results = _read_json(source, "tool results")
    if not isinstance(results, dict):
        raise _usage('tool results must be a JSON object {"CALL_ID": result, ...}')
    agent, advance = _operator(target, agent_spec)
    with agent:
        response = agent.submit_tool_results(eid, results, advance=advance)
    _report(response, action=f"submitted {', '.join(results)}", advanced=advance, json_=json_)


def run_resolve(
    target: Target,
    execution_id: str,
    call_id: str,
    *,
    result: str | None,
    result_file: str | None,
    error: str | None,
    rerun: bool,
    agent_spec: str | None,
    json_: bool,
) -> None:
    """Settle an in-doubt call."""
    given = [x for x in (result is not None, result_file is not None, error is not None, rerun) if x]
    if len(given) != 1:
        raise _usage("give exactly one of --result, --result-file, --error or --rerun")
    value: Any = None
    if result is not None:
        value = parse_json(result, "--result", hint=" (quote a string as '\"text\"')")
    elif result_file is not None:
        value = _read_json(result_file, "the result")
    eid = execution_id
    agent, advance = _operator(target, agent_spec)
    with agent:
        response = agent.resolve(eid, call_id, result=value, error=error, rerun=rerun, advance=advance)
    action = f"{'rerun requested for' if rerun else 'resolved'} {call_id}"
    _report(response, action=action, advanced=advance, json_=json_)


def run_resume(target: Target, execution_id: str, *, agent_spec: str | None, model: str | None, json_: bool) -> None:
    """Continue an execution with the application's agent."""
    if not agent_spec:
        raise _usage(
            "resume runs the model and tools, so it needs your agent: --agent MODULE:FACTORY "
            "(or DELITE_AGENT), a function taking the data directory and returning an Agent"
        )
    eid = execution_id
    agent = load_agent(agent_spec, target)
    with agent:
        response = agent.resume(eid, model=model)
    _report(response, action="resumed", advanced=True, json_=json_)


def run_cancel(target: Target, execution_id: str, *, reason: str, json_: bool) -> None:
    """Cancel an execution (at its next step boundary if a process is advancing it)."""
    eid = execution_id
    with target.agent() as agent:
        response = agent.cancel(eid, reason=reason)
    pending = not response.status.is_terminal
    if json_:
        _report(response, action="cancel", advanced=False, json_=True, extra={"cancel_pending": pending})
        return
    if pending:
        f.console().print(
            f.text(
                f"Cancel requested: execution {eid} is being advanced by another process, which stops at its next "
                "step boundary.",
                "yellow",
            )
        )
    else:
        _report(response, action="cancel", advanced=False, json_=False)


def run_fork(target: Target, execution_id: str, *, at: int, new_id: str | None, json_: bool) -> None:
    """Start a new execution from a prefix of another."""
    data = target.data
    origin = execution_id
    eid = data.fork(origin, at=at, new_id=new_id)
    detail = data.execution(eid).detail
    if json_:
        f.echo_json({"execution_id": eid, "forked_from": origin, "fork_step": at, "execution": detail})
        return
    out = f.console()
    out.print(f.text(f"forked {origin} at step {at} into {eid} ({detail.status}, {detail.records} records)", "green"))
    out.print(f.text(f"Continue it with: delite resume {eid} --agent MODULE:FACTORY", "dim"))
