"""The one error type the CLI turns into `oci2bin: <problem> (<what to do>)`."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: bad input, missing file, unsupported format."""

    def __init__(self, problem: str, hint: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.hint = hint

    def line(self) -> str:
        text = f"oci2bin: {self.problem}"
        if self.hint:
            text += f" ({self.hint})"
        return " ".join(text.split("\n"))
