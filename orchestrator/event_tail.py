"""Following the trainer's JSON-lines event file while the trainer is still writing it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class EventTail:
    """Reads the complete lines appended to an events file since the last call.

    The file may not exist yet (the trainer creates it once its config is valid) and the last
    line may be half-written: only lines ending in a newline are parsed, the rest waits for the
    next call. A line that is not a JSON object is skipped (the trainer never writes one).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._offset = 0
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        """The events completed since the previous call, in order."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        events = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and "event" in event:
                events.append(event)
        return events
