"""HTTP routes of the statements module (authenticated; mounted under /api/v1 by main.py)."""

from fastapi import APIRouter

router = APIRouter()
