"""The presentation deck (issue 11): ``notebooks/90_presentation.ipynb`` rendered as reveal.js
slides and a PDF, from the repository and a real run, rebuilt with ``make slides``.

Modules, one concern each:

- :mod:`~pipelines.presentation.sections` — the French section titles, in order;
- :mod:`~pipelines.presentation.facts` — every figure, read from the serving collections, the
  run ledger, ``outputs/bench/*.json`` and the repository;
- :mod:`~pipelines.presentation.excerpts` — code pulled from the source by dotted name;
- :mod:`~pipelines.presentation.blocks` and :mod:`~pipelines.presentation.figures` — HTML
  blocks and matplotlib PNGs;
- :mod:`~pipelines.presentation.slides` and :mod:`~pipelines.presentation.slides_results` —
  the content of each slide, what the notebook calls;
- :mod:`~pipelines.presentation.assets` — the offline reveal.js (npm, cached);
- :mod:`~pipelines.presentation.screens` — dashboard screenshots (Voila + headless Chromium);
- :mod:`~pipelines.presentation.render` — execute the notebook, export the HTML, print the PDF;
- :mod:`~pipelines.presentation.build` — ``make slides``: what to start, in which order.
"""
