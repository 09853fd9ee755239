"""One root error; messages say what was wrong, where, and what to do."""

from __future__ import annotations

from pydantic import ValidationError


class FaceloopError(Exception):
    """Root of every error faceloop raises on purpose."""


class InputError(FaceloopError):
    """A file or value a person supplied is invalid; nothing was started or changed."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"{source} is invalid ({len(problems)} problem(s)); nothing was started:\n{lines}"
        )

    @classmethod
    def from_validation(cls, source: str, err: ValidationError) -> InputError:
        problems = []
        for e in err.errors():
            path = ".".join(str(p) for p in e["loc"]) or "(root)"
            problems.append(f"{path}: {e['msg']}")
        return cls(source, problems)


class GenerationError(FaceloopError):
    """A generator could not produce an image for a valid request."""


class ConnectorError(FaceloopError):
    """An ad platform refused or failed a request.

    `status` is the platform's HTTP status when it answered (None: no answer), so callers
    can tell "the platform does not know this campaign" (404) from an outage. `final`: the
    platform refused for good (credentials, a parameter, policy), so retrying the same call
    cannot help; the activities end without Temporal retries then.
    """

    def __init__(self, message: str, *, status: int | None = None, final: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.final = final


class SpendLimitUnsupportedError(FaceloopError):
    """The connector cannot have its platform hold a campaign's spend limit (the message
    says why); the spend cap is then held by faceloop's own check alone (docs/cost.md)."""


class SubjectErasedError(FaceloopError):
    """Data of a data subject was crypto-shredded (GDPR Art. 17): its key no longer exists."""


class StackError(FaceloopError):
    """The embedded stack (Temporal dev server, worker, sandbox) could not start or stop."""
