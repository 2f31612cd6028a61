"""Qt-free teaching steps for the plugin: the library's prose (:mod:`fusplan.teaching`), per side.

The text is the same as ``fusplan demo``'s notes, derived from this simulation's numbers;
this module only merges the sides of a two-sided plan into one step per stage and names
each side.
"""
from __future__ import annotations

from collections.abc import Sequence


def teaching_steps(document: dict, sides: Sequence[str | None]) -> list[dict]:
    """One step per stage present: ``stage``, ``title``, ``time_s`` (its peak) and ``text``.

    Parameters
    ----------
    document : dict
        ``SimulationResult.to_dict()`` (the JSON the CLI prints).
    sides : sequence of str or None
        Sides to describe (``[None]`` in the phantom); with more than one, every
        paragraph starts with its side.
    """
    from fusplan import regions_from_report
    from fusplan import stage_steps
    from fusplan import Timeline

    sides = list(sides)
    by_stage: dict[str, list] = {}
    for side in sides:
        for step in stage_steps(Timeline.from_report(document, side), regions_from_report(document, side)):
            by_stage.setdefault(step.stage, []).append((side, step))
    steps = []
    for stage, entries in sorted(by_stage.items(), key=lambda item: min(s.time_s for _, s in item[1])):
        paragraphs = [(f"{side.capitalize()} side. " if side and len(sides) > 1 else "") + step.text
                      for side, step in entries]
        steps.append({"stage": stage, "title": entries[0][1].title,
                      "time_s": float(max(s.time_s for _, s in entries)), "text": "\n\n".join(paragraphs)})
    return steps
