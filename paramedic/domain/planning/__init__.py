"""The incident planner's parts, one pure function per concern.

`paramedic.domain.incident_plan.plan` calls them in order and merges what each returns (a
frozen `Part`) into the one `Plan` the executor acts on. A part never sees another's
working state: what it needs of earlier parts (the status as they left it, the assignee
or the state they decided) is an argument.

- `base`: the inputs (`Inputs`, `PlanSettings`, `Effects`), what a part returns (`Part`)
  and the builder a part fills while it decides (`Draft`, local to one call).
- `opening`: opening, people's state changes, assignment, the resolutions Paramedic
  decides (every alert resolved, the probe recovered).
- `clocks`: SLA, escalation, retention.
- `outbox`: the notification outbox in status (recording deliveries, queueing, sending).
- `context`: evidence and hints, seen before, people's comments and runbook steps.
- `remediation`: the remediation state machine.
"""
