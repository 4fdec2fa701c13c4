"""Cedar evaluation: bundle -> parsed handles -> decisions. Knows nothing about HTTP."""

from pdp.engine.actions import ActionCatalog, ActionInfo, UnknownAction, cedar_uid
from pdp.engine.bundle import Bundle, BundleVersion, PolicyInfo, load_bundle
from pdp.engine.evaluate import EntityInput, EvalRequest, Evaluation, PolicyError, evaluate
from pdp.engine.problems import BundleInvalid, BundleProblem
from pdp.engine.store import BundleStore, ReloadOutcome

__all__ = [
    "ActionCatalog", "ActionInfo", "Bundle", "BundleInvalid", "BundleProblem", "BundleStore",
    "BundleVersion", "EntityInput", "EvalRequest", "Evaluation", "PolicyError", "PolicyInfo",
    "ReloadOutcome", "UnknownAction", "cedar_uid", "evaluate", "load_bundle",
]
