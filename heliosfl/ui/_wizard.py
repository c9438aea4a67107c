"""The step-by-step wizard that the compliance walkthroughs are built on."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any

import ipywidgets as widgets

from heliosfl.errors import ConfigError

__all__ = ["StepOutcome", "StepWizard", "WizardStep", "esc", "table", "verdict"]

#: What a step returns: its structured result and the HTML that shows it.
StepOutcome = tuple[dict[str, Any], str]


_STYLE = """<style>
.heliosfl-walkthrough table { border-collapse: collapse; margin: 4px 0; }
.heliosfl-walkthrough th, .heliosfl-walkthrough td {
  border: 1px solid var(--jp-border-color2, #ccc); padding: 2px 6px; text-align: left;
  font-family: var(--jp-code-font-family, monospace); font-size: 12px; }
.heliosfl-walkthrough-title { font-size: 1.2em; font-weight: bold; }
.heliosfl-walkthrough-error { color: var(--jp-error-color1, #d32f2f); }
.heliosfl-ok { color: var(--jp-success-color1, #2e7d32); font-weight: bold; }
.heliosfl-bad { color: var(--jp-error-color1, #d32f2f); font-weight: bold; }
.heliosfl-fail td { color: var(--jp-error-color1, #d32f2f); }
.heliosfl-walkthrough pre { max-height: 16em; overflow: auto; }
</style>"""


def esc(value: object) -> str:
    """``str(value)``, HTML-escaped."""
    return html.escape(str(value))


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """An escaped HTML table."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def verdict(ok: bool, yes: str, no: str) -> str:
    """A green `yes` when `ok`, else a red `no`."""
    return (
        f"<span class='heliosfl-ok'>{esc(yes)}</span>"
        if ok
        else (f"<span class='heliosfl-bad'>{esc(no)}</span>")
    )


@dataclasses.dataclass(frozen=True, slots=True)
class WizardStep:
    """One step of a :class:`StepWizard`.

    Attributes
    ----------
    name : str
        Key of the step's result in :attr:`StepWizard.results`.
    title : str
        Shown as the step's heading.
    explanation : str
        HTML shown before the step runs: what it does and why the regulation asks for it.
    action : callable
        Runs the step: returns (or, for a coroutine function, resolves to) the step's
        structured result and the HTML showing it.
    """

    name: str
    title: str
    explanation: str
    action: Callable[[], StepOutcome] | Callable[[], Awaitable[StepOutcome]]

    @property
    def is_async(self) -> bool:
        """Whether the action is a coroutine function (run it with ``run_step_async``)."""
        return inspect.iscoroutinefunction(self.action)


class StepWizard(widgets.VBox):
    """A wizard: one step at a time, each run by a button, its outcome shown below.

    Parameters
    ----------
    steps : sequence of WizardStep
        The steps, in order.
    css_class : str
        An extra CSS class (``heliosfl-`` prefixed) for this wizard.

    Notes
    -----
    *Run step* runs the current step: a synchronous step at once, an asynchronous one in
    an asyncio task on the running loop (kept in :attr:`task`; in Jupyter, the kernel's),
    so the kernel stays responsive. *Next* moves on once the
    step has succeeded. A step's exception is shown in the widget and kept in
    :attr:`error`; ``run_step`` and ``run_step_async`` also raise it, a click does not
    (there is nobody to raise it to). ``asyncio.CancelledError`` is never swallowed.
    """

    def __init__(self, steps: Sequence[WizardStep], *, css_class: str) -> None:
        if not steps:
            raise ConfigError("steps", "[]", "at least one WizardStep")
        self._steps = tuple(steps)
        self._step = 0
        self._results: dict[str, dict[str, Any]] = {}
        self._html: dict[str, str] = {}
        self._running = False
        #: The text of the last error shown in the widget (None after a step succeeds).
        self.error: str | None = None
        #: The task of the last asynchronous step started by a click.
        self.task: asyncio.Task[None] | None = None
        self.title = widgets.HTML()
        self.title.add_class("heliosfl-walkthrough-title")
        self.explanation = widgets.HTML()
        self.run_button = widgets.Button(
            description="Run step", button_style="primary", icon="play"
        )
        self.next_button = widgets.Button(description="Next", icon="arrow-right", disabled=True)
        self.progress = widgets.IntProgress(value=0, min=0, max=len(self._steps))
        self.progress_label = widgets.HTML()
        self.output = widgets.HTML()
        self.output.add_class("heliosfl-walkthrough-output")
        self.error_box = widgets.HTML()
        self.error_box.add_class("heliosfl-walkthrough-error")
        super().__init__(
            [
                widgets.HTML(_STYLE),
                widgets.HBox([self.progress, self.progress_label]),
                self.title,
                self.explanation,
                widgets.HBox([self.run_button, self.next_button]),
                self.output,
                *self._extra_children(),
                self.error_box,
            ]
        )
        self.add_class("heliosfl-walkthrough")
        self.add_class(css_class)
        self.run_button.on_click(lambda _b: self._clicked_run())
        self.next_button.on_click(lambda _b: self._clicked_next())
        self._render()

    def _extra_children(self) -> list[Any]:
        """Widgets shown under the results (subclasses add e.g. a download link)."""
        return []

    # ------------------------------------------------------------------ state
    @property
    def step(self) -> int:
        """Index of the current step (0-based)."""
        return self._step

    @property
    def step_names(self) -> list[str]:
        """The steps' names, in order."""
        return [s.name for s in self._steps]

    @property
    def results(self) -> dict[str, dict[str, Any]]:
        """Step name to the structured result of that step, for the steps run so far."""
        return dict(self._results)

    @property
    def finished(self) -> bool:
        """Whether every step has run successfully."""
        return len(self._results) == len(self._steps)

    @property
    def running(self) -> bool:
        """Whether a step is running now."""
        return self._running

    # ------------------------------------------------------------------ driving
    def run_step(self) -> dict[str, Any]:
        """Run the current (synchronous) step and return its result.

        Raises
        ------
        RuntimeError
            If the step is asynchronous (await :meth:`run_step_async`) or one is running.
        Exception
            Whatever the step raised (also shown in the widget and kept in :attr:`error`).
        """
        if self._steps[self._step].is_async:
            name = self._steps[self._step].name
            raise RuntimeError(
                f"Step {name!r} is asynchronous: use `await wizard.run_step_async()` "
                "(or click Run step)."
            )
        step = self._begin()
        with self._running_step(step):
            outcome = step.action()
        return self._succeed(step, outcome)  # type: ignore[arg-type]

    async def run_step_async(self) -> dict[str, Any]:
        """Run the current step (synchronous or not) and return its result.

        Raises
        ------
        RuntimeError
            If a step is already running.
        Exception
            Whatever the step raised (also shown in the widget and kept in :attr:`error`).
        """
        return await self._execute(self._begin())

    async def _execute(self, step: WizardStep) -> dict[str, Any]:
        with self._running_step(step):
            outcome = step.action()
            if inspect.isawaitable(outcome):
                outcome = await outcome
        return self._succeed(step, outcome)

    @contextlib.contextmanager
    def _running_step(self, step: WizardStep) -> Iterator[None]:
        """While `step` runs: a failure is shown and kept; either way the run ends."""
        try:
            yield
        except Exception as exc:
            self._fail(step, exc)
            raise
        finally:
            self._running = False
            self._render()

    def next(self) -> int:
        """Move to the next step and return its index.

        Raises
        ------
        RuntimeError
            If the current step has not run successfully yet, or it is the last one.
        """
        step = self._steps[self._step]
        if step.name not in self._results:
            raise RuntimeError(f"Run step {step.name!r} before moving on.")
        if self._step == len(self._steps) - 1:
            raise RuntimeError("This is the last step.")
        self._step += 1
        self.error = None
        self.error_box.value = ""
        self._render()
        return self._step

    def run_all(self) -> dict[str, dict[str, Any]]:
        """Run the remaining steps (all synchronous) in order; return :attr:`results`."""
        while True:
            if self._steps[self._step].name not in self._results:
                self.run_step()
            if self._step == len(self._steps) - 1:
                return self.results
            self.next()

    async def run_all_async(self) -> dict[str, dict[str, Any]]:
        """Run the remaining steps in order, awaiting asynchronous ones; return results."""
        while True:
            if self._steps[self._step].name not in self._results:
                await self.run_step_async()
            if self._step == len(self._steps) - 1:
                return self.results
            self.next()

    # ------------------------------------------------------------------ internals
    def _begin(self) -> WizardStep:
        if self._running:
            raise RuntimeError("A step is running; wait for it to finish.")
        self._running = True
        self.error = None
        self.error_box.value = ""
        step = self._steps[self._step]
        self.run_button.disabled = True
        self.run_button.description = "Running..."
        return step

    def _succeed(self, step: WizardStep, outcome: StepOutcome) -> dict[str, Any]:
        result, shown = outcome
        self._results[step.name] = result
        self._html[step.name] = shown
        self._render()
        return result

    def _fail(self, step: WizardStep, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        self.error_box.value = (
            f"<div class='heliosfl-walkthrough-error'><b>Step {esc(step.title)} failed.</b> "
            f"{esc(self.error)}</div>"
        )
        self._render()

    def _render(self) -> None:
        step = self._steps[self._step]
        done = step.name in self._results
        last = self._step == len(self._steps) - 1
        with self.hold_sync():
            number = f"Step {self._step + 1} of {len(self._steps)}"
            self.title.value = (
                f"<div class='heliosfl-walkthrough-title'>{number}: {esc(step.title)}</div>"
            )
            self.explanation.value = step.explanation
            self.progress.value = len(self._results)
            self.progress_label.value = f"{len(self._results)} of {len(self._steps)} steps done"
            self.output.value = self._html.get(step.name, "")
            self.run_button.description = "Running..." if self._running else "Run step"
            self.run_button.disabled = self._running or done
            self.next_button.disabled = self._running or not done or last

    def _clicked_run(self) -> None:
        """What *Run step* does: errors are shown in the widget, not raised."""
        if self._running:
            return
        step = self._steps[self._step]
        if not step.is_async:
            # The error is shown in the widget and kept in self.error: not swallowed.
            with contextlib.suppress(Exception):
                self.run_step()
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError as exc:
            self._fail(step, RuntimeError(f"{exc}: await wizard.run_step_async() instead"))
            return
        self._begin()  # at once, so a second click cannot start the step again
        self.task = asyncio.ensure_future(self._run_clicked(step))
        self.task.add_done_callback(lambda task: self._task_done(task, step))

    async def _run_clicked(self, step: WizardStep) -> None:
        # The error is shown in the widget and kept in self.error: not swallowed.
        with contextlib.suppress(Exception):
            await self._execute(step)

    def _task_done(self, task: asyncio.Task[None], step: WizardStep) -> None:
        if task.cancelled():  # possibly before it started: nothing else resets the state
            self._running = False
            self._fail(step, asyncio.CancelledError("the step was cancelled"))

    def _clicked_next(self) -> None:
        try:
            self.next()
        except RuntimeError as exc:
            self._fail(self._steps[self._step], exc)


# ---------------------------------------------------------------------------- HIPAA
