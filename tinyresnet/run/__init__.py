"""The machinery of a training run, around the loop in tinyresnet/train.py.

  recipe.py      the options: one Recipe dataclass, the command line generated from it
  folder.py      the --out folder: log.csv, config.json, their names, reading them back
  checkpoint.py  the checkpoint file: atomic, pickle-free
  state.py       what a run holds while it runs (State) and its running sums
  resume.py      saving a State, taking it back, replaying an epoch: exact resume
  stops.py       Ctrl-C and NaN: how a run stops, and how to go on
  report.py      what a run says: its first lines, its epochs, its summary, its exit status
"""
