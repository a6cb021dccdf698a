"""Monte Carlo experiments; importing this package registers every experiment module.

Each module defines one experiment and calls :func:`synthetic.registry.register` at import.
"""

import importlib
import pkgutil

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
