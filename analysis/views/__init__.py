"""Drawing and display only, on data computed below: matplotlib figures (:mod:`.plots`), tables
and figures in notebooks (:mod:`.display`) and the JupyterLab sliders (:mod:`.widgets`).
"""
