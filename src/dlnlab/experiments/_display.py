"""The progress display of ``dlnlab reproduce``: one rich task per experiment, one line per claim outcome."""

from __future__ import annotations

__all__ = ["Display", "outcome_word"]


def outcome_word(claim, declared: tuple[str, ...] = ()) -> tuple[str, str]:
    """(colour, word) for a claim: PASS, FAIL, NOT REPRODUCED (as declared) or UNEXPECTED PASS."""
    if claim.outcome == "not_reproduced":
        return "yellow", "NOT REPRODUCED (declared)"
    if claim.passed and claim.claim in declared:
        return "magenta", "UNEXPECTED PASS (declared not reproduced)"
    return ("green", "PASS") if claim.passed else ("red", "FAIL")


class Display:
    """A rich progress display; silent when ``quiet``."""

    def __init__(self, quiet: bool, console=None):
        self.progress = None
        if not quiet:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=console or Console(stderr=True), transient=False,
            )

    def __enter__(self):
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def start(self, exp):
        if self.progress is None:
            return None
        return self.progress.add_task(f"[bold]{exp.name}[/]", total=len(exp.stages))

    def step(self, task, exp, name: str, done: int):
        if self.progress is not None:
            self.progress.update(task, completed=done, description=f"[bold]{exp.name}[/] {name}")

    def finish(self, task, exp, claims, seconds: float, pieces: dict | None = None):
        if self.progress is None:
            return
        declared = tuple(getattr(exp, "not_reproduced", ()))
        n_bad = sum(c.outcome == "failed" or (c.passed and c.claim in declared) for c in claims)
        mark = "[green]all as declared[/]" if n_bad == 0 else f"[red]{n_bad} not as declared[/]"
        self.progress.update(task, completed=len(exp.stages),
                             description=f"[bold]{exp.name}[/] {len(claims)} claims, {mark}")
        console = self.progress.console
        for c in claims:
            colour, word = outcome_word(c, declared)
            console.print(f"  [{colour}]{word}[/] {exp.name}/{c.claim}", highlight=False)
        stored = f", stored pieces: {pieces['reused']} reused, {pieces['computed']} computed" if pieces else ""
        console.print(f"  {exp.name}: {seconds:.1f} s{stored}", style="dim", highlight=False)
