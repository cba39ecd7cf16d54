// When a task is due, as people say it, in the user's own locale (Intl): "Today, 6 PM",
// "Tomorrow", "Fri, Dec 4" (en-US) or "Fri 4 Dec" (en-GB); and the part of the task list
// it belongs to: overdue, today, upcoming, anytime (no date) or done. Dates are the
// user's calendar days: a task's due_date is a plain YYYY-MM-DD, never a UTC instant.

/**
 * @typedef {'overdue' | 'today' | 'upcoming' | 'anytime' | 'done'} Section
 * @typedef {{ done: boolean, due_date: string | null, due_time: string | null }} Due
 */

/** The sections in the order the task list shows them. @type {Section[]} */
export const SECTIONS = ['overdue', 'today', 'upcoming', 'anytime', 'done'];

/** YYYY-MM-DD of a local date. @param {Date} date */
export function isoDay(date) {
  const pad = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** A YYYY-MM-DD as local midnight; null if it is no date. @param {string} day */
function localDay(day) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!match) return null;
  const date = new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  return Number.isNaN(date.getTime()) ? null : date;
}

/** Whole calendar days from `now`'s day to `day` (negative: in the past). @param {Date} day @param {Date} now */
function daysFrom(day, now) {
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  // Rounded: a day across a daylight-saving change is 23 or 25 hours long.
  return Math.round((day.getTime() - today.getTime()) / 86_400_000);
}

/** @param {Due} task @param {Date} now @returns {Section} */
export function sectionOf(task, now) {
  if (task.done) return 'done';
  const day = task.due_date && localDay(task.due_date);
  if (!day) return 'anytime';
  const days = daysFrom(day, now);
  return days < 0 ? 'overdue' : days === 0 ? 'today' : 'upcoming';
}

// Made once: the list formats every task's date on every redraw, and a formatter costs
// far more to make than to use. The page's locale does not change while it is open.
const HOUR_MINUTE = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const HOUR = new Intl.DateTimeFormat(undefined, { hour: 'numeric' });
const TWELVE_HOURS = ['h11', 'h12'].includes(HOUR_MINUTE.resolvedOptions().hourCycle ?? '');
const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const DAY = new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric' });
const DAY_OF_YEAR = new Intl.DateTimeFormat(undefined, {
  weekday: 'short', month: 'short', day: 'numeric', year: 'numeric',
});

/** "6 PM", "6:30 PM", "18:00": an HH:MM in the locale's way, on the hour without ":00" where the clock has 12 hours. @param {string} time */
export function humanTime(time) {
  const match = /^(\d{2}):(\d{2})$/.exec(time);
  if (!match) return time;
  const at = new Date(2000, 0, 1, Number(match[1]), Number(match[2]));
  return (TWELVE_HOURS && !Number(match[2]) ? HOUR : HOUR_MINUTE).format(at);
}

/** "Today", "Tomorrow", "Yesterday" in the user's language, capitalised. @param {number} days */
function relativeDay(days) {
  const text = RELATIVE.format(days, 'day');
  return text.charAt(0).toLocaleUpperCase() + text.slice(1);
}

/**
 * The due date in words, with its time if it has one: "Today, 6 PM", "Tomorrow",
 * "Fri, Dec 4", "Mon, Jan 4, 2027" (another year); null without a date.
 * @param {Due} task @param {Date} now
 */
export function humanDue(task, now) {
  const day = task.due_date && localDay(task.due_date);
  if (!day) return null;
  const days = daysFrom(day, now);
  const format = day.getFullYear() === now.getFullYear() ? DAY : DAY_OF_YEAR;
  const date = Math.abs(days) <= 1 ? relativeDay(days) : format.format(day);
  return task.due_time ? `${date}, ${humanTime(task.due_time)}` : date;
}

/** The due moment as an HTML datetime value ("2026-12-04T18:00" or "2026-12-04"). @param {Due} task */
export function dueDatetime(task) {
  return task.due_time ? `${task.due_date}T${task.due_time}` : task.due_date ?? '';
}
