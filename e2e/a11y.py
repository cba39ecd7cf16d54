"""axe-core (web/node_modules, a dev dependency) run in the page: the accessibility rules of
WCAG 2.0 and 2.1, levels A and AA, and axe's best practices."""

from __future__ import annotations

from dataclasses import dataclass

from playwright.sync_api import Page

from .harness import ROOT

AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
BLOCKING = ("critical", "serious")
SHOWN_TARGETS = 4
RUN = """async (tags) => {
    const results = await axe.run(document, {
        runOnly: { type: 'tag', values: tags },
        resultTypes: ['violations'],
    });
    return results.violations.map((violation) => ({
        id: violation.id,
        impact: violation.impact ?? 'unknown',
        help: violation.help,
        targets: violation.nodes.map((node) => node.target.join(' ')),
    }));
}"""


@dataclass(frozen=True)
class Violation:
    id: str
    impact: str  # minor, moderate, serious, critical
    help: str
    targets: tuple[str, ...]

    def __str__(self) -> str:
        shown = ", ".join(self.targets[:SHOWN_TARGETS])
        more = len(self.targets) - SHOWN_TARGETS
        return f"{self.id} ({self.impact}): {self.help} — {shown}" + (
            f" and {more} more" if more > 0 else ""
        )


def violations(page: Page) -> list[Violation]:
    """axe's violations on the page as it is now (axe is injected on first use)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=AXE)
    return [
        Violation(found["id"], found["impact"], found["help"], tuple(found["targets"]))
        for found in page.evaluate(RUN, TAGS)
    ]


def blocking(found: list[Violation]) -> list[Violation]:
    return [violation for violation in found if violation.impact in BLOCKING]


def report(found: dict[str, list[Violation]]) -> str:
    """Violations by where they were found (a view, its scheme and viewport), one a line."""
    return "\n".join(
        f"{where}: {violation}" for where, listed in found.items() for violation in listed
    )
