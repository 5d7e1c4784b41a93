"""What the input guard costs per request, against the same-run anchor of parsing the body.

`python -m bench.input_guard` times, for a small chat body and a large one (a long chat with
tool parts, whose brackets force the depth scan): the guard's body check (UTF-8 + depth), the
`json.loads` every route runs anyway (the anchor), and the URL check. Medians of 5 repeats.
"""

from __future__ import annotations

import json
import statistics
import timeit
from typing import Any

from genvault.server.guard import _body_problem, _url_problem

__all__ = ["bodies", "main", "run"]


def bodies(tool_parts: int = 300, messages: int = 10) -> dict[str, bytes]:
    text = {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hello " * 50}]}
    small = json.dumps({"id": "chat-abc", "trigger": "submit-message", "messages": [text]}).encode()
    part = {
        "type": "tool-weather",
        "state": "output-available",
        "input": {"city": "Paris", "opts": {"u": [1, 2]}},
        "output": {"t": [21, {"x": 'y [not a bracket] "quoted"'}]},
    }
    parts = [{**part, "toolCallId": f"c{i}"} for i in range(tool_parts)]
    history = [{"id": f"m{i}", "role": "assistant", "parts": parts} for i in range(messages)]
    large = json.dumps({"id": "chat-abc", "messages": history}).encode()
    return {"small": small, "large": large}


def _median_us(fn: Any, number: int, repeat: int) -> float:
    return statistics.median(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def run(*, tool_parts: int = 300, messages: int = 10, repeat: int = 5, scale: int = 1) -> list[dict[str, Any]]:
    results = []
    for name, body in bodies(tool_parts, messages).items():
        number = max(1, (20_000 if name == "small" else 50) // scale)
        assert _body_problem(body) is None
        guard = _median_us(lambda body=body: _body_problem(body), number, repeat)
        anchor = _median_us(lambda body=body: json.loads(body), number, repeat)
        results.append({"body": name, "bytes": len(body), "guard_us": guard, "json_loads_us": anchor})
    scope = {"raw_path": b"/api/chats/chat-abc/messages", "query_string": b"before=m1&limit=50"}
    url = _median_us(lambda: _url_problem(scope), max(1, 50_000 // scale), repeat)
    results.append({"body": "url", "bytes": 0, "guard_us": url, "json_loads_us": None})
    return results


def main() -> None:
    for row in run():
        if row["json_loads_us"] is None:
            print(f"URL check (path + query): {row['guard_us']:.1f} µs")
        else:
            ratio = row["guard_us"] / row["json_loads_us"]
            print(
                f"{row['body']} body, {row['bytes']:,} B: guard {row['guard_us']:,.1f} µs, "
                f"json.loads {row['json_loads_us']:,.1f} µs (anchor), ×{ratio:.2f}"
            )


if __name__ == "__main__":
    main()
