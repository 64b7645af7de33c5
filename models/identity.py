"""Clinics, user accounts and the login sessions (token families) that belong to them."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, EmailStr
from pydantic import Field as PydanticField
from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from models.base import Line, Name, enum_column, new_id, no_control_line, utc_column, utc_now
from models.protocol import DEFAULT_PROTOCOL_ID, ProtocolId
from models.timezones import TimeZoneName


class Role(StrEnum):
    admin = "admin"
    clinician = "clinician"
    researcher = "researcher"
    patient = "patient"


class TokenKind(StrEnum):
    access = "access"
    refresh = "refresh"


class ClinicBase(SQLModel):
    name: Name
    timezone: TimeZoneName


class Clinic(ClinicBase, table=True):
    __tablename__ = "clinic"
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    # The protocol a new procedure pins when it names none; null: the `default` protocol.
    default_protocol_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = utc_column(default_factory=utc_now)


class ClinicCreate(ClinicBase):
    model_config = {"extra": "forbid"}


class ClinicUpdate(SQLModel):
    """The clinic's default protocol: the one a new procedure pins when it names none."""

    model_config = {"extra": "forbid"}
    default_protocol_id: ProtocolId | None = Field(
        description="An existing protocol's id; null: the `default` protocol"
    )


def _or_default(protocol_id: str | None) -> str:
    return protocol_id or DEFAULT_PROTOCOL_ID


class ClinicPublic(ClinicBase):
    id: uuid.UUID
    default_protocol_id: Annotated[str, BeforeValidator(_or_default)] = Field(
        description="The protocol a new procedure pins when it names none"
    )


class UserAccount(SQLModel, table=True):
    """A person who signs in: staff with a password, or a patient enrolled through the app."""

    __tablename__ = "user_account"
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    email: str | None = Field(default=None, max_length=320, unique=True)
    password_hash: str | None = Field(default=None, max_length=255)
    role: Role = enum_column(Role, 16)
    clinic_id: uuid.UUID | None = Field(default=None, foreign_key="clinic.id", index=True)
    patient_id: uuid.UUID | None = Field(
        default=None, foreign_key="patient.id", index=True, unique=True
    )
    created_at: datetime = utc_column(default_factory=utc_now)


Password = Annotated[
    str, PydanticField(min_length=15, max_length=128), AfterValidator(no_control_line)
]


class UserCreate(SQLModel):
    model_config = {"extra": "forbid"}
    email: EmailStr = Field(max_length=320)
    password: Password
    role: Role
    clinic_id: uuid.UUID | None = None


class UserPublic(SQLModel):
    id: uuid.UUID
    email: str | None
    role: Role
    clinic_id: uuid.UUID | None
    patient_id: uuid.UUID | None = None


class AuthSession(SQLModel, table=True):
    """One sign-in (a token family): every access and refresh token minted from it."""

    __tablename__ = "auth_session"
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    device_name: str | None = Field(default=None, max_length=200)
    created_at: datetime = utc_column(default_factory=utc_now)
    revoked_at: datetime | None = utc_column(default=None)
    revoked_reason: str | None = Field(default=None, max_length=32)


class AuthToken(SQLModel, table=True):
    """A bearer token, stored only as a keyed hash."""

    __tablename__ = "auth_token"
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    kind: TokenKind = enum_column(TokenKind, 16)
    session_id: uuid.UUID = Field(foreign_key="auth_session.id", index=True)
    expires_at: datetime = utc_column()
    # A refresh token is used once: rotation marks it, and a second use revokes the family.
    used_at: datetime | None = utc_column(default=None)
    created_at: datetime = utc_column(default_factory=utc_now)


class LoginFailure(SQLModel, table=True):
    """Failed sign-in attempts, counted per account and per client address for throttling."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_scope_key_hash_at", "scope", "key_hash", "at"),)
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    scope: str = Field(max_length=16)  # "account" | "address" | "enrol"
    key_hash: str = Field(max_length=64)
    at: datetime = utc_column(default_factory=utc_now)


class EnrolmentCode(SQLModel, table=True):
    __tablename__ = "enrolment_code"
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    code_hash: str = Field(max_length=64, unique=True)
    patient_id: uuid.UUID = Field(foreign_key="patient.id", index=True)
    created_by_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    expires_at: datetime = utc_column()
    used_at: datetime | None = utc_column(default=None)
    created_at: datetime = utc_column(default_factory=utc_now)


class EnrolmentCodePublic(SQLModel):
    code: str
    expires_at: datetime


class EnrolRequest(SQLModel):
    model_config = {"extra": "forbid"}
    code: Line = Field(min_length=1, max_length=64)
    device_name: Name


class TokenPair(SQLModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str


class EnrolResponse(TokenPair):
    patient_id: uuid.UUID


class RefreshRequest(SQLModel):
    model_config = {"extra": "forbid"}
    refresh_token: str = Field(min_length=1, max_length=200)
