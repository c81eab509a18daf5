"""The machinery of a training run, around the loop in tinyresnet/train.py.

  recipe.py      the options: one Recipe dataclass, the command line generated from it
  folder.py      the --out folder: log.csv, config.json, reading them back, one run at a time (.lock)
  atomic.py      writing a file so that nobody sees half of it, and sweeping what a killed write left
  checkpoint.py  the checkpoint file: atomic, pickle-free
  state.py       what a run holds while it runs (State) and its running sums
  resume.py      saving a State and taking it back: exact resume
  stops.py       Ctrl-C, SIGTERM, SIGHUP, NaN, a full disk: how a run stops, and how to go on
  report.py      what a run says: its first lines, its epochs, its summary, its exit status
"""
