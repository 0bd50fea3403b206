"""A2A (protocol 0.3) shapes of graphyard's records: a message's parts as a run's input, a run as a Task.

A context is a thread and a task is a run. Text parts become one human message under `messages` (the
message-state convention chat graphs follow); data parts are merged into the input as they are, so a
graph with any other state can be driven with a data part. A run's output becomes an artifact: the last
AI message's text when the state has messages, the whole state as a data part otherwise.
"""

from __future__ import annotations

import uuid
from typing import Any

from a2a.compat.v0_3 import types as a2a

from graphyard.records import Json, Run, RunStatus, isoformat, now

# At most this many messages of history in a task (the reference's limit).
MAX_HISTORY = 10

STATE_OF_RUN = {
    RunStatus.PENDING: a2a.TaskState.submitted,
    RunStatus.RUNNING: a2a.TaskState.working,
    RunStatus.SUCCESS: a2a.TaskState.completed,
    RunStatus.ERROR: a2a.TaskState.failed,
    RunStatus.TIMEOUT: a2a.TaskState.failed,
    RunStatus.INTERRUPTED: a2a.TaskState.canceled,
}


def parts_value(message: a2a.Message) -> tuple[str, Json]:
    """The text of a message's text parts (joined by newlines) and its data parts merged."""
    texts: list[str] = []
    data: Json = {}
    for part in message.parts:
        inner = part.root
        if isinstance(inner, a2a.TextPart):
            texts.append(inner.text)
        elif isinstance(inner, a2a.DataPart):
            data.update(inner.data)
        else:
            raise ValueError("Only text and data parts are supported; send a file's content as text or data")
    return "\n".join(texts), data


def run_input(message: a2a.Message) -> Json:
    text, data = parts_value(message)
    value: Json = dict(data)
    if text:
        value["messages"] = [{"role": "human", "content": text}]
    return value


def resume_value(message: a2a.Message) -> Any:
    """What a reply to an input-required task resumes the graph's interrupt() with: the data, else the text."""
    text, data = parts_value(message)
    return data if data else text


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block.get("text", "") if isinstance(block, dict) else str(block)
            for block in content
            if not isinstance(block, dict) or block.get("type", "text") == "text"
        )
    return str(content)


def _last_ai_text(values: Any) -> str | None:
    messages = values.get("messages") if isinstance(values, dict) else None
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if isinstance(last, dict) and (last.get("type") == "ai" or last.get("role") in ("ai", "assistant")):
        return _text_of(last.get("content", ""))
    return None


def _output_parts(values: Any) -> list[a2a.Part]:
    text = _last_ai_text(values)
    if text is not None:
        return [a2a.Part(root=a2a.TextPart(text=text))]
    data = values if isinstance(values, dict) else {"output": values}
    return [a2a.Part(root=a2a.DataPart(data={k: v for k, v in data.items() if k != "__interrupt__"}))]


def _agent_message(run: Run, parts: list[a2a.Part], kind: str = "reply") -> a2a.Message:
    return a2a.Message(
        role=a2a.Role.agent,
        parts=parts,
        message_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"graphyard:{run.run_id}:{kind}")),
        context_id=run.thread_id,
        task_id=run.run_id,
    )


def _user_message(run: Run) -> a2a.Message | None:
    kwargs_input = run.kwargs.get("input")
    command = run.kwargs.get("command") or {}
    parts: list[a2a.Part] = []
    if isinstance(command, dict) and "resume" in command:
        parts.append(_value_part(command["resume"]))
    elif isinstance(kwargs_input, dict):
        data = {k: v for k, v in kwargs_input.items() if k != "messages"}
        messages = kwargs_input.get("messages")
        said = messages if isinstance(messages, list) else []
        text = "\n".join(_text_of(m.get("content", "")) for m in said if isinstance(m, dict))
        if text:
            parts.append(a2a.Part(root=a2a.TextPart(text=text)))
        if data:
            parts.append(a2a.Part(root=a2a.DataPart(data=data)))
    if not parts:
        return None
    return a2a.Message(
        role=a2a.Role.user,
        parts=parts,
        message_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"graphyard:{run.run_id}:request")),
        context_id=run.thread_id,
        task_id=run.run_id,
    )


def _value_part(value: Any) -> a2a.Part:
    if isinstance(value, str):
        return a2a.Part(root=a2a.TextPart(text=value))
    return a2a.Part(root=a2a.DataPart(data=value if isinstance(value, dict) else {"value": value}))


def _interrupts(output: Any) -> list[Any]:
    found = output.get("__interrupt__") if isinstance(output, dict) else None
    return found if isinstance(found, list) else []


def task_status(run: Run) -> a2a.TaskStatus:
    """The task's state; a graph that stopped at interrupt() is `input-required`, its questions in the message."""
    state = STATE_OF_RUN.get(run.status, a2a.TaskState.unknown)
    message = None
    output = run.output
    if run.status is RunStatus.SUCCESS and _interrupts(output):
        state = a2a.TaskState.input_required
        asked = [i.get("value") if isinstance(i, dict) else i for i in _interrupts(output)]
        message = _agent_message(run, [_value_part(v) for v in asked], "status")
    elif run.status in (RunStatus.ERROR, RunStatus.TIMEOUT):
        failure = output.get("__error__") if isinstance(output, dict) else None
        detail = failure if isinstance(failure, dict) else {"error": run.status.value, "message": str(failure or "")}
        text = f"{detail.get('error', 'Error')}: {detail.get('message', '')}"
        message = _agent_message(run, [a2a.Part(root=a2a.TextPart(text=text))], "status")
    return a2a.TaskStatus(state=state, message=message, timestamp=run.updated_at)


def artifact(run: Run) -> a2a.Artifact | None:
    """The run's result, once it completed (a graph waiting at interrupt() has not)."""
    if run.status is not RunStatus.SUCCESS or run.output is None or _interrupts(run.output):
        return None
    return a2a.Artifact(
        artifact_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"graphyard:{run.run_id}:result")),
        name="Assistant Response",
        parts=_output_parts(run.output),
    )


def task(run: Run, history_length: int | None = None) -> a2a.Task:
    found = artifact(run)
    history: list[a2a.Message] = []
    asked = _user_message(run)
    if asked is not None:
        history.append(asked)
    if found is not None:
        history.append(_agent_message(run, found.parts))
    limit = MAX_HISTORY if history_length is None else max(0, min(history_length, MAX_HISTORY))
    return a2a.Task(
        id=run.run_id,
        context_id=run.thread_id,
        status=task_status(run),
        artifacts=[found] if found is not None else None,
        history=history[len(history) - limit :] if limit else [],
        metadata={"assistant_id": run.assistant_id},
    )


def status_event(run: Run, *, final: bool, state: a2a.TaskState | None = None) -> a2a.TaskStatusUpdateEvent:
    status = task_status(run) if state is None else a2a.TaskStatus(state=state, timestamp=isoformat(now()))
    return a2a.TaskStatusUpdateEvent(task_id=run.run_id, context_id=run.thread_id, status=status, final=final)


def artifact_event(run: Run, found: a2a.Artifact) -> a2a.TaskArtifactUpdateEvent:
    return a2a.TaskArtifactUpdateEvent(
        task_id=run.run_id, context_id=run.thread_id, artifact=found, append=False, last_chunk=True
    )
