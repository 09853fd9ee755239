"""Planner activities: the agents run here, never in workflow code."""

from __future__ import annotations

from temporalio import activity

from faceloop.agents import planner
from faceloop.messages import PlanInput, PlanOutput


class PlannerActivities:
    @activity.defn
    async def plan(self, inp: PlanInput) -> PlanOutput:
        proposals = [(v.variant_id, v.params) for v in inp.variants]
        return PlanOutput(plan=planner.plan(inp.brief, proposals))
