"""The licence policy engine (pure): classify a model's licence, pick the LicensePolicy, decide.

Facts come from ``kubellm.facts.ModelFacts``; licence facts from ``data/licenses.yaml`` (each with
its source). Modules: ``catalog`` (the data), ``classify`` (base_model chain -> EffectiveLicense),
``policy`` (select_policy and the documented default), ``decide`` (rules -> LicenseDecision).
"""

from kubellm.license.catalog import GeoExclusion, load_catalog, region_matches
from kubellm.license.classify import ChainLink, EffectiveLicense, classify
from kubellm.license.decide import LicenseDecision, Reason, decide
from kubellm.license.policy import DEFAULT_POLICY_NAME, default_policy_spec, select_policy

__all__ = [
    "DEFAULT_POLICY_NAME",
    "ChainLink",
    "EffectiveLicense",
    "GeoExclusion",
    "LicenseDecision",
    "Reason",
    "classify",
    "decide",
    "default_policy_spec",
    "load_catalog",
    "region_matches",
    "select_policy",
]
