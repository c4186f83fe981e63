"""Blueprint `oncall`: who is on call for each team the person may see."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from paramedic import kube
from paramedic.domain.resources import Schedule
from paramedic.domain.timeutil import utcnow

from . import views
from .current import listed, whoami

bp = Blueprint("oncall", __name__)


@bp.get("/oncall")
def oncall() -> Any:
    whoami()
    items, denied = listed(kube.ONCALL_SCHEDULES)
    now = utcnow()
    teams = [views.oncall_team(s, now) for s in sorted(items, key=lambda s: (Schedule(s).namespace,
                                                                             Schedule(s).name))]
    return render_template("oncall.html", teams=teams, denied=denied)
