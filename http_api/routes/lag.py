"""``GET /v1/lag`` and ``GET /v1/lag/history``: the lag sampler's latest report and its past."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from http_api.errors import ApiError, Reason
from http_api.routes.deps import BackendDep

router = APIRouter(prefix="/v1", tags=["lag"])


@router.get("/lag", summary="per service and partition: offset lag, time lag, rates, state")
async def lag(backend: BackendDep) -> dict[str, Any]:
    """As ``marketfeed lag --json``, sampled every ``--lag-interval`` seconds."""
    sampler = backend.lag
    if not sampler.targets:
        return {"time_ns": time.time_ns(), "services": []}
    if sampler.error is not None:
        raise ApiError(503, sampler.error_reason, sampler.error)
    if sampler.latest is None:
        raise ApiError(503, Reason.STARTING, "no lag sample yet; try again in a second")
    return sampler.latest


@router.get("/lag/history", summary="per-service offset and time lag over the last minutes")
async def history(backend: BackendDep) -> dict[str, Any]:
    return {"interval_s": backend.lag.interval, "points": list(backend.lag.history)}
