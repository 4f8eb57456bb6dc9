"""ppl_fewshot: few-shot generative models written in Pyro.

Give the library a handful of drawings of a new character and it draws another,
scores how likely a new drawing is, and says what it believes about the character.

Subpackages (imports flow one way, top to bottom):

- :mod:`ppl_fewshot.cli` -- the ``ppl-fewshot`` command line.
- :mod:`ppl_fewshot.diagnostics` -- calibration (SBC, coverage), PSIS k-hat, ArviZ adapter, plots.
- :mod:`ppl_fewshot.inference` -- objectives, trainer, evaluation estimators.
- :mod:`ppl_fewshot.models` -- Pyro model/guide pairs, found by name.
- :mod:`ppl_fewshot.nn` -- plain ``nn.Module`` building blocks.
- :mod:`ppl_fewshot.data` -- datasets, protocols and episode samplers.
"""

__version__ = "0.1.0"
