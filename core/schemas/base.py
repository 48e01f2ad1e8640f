"""The base of every model, what several areas share, and the error body."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel


class Schema(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_nul_characters(cls, value: Any) -> Any:
        # Postgres cannot store NUL in text; refuse it here with the field's name rather than at the database.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


# A client's id for its optimistic update, echoed in the messages its request causes (X-Mutation-Id, or a socket
# payload).
MUTATION_ID_MAX_LENGTH = 64
MUTATION_ID_PATTERN = rf"^[A-Za-z0-9_.:-]{{1,{MUTATION_ID_MAX_LENGTH}}}$"
PhotoId = Annotated[int, Field(ge=1, le=2**63 - 1)]
MutationIdField = Annotated[str | None, Field(pattern=MUTATION_ID_PATTERN)]


class ErrorBody(Schema):
    code: str
    message: str


class ErrorResponse(Schema):
    error: ErrorBody
