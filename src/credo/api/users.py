"""Administrators manage the people who log in."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from credo.api.auth import UserPublic
from credo.api.deps import AdminUser, RegisterDep
from credo.api.records import ERRORS
from credo.services.accounts import add_user

router = APIRouter(prefix="/v1/users", tags=["people"])


class UserCreate(BaseModel):
    """A new account."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=10, max_length=200)
    role: Literal["subject", "reviewer", "admin", "authority"]
    subject_id: str | None = None
    authority_id: str | None = None


@router.post("", status_code=201, response_model=UserPublic, responses=ERRORS)
def post_user(body: UserCreate, admin: AdminUser, register: RegisterDep) -> UserPublic:
    """Create an account (admins only)."""
    user = add_user(
        register,
        body.username,
        body.password,
        body.role,
        subject_id=body.subject_id,
        authority_id=body.authority_id,
        actor=f"admin:{admin.username}",
    )
    return UserPublic(
        username=user.username,
        role=user.role,
        subject_id=user.subject_id,
        authority_id=user.authority_id,
    )
