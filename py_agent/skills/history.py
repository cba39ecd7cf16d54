"""history: what the user completed, from the tasks' completion times (``done_at``).

- "what did I do yesterday?" / "what did I finish this week?": the tasks completed in the
  period, in the user's local days, latest first (20 at most); none: "You didn't complete
  anything yesterday.".
- "when did I last call mom?" / "have I paid the rent yet?": the latest completion of the
  task the words mean, by meaning over done tasks -- completion copies of repeating tasks
  included -- within the period if one is named, with the task floors
  (`matching.TASK_FLOORS`): from ``clear`` it is the answer, from ``match`` it is offered as
  "the closest I found". Every done task within `AMBIGUITY_MARGIN` of the best counts as the
  same task ("call mom" done on Monday and on Friday), and the latest answers. Nothing done,
  but a clearly matching open task: "Not yet: … is still open".
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from ..platform import JsonObject
from ..slots import HistorySlots, history_slots
from ..state import State
from .matching import AMBIGUITY_MARGIN, TASK_FLOORS, Embed
from .outcome import Outcome
from .tasks import describe_due

SHOWN = 20


def completed_at(task: JsonObject, now: datetime) -> datetime | None:
    """When ``task`` was completed, in ``now``'s time zone; None if it is not done."""
    if not task.get("done") or not task.get("done_at"):
        return None
    try:
        at = datetime.fromisoformat(str(task["done_at"]))
    except ValueError:
        return None
    return at.astimezone(now.tzinfo) if at.tzinfo is not None else at


def describe_when(at: datetime, today: date) -> str:
    """ "today at 09:12", "yesterday at 18:30", "on Mon 16 Nov at 09:12"."""
    day = at.date()
    names = {today: "today", today - timedelta(days=1): "yesterday"}
    return f"{names.get(day, 'on ' + day.strftime('%a %d %b'))} at {at.strftime('%H:%M')}"


def _period(slots: HistorySlots) -> str:
    if slots.period or slots.start is None:
        return slots.period
    if slots.start == slots.end:
        return f"on {slots.start.strftime('%a %d %b')}"
    end = "" if slots.end is None else f" to {slots.end.strftime('%a %d %b')}"
    return f"from {slots.start.strftime('%a %d %b')}{end}"


def _in_period(at: datetime, slots: HistorySlots) -> bool:
    return (slots.start is None or at.date() >= slots.start) and (
        slots.end is None or at.date() <= slots.end
    )


async def history(
    state: State, text: str, now: datetime, embed: Embed, slots: HistorySlots | None = None
) -> Outcome:
    """``slots``: the server's reading of ``text``; None reads it here."""
    slots = slots or history_slots(text, now)
    done = {
        task_id: at
        for task_id, task in state.tasks.items()
        if (at := completed_at(task, now)) is not None and _in_period(at, slots)
    }
    if slots.target:
        return await _last_time(state, slots, done, now, embed)
    period = _period(slots)
    if not done:
        if period:
            return Outcome(f"You didn't complete anything {period}.")
        return Outcome("You haven't completed anything yet.")
    latest = sorted(done, key=done.__getitem__, reverse=True)
    today = now.date()
    lines = [f"• {state.tasks[i]['title']} — {describe_when(done[i], today)}" for i in latest]
    more = f"\n…and {len(latest) - SHOWN} more." if len(latest) > SHOWN else ""
    count = f"{len(latest)} task" + ("s" if len(latest) > 1 else "")
    heading = f"{period[0].upper()}{period[1:]} you" if period else "You've"
    heading += f" completed {count}"
    return Outcome(f"{heading}:\n" + "\n".join(lines[:SHOWN]) + more)


async def _last_time(
    state: State, slots: HistorySlots, done: dict[str, datetime], now: datetime, embed: Embed
) -> Outcome:
    query = await embed(slots.target)
    period = _period(slots)
    ranked = state.vectors["tasks"].nearest(query, max(1, len(done)), among=set(done))
    if ranked and ranked[0][1] >= TASK_FLOORS.match:
        same = [i for i, score in ranked if score >= ranked[0][1] - AMBIGUITY_MARGIN]
        latest = max(same, key=done.__getitem__)
        title, when = state.tasks[latest]["title"], describe_when(done[latest], now.date())
        if ranked[0][1] < TASK_FLOORS.clear:
            return Outcome(f"The closest I found is “{title}”, completed {when}.")
        last = "last " if len(same) > 1 else ""
        return Outcome(f"You {last}completed “{title}” {when}.")
    open_ids = {i for i, t in state.tasks.items() if not t["done"]}
    ranked = state.vectors["tasks"].nearest(query, 1, among=open_ids)
    if ranked and ranked[0][1] >= TASK_FLOORS.clear:
        task = state.tasks[ranked[0][0]]
        due = describe_due(task, now.date())
        return Outcome(
            f"Not yet: “{task['title']}” is still open" + (f", due {due}." if due else ".")
        )
    where = f" {period}" if period else ""
    return Outcome(f"I have no record of completing anything like “{slots.target}”{where}.")
