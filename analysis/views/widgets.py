"""The explorer live in JupyterLab: α and NMS-IoU sliders over dumps (ipywidgets), each move
re-scored by :class:`analysis.studies.explorer.LiveRescorer`. Drawing only."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..inputs.io import Dump
from ..measures.coco import RECALL
from ..studies.explorer import GRID_METRICS, LiveRescorer


def live_widgets(dumps: Mapping[str, Dump], root: str | Path | None = None, alpha: float = 0.4,
                 nms_iou: float = 0.5) -> Any:
    """An ipywidgets box for JupyterLab: α and NMS IoU sliders (any value, step 0.01), each detector's
    AP, AP50, AP75 and AR re-scored from its dump on every move (:class:`LiveRescorer`), the time
    the move took, and the precision–recall curves (matplotlib)."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    live = LiveRescorer(dumps, root)
    a = w.FloatSlider(value=alpha, min=0.0, max=0.99, step=0.01, description="α", continuous_update=False)
    t = w.FloatSlider(value=nms_iou, min=0.3, max=0.9, step=0.01, description="NMS IoU", continuous_update=False)
    table, plot = w.HTML(), w.Output()

    def redraw(*_: Any) -> None:
        cells, seconds = live.update(a.value, t.value)
        rows = "".join(f"<tr><td>{n}</td>" + "".join(f"<td>{c[m]:.4f}</td>" for m in GRID_METRICS) + "</tr>"
                       for n, c in cells.items())
        table.value = (f"<table><tr><th>detector</th>{''.join(f'<th>{m}</th>' for m in GRID_METRICS)}</tr>{rows}"
                       f"</table><p>re-scored from the dumps in {seconds:.2f} s</p>")
        with plot:
            plot.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(6, 3.5))
            for n, c in cells.items():
                ax.plot(RECALL, [np.nan if v is None else v for v in c["mean"]], label=f"{n} (IoU .50:.95)")
            ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1))
            ax.legend(fontsize=8)
            display(fig)
            plt.close(fig)

    a.observe(redraw, "value")
    t.observe(redraw, "value")
    redraw()
    return w.VBox([w.HBox([a, t]), table, plot])
