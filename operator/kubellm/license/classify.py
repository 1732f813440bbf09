"""Resolve the effective licence of a model: its own card, its base_model chain, its family.

Every repo in the chain (the model, then each ``base_model``) contributes links: the licence its
card (or ``spec.model``) declares, and the licence of the family its repo id belongs to
(``families`` in data/licenses.yaml). A repo with neither contributes an *unknown* link. The
strictest link wins (research-only > unknown > restrictive-community > permissive, then
non-commercial > conditional > commercial, then geographic exclusions, then user thresholds);
commercial terms, thresholds, exclusions and obligations of every known link are combined,
because a derivative is bound by each licence it inherits.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubellm.api.v1alpha1 import LicenseClass, Openness
from kubellm.facts import ModelFacts
from kubellm.license.catalog import Commercial, GeoExclusion, LicenseEntry, load_catalog

CLASS_RANK: dict[str, int] = {
    "permissive": 0,
    "restrictive-community": 1,
    "unknown": 2,
    "research-only": 3,
}
COMMERCIAL_RANK: dict[str, int] = {"yes": 0, "conditional": 1, "unknown": 2, "no": 3}
MULTIMODAL_PIPELINES = frozenset(
    {"image-text-to-text", "visual-question-answering", "image-to-text", "any-to-any"}
)


@dataclass(frozen=True)
class ChainLink:
    """One licence fact about one repo of the chain."""

    repo: str
    how: str  # card | declared | family | unresolved | missing
    license_id: str | None
    license_name: str | None
    entry: LicenseEntry | None
    source: str
    multimodal: bool | None = None  # what a family rule says about the repo
    missing: str | None = None  # when its class is unknown: the fact that would decide it

    @property
    def class_(self) -> LicenseClass:
        return self.entry.class_ if self.entry else "unknown"

    @property
    def label(self) -> str:
        if self.entry is not None:
            return self.entry.key
        if self.license_id and self.license_name:
            return f"{self.license_id}/{self.license_name}"
        return self.license_id or "unknown"

    def rank(self) -> tuple[int, int, int, int, int]:
        """Strictness; on a tie a licence read from a card beats one guessed from a repo id."""
        entry = self.entry
        return (
            CLASS_RANK[self.class_],
            COMMERCIAL_RANK[entry.commercial if entry else "unknown"],
            1 if entry and entry.geo else 0,
            1 if entry and entry.mau_limit else 0,
            0 if self.how == "family" else 1,
        )


@dataclass(frozen=True)
class EffectiveLicense:
    """The licence that governs serving the model, after the base_model chain."""

    id: str | None  # Hub licence id of the deciding link (other for license_name licences)
    name: str | None  # license_name of the deciding link / catalogue name
    key: str | None  # catalogue key (None when unknown)
    class_: LicenseClass
    commercial: Commercial
    mau_limit: int | None
    geo_exclusions: tuple[GeoExclusion, ...]
    obligations: tuple[str, ...]
    osi: bool
    openness: Openness
    source: str  # the fact and its source for the deciding link
    from_repo: str  # which repo of the chain the deciding licence came from
    declared: bool  # the model's own licence came from spec.model (facts.declared), not the Hub
    multimodal: bool | None
    chain: tuple[ChainLink, ...]
    # When the class is unknown: what is missing, per repo of the chain whose licence is unknown
    # ("model card of acme/x: license: other with license_name 'acme' ...").
    missing: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        if self.key:
            return self.key
        if self.id and self.name:
            return f"{self.id}/{self.name}"
        return self.id or "unknown"

    def licence_ids(self) -> frozenset[str]:
        """Every id by which a policy may name a licence of the chain (lower-case)."""
        ids: set[str] = set()
        for link in self.chain:
            for value in (link.license_id, link.license_name):
                if value and value.lower() not in ("other", "unknown"):
                    ids.add(value.lower())
            if link.entry is not None:
                ids.add(link.entry.key.lower())
        return frozenset(ids)


def _missing(repo: str, license_id: str, license_name: str | None, how: str, what: str,
             link: str | None, card_error: str | None = None) -> str:
    """What is missing for an unknown licence, said so that the user knows what to add."""
    read = f" (licence text: {link})" if link else ""
    if how == "unresolved":
        return (f"{what} {repo} could not be read (not on the Hub, the mirror or the offline "
                "cache), so its licence is unknown")
    if not license_id and card_error:
        return f"{what} {repo}: {card_error}"
    if not license_id:
        return f"{what} {repo} declares no licence (no license in its card{read})"
    if license_id.lower() == "unknown":
        return f"{what} {repo} says license: unknown{read}"
    if license_id.lower() == "other" and not license_name:
        return f"{what} {repo} says license: other without a license_name{read}"
    if license_id.lower() == "other":
        return (f"{what} {repo}: license_name {license_name!r} is not in kubellm's licence "
                f"catalogue{read}")
    return f"{what} {repo}: licence id {license_id!r} is not in kubellm's licence catalogue{read}"


def _links_for(
    repo: str,
    license_id: str | None,
    license_name: str | None,
    how: str,
    what: str,
    license_link: str | None = None,
    card_error: str | None = None,
) -> list[ChainLink]:
    catalog = load_catalog()
    links: list[ChainLink] = []
    text_id = (license_id or "").strip()
    if text_id and text_id.lower() != "unknown":
        entry = catalog.lookup(text_id, license_name)
        shown = f"license: {text_id}" + (f", license_name: {license_name}" if license_name else "")
        fact = f"{what} {repo} ({shown})"
        missing = None
        if entry is not None:
            fact += f"; catalogue: {entry.source}"
            if entry.missing:
                missing = f"{what} {repo}: {entry.missing}"
        links.append(ChainLink(repo, how, text_id, license_name, entry, fact, missing=missing))
    family = catalog.family(repo)
    if family is not None:
        entry = catalog.licenses[family.license_key]
        fact = (
            f"repo id {repo} matches the {family.license_key} family "
            f"(/{family.pattern.pattern}/): {family.source}"
        )
        links.append(
            ChainLink(repo, "family", entry.hub_id, None, entry, fact, multimodal=family.multimodal)
        )
    if not any(link.entry is not None for link in links):
        kind = "missing" if not links else links[0].how
        fact = links[0].source if links else f"{what} {repo}: no licence in its card or spec"
        gap = _missing(repo, text_id, license_name, how, what, license_link, card_error)
        links = [ChainLink(repo, kind, text_id or None, license_name, None, fact, missing=gap)]
    return links


def chain_links(facts: ModelFacts) -> tuple[ChainLink, ...]:
    """Licence links of the model and its base models, the model first."""
    own_how = "declared" if "license" in facts.declared else "card"
    what = "spec.model of" if own_how == "declared" else "model card of"
    links = _links_for(facts.repo, facts.license, facts.license_name, own_how, what,
                       facts.license_link, facts.card_error)
    for base in facts.base_models:
        how = "card" if base.license or base.resolved else "unresolved"
        links += _links_for(
            base.repo, base.license, base.license_name, how, f"base model ({base.relation})"
        )
    return tuple(links)


def _multimodal(facts: ModelFacts, links: tuple[ChainLink, ...]) -> bool | None:
    """True / False when the config, the pipeline tag or a family rule says so; else None."""
    if any(link.multimodal is True for link in links):
        return True
    if facts.pipeline_tag in MULTIMODAL_PIPELINES:
        return True
    if facts.architecture is not None:
        return facts.architecture.multimodal
    if any(link.multimodal is False for link in links):
        return False
    return None


def _openness(facts: ModelFacts, winner: ChainLink) -> Openness:
    catalog = load_catalog()
    repos = [facts.repo, *(b.repo for b in facts.base_models)]
    if winner.class_ == "permissive" and all(catalog.open_source_source(r) for r in repos):
        return "open-source"
    return "open-weight"


def classify(facts: ModelFacts) -> EffectiveLicense:
    """The effective licence of ``facts.repo`` after its base_model chain (strictest wins)."""
    links = chain_links(facts)
    winner = links[0]
    for link in links[1:]:
        if link.rank() > winner.rank():
            winner = link
    known = [link.entry for link in links if link.entry is not None]
    multimodal = _multimodal(facts, links)

    commercial: Commercial = winner.entry.commercial if winner.entry else "unknown"
    for entry in known:
        if COMMERCIAL_RANK[entry.commercial] > COMMERCIAL_RANK[commercial]:
            commercial = entry.commercial
    limits = [e.mau_limit for e in known if e.mau_limit]
    geo: list[GeoExclusion] = []
    seen: set[tuple[str | None, tuple[str, ...]]] = set()
    for entry in known:
        for g in entry.geo:
            if (g.license_key, g.regions) in seen:
                continue
            seen.add((g.license_key, g.regions))
            applies = True if g.scope == "all" else multimodal
            geo.append(GeoExclusion(g.regions, g.scope, g.clause, g.source, g.license_key, applies))
    if facts.eu_disallowed:
        geo.append(
            GeoExclusion(
                ("EU",),
                "all",
                "the repo's author disallows access from the EU (extra_gated_eu_disallowed)",
                f"model card of {facts.repo} (extra_gated_eu_disallowed: true)",
                None,
                True,
            )
        )
    obligations: list[str] = []
    for entry in known:
        for text in entry.obligations:
            if text not in obligations:
                obligations.append(text)
    win = winner.entry
    return EffectiveLicense(
        id=winner.license_id or (win.hub_id if win else None),
        name=winner.license_name or (win.key if win and win.hub_id == "other" else None),
        key=win.key if win else None,
        class_=winner.class_,
        commercial=commercial,
        mau_limit=min(limits) if limits else None,
        geo_exclusions=tuple(geo),
        obligations=tuple(obligations),
        osi=bool(known) and all(e.osi for e in known) and len(known) == len(links),
        openness=_openness(facts, winner),
        source=winner.source,
        from_repo=winner.repo,
        declared="license" in facts.declared,
        multimodal=multimodal,
        chain=links,
        missing=tuple(dict.fromkeys(
            link.missing for link in links if link.class_ == "unknown" and link.missing
        )) if winner.class_ == "unknown" else (),
    )
