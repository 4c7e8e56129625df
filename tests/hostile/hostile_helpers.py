"""The hostile suite's helpers from this folder's conftest.py, loaded by path.

Every test folder has a ``conftest.py`` and none is a package, so pytest imports them all under the one module name
``conftest``: ``from conftest import run_cli`` finds whichever folder's conftest was imported last (tests/catalog's
when the whole suite runs). Import the helpers from here instead.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("hostile_conftest", Path(__file__).with_name("conftest.py"))
_conftest = sys.modules.get("hostile_conftest") or importlib.util.module_from_spec(_spec)
if "hostile_conftest" not in sys.modules:
    sys.modules["hostile_conftest"] = _conftest  # dataclasses look their module up there
    _spec.loader.exec_module(_conftest)

CANARY_SECRET = _conftest.CANARY_SECRET
REPO = _conftest.REPO
assert_clean_error = _conftest.assert_clean_error
assert_no_secret = _conftest.assert_no_secret
item_json = _conftest.item_json
run_cli = _conftest.run_cli
tiny_recipe_doc = _conftest.tiny_recipe_doc
tree_digest = _conftest.tree_digest

__all__ = [
    "CANARY_SECRET",
    "REPO",
    "assert_clean_error",
    "assert_no_secret",
    "item_json",
    "run_cli",
    "tiny_recipe_doc",
    "tree_digest",
]
