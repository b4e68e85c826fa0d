"""
axe-core, the accessibility checker, run on a page the way a person left it.

axe-core comes from the npm registry (package.json). Its source is evaluated over the DevTools
protocol, which the site's Content-Security-Policy does not govern, so the page needs no exception
for it.
"""

from functools import cache

from playwright.sync_api import Page

from tests.conftest import BASE_DIR

AXE = BASE_DIR / "node_modules" / "axe-core" / "axe.min.js"

# The impacts that fail a test; "minor" and "moderate" findings are left to judgement.
FAILING_IMPACTS = {"serious", "critical"}

RUN_AXE = """async () => {
    const results = await axe.run(document, {resultTypes: ["violations"]});
    return results.violations.map((violation) => ({
        id: violation.id,
        impact: violation.impact,
        help: violation.help,
        nodes: violation.nodes.map((node) => ({
            target: node.target.join(" "),
            summary: node.failureSummary,
        })),
    }));
}"""


@cache
def axe_source() -> str:
    if not AXE.exists():
        raise FileNotFoundError(
            f"{AXE} is missing: run `npm install` (package.json lists axe-core)"
        )
    return AXE.read_text()


def violations(page: Page) -> list[dict]:
    """
    Return the serious and critical accessibility violations axe-core finds on the page.

    Each is {"id", "impact", "help", "nodes": [{"target", "summary"}]}, so that an assertion's
    message says what is wrong and where.
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    return [
        violation for violation in page.evaluate(RUN_AXE) if violation["impact"] in FAILING_IMPACTS
    ]
