"""The licence catalogue (``data/licenses.yaml``) as typed, cached data.

Looks up Hub licence ids and ``license_name`` aliases, recognises model families from repo ids
(for base repos that cannot be resolved and for re-tagged copies), and knows which models are
open source in the strict sense. Regions: EU member states count as ``EU``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Literal

from kubellm.api.v1alpha1 import LicenseClass
from kubellm.datafiles import load_mapping

Commercial = Literal["yes", "no", "conditional", "unknown"]

# EU member states, ISO 3166-1 alpha-2 (Greece also as EL, the EU's own code). Source:
# european-union.europa.eu "EU countries" (27 members since 2020-02-01).
EU_MEMBERS = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "EL",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
    ]
)
_REGION_ALIASES = {"GB": "UK"}
CLASSES = ("permissive", "restrictive-community", "research-only", "unknown")
COMMERCIAL = ("yes", "no", "conditional", "unknown")


@dataclass(frozen=True)
class GeoExclusion:
    """Licensees domiciled in ``regions`` get no rights (for ``scope`` all or multimodal models)."""

    regions: tuple[str, ...]
    scope: Literal["all", "multimodal"]
    clause: str
    source: str
    license_key: str | None = None
    applies: bool | None = True  # None: scope multimodal and multimodality unknown


@dataclass(frozen=True)
class LicenseEntry:
    key: str
    hub_id: str
    name: str
    class_: LicenseClass
    commercial: Commercial
    mau_limit: int | None
    geo: tuple[GeoExclusion, ...]
    obligations: tuple[str, ...]
    osi: bool
    source: str
    missing: str | None = None  # class unknown: which fact would decide it


@dataclass(frozen=True)
class FamilyRule:
    pattern: re.Pattern[str]
    license_key: str
    multimodal: bool | None  # True: multimodal family; False: text-only; None: not said
    source: str


@dataclass(frozen=True)
class Catalog:
    licenses: dict[str, LicenseEntry]
    aliases: dict[str, str]
    families: tuple[FamilyRule, ...]
    open_source: tuple[tuple[re.Pattern[str], str], ...]

    def lookup(
        self, license_id: str | None, license_name: str | None = None
    ) -> LicenseEntry | None:
        """The entry for a card's ``license`` (+ ``license_name`` when it is ``other``)."""
        candidates = []
        if license_id and license_id.strip().lower() not in ("other", "unknown", ""):
            candidates.append(license_id)
        if license_name:
            candidates.append(license_name)
        for raw in candidates:
            text = normalise_id(raw)
            key = self.aliases.get(text, text)
            if key in self.licenses:
                return self.licenses[key]
        return None

    def family(self, repo: str) -> FamilyRule | None:
        """The first family rule whose pattern occurs in the repo id, if any."""
        for rule in self.families:
            if rule.pattern.search(repo.lower()):
                return rule
        return None

    def open_source_source(self, repo: str) -> str | None:
        """The source saying ``repo`` is open source (weights, data, code), else None."""
        for pattern, source in self.open_source:
            if pattern.search(repo.lower()):
                return source
        return None


def normalise_id(text: str) -> str:
    """A licence id or license_name as the catalogue keys it: lower case, spaces and underscores
    as "-" ("Llama 3.1 Community License" -> "llama-3.1-community-license")."""
    return re.sub(r"[\s_]+", "-", text.strip().lower())


def normalise_region(code: str) -> str:
    text = code.strip().upper()
    return _REGION_ALIASES.get(text, text)


def region_matches(jurisdiction: str, regions: tuple[str, ...]) -> bool:
    """Whether a licensee domiciled in ``jurisdiction`` is inside one of ``regions``."""
    where = normalise_region(jurisdiction)
    wanted = {normalise_region(r) for r in regions}
    return where in wanted or ("EU" in wanted and where in EU_MEMBERS)


def _entry(key: str, raw: dict[str, Any]) -> LicenseEntry:
    geo = tuple(
        GeoExclusion(
            regions=tuple(g["regions"]),
            scope=g.get("scope", "all"),
            clause=" ".join(str(g["clause"]).split()),
            source=g["source"],
            license_key=key,
        )
        for g in raw.get("geo", [])
    )
    if raw["class"] not in CLASSES or raw["commercial"] not in COMMERCIAL:
        raise ValueError(f"licenses.yaml: {key}: class {raw['class']!r} / commercial "
                         f"{raw['commercial']!r} (one of {CLASSES} / {COMMERCIAL})")
    if (raw["class"] == "unknown") != bool(raw.get("missing")):
        raise ValueError(f"licenses.yaml: {key}: class unknown and missing go together")
    return LicenseEntry(
        key=key,
        hub_id=raw.get("hub_id", key),
        name=raw["name"],
        class_=raw["class"],
        commercial=raw["commercial"],
        mau_limit=raw.get("mau_limit"),
        geo=geo,
        obligations=tuple(raw.get("obligations", [])),
        osi=bool(raw.get("osi", False)),
        source=raw["source"],
        missing=" ".join(str(raw["missing"]).split()) if raw.get("missing") else None,
    )


def parse_catalog(data: dict[str, Any]) -> Catalog:
    """Build and check a catalogue from its YAML form (every alias and family must resolve)."""
    licenses = {str(k): _entry(str(k), v) for k, v in data["licenses"].items()}
    aliases = {normalise_id(str(k)): str(v) for k, v in data.get("aliases", {}).items()}
    families = tuple(
        FamilyRule(
            pattern=re.compile(rule["match"]),
            license_key=rule["license"],
            multimodal=rule.get("multimodal"),
            source=rule["source"],
        )
        for rule in data.get("families", [])
    )
    open_source = tuple(
        (re.compile(rule["match"]), str(rule["source"])) for rule in data.get("open_source", [])
    )
    missing = sorted(
        {v for v in aliases.values() if v not in licenses}
        | {f.license_key for f in families if f.license_key not in licenses}
    )
    if missing:
        raise ValueError(f"licenses.yaml: aliases/families name unknown licences {missing}")
    return Catalog(licenses=licenses, aliases=aliases, families=families, open_source=open_source)


@functools.cache
def load_catalog() -> Catalog:
    """The packaged catalogue (``kubellm/data/licenses.yaml``), parsed once."""
    return parse_catalog(load_mapping("licenses.yaml"))
