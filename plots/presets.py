"""Figure presets: which methods a named figure compares, as data.

A preset lists methods by the name a curve has in the table (`method`: a selected method such
as "R-DARTS(L2)", else the variant, else the optimizer). Labels and colours come from
`plots.style`, so a method looks the same in every figure. Methods the table lacks are left out
of the drawing and named in the figure's summary (and returned by `make_preset_figures`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FigurePreset:
    """name: file stem prefix; title: the figure's title; methods: the curves, in legend order."""

    name: str
    title: str
    methods: tuple[str, ...]


FIGURES: dict[str, FigurePreset] = {
    "fig3": FigurePreset(
        "fig3",
        "SDARTS Fig. 3",
        ("darts", "hessian-reg", "sdarts-rs", "sdarts-adv"),
    ),
    "regularisation": FigurePreset(
        "regularisation",
        "Regularisation vs SDARTS",
        ("darts-es", "R-DARTS(L2)", "R-DARTS(DP)", "hessian-reg", "sdarts-rs", "sdarts-adv"),
    ),
}
"""fig3: SDARTS Figure 3's methods. regularisation: the baselines DARTS-ES, R-DARTS(L2),
R-DARTS(DP) (each selected by `harness select`) and explicit Hessian regularisation against
SDARTS-RS and SDARTS-ADV."""

FIGURE_CHOICES: tuple[str, ...] = ("trajectories", *FIGURES, "all")
"""What `make_figures(figure=...)` and `plot --figure` accept: trajectories (every method in
the table, the default), a preset, or all of them."""
