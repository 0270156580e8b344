"""Canonical encounter → the unsigned claim envelope (GIAMDINHHS) or the XML0 check-in.

``build_claim`` runs, in order: table selection (§5, §13) → rendering of every row (§7 formats) → business
rules (§5–§8) → one lxml tree per table, validated against its XSD → one serialisation per document →
the envelope (§3.2). Any error raises :class:`PayloadValidationError` listing every error found; warnings
travel with the result. The output is deterministic: same encounter, options and date → same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial

from lxml import etree

from schemas.documents import is_single_record, serialise, table_tree
from schemas.domain.encounter import Encounter
from schemas.domain.values import VIETNAM_TZ
from schemas.envelope import build_envelope, content_hash
from schemas.issues import Issue, PayloadValidationError, first_per_location, sorted_issues
from schemas.messages import issue
from schemas.options import PayloadOptions
from schemas.rows import RowContext, compiled_fields, render_row
from schemas.rules import RuleContext, check_documents
from schemas.selection import Plan, non_bhyt_view, plan_claim
from schemas.xsd_validation import validate_tree

Rows = list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class BuiltPayload:
    """An unsigned document ready for the signer.

    ``content_hash`` is the SHA-256 (hex) of the inner documents, LOAIHOSO names and bytes in envelope order
    (see :func:`schemas.envelope.content_hash`); it does not depend on NGAYLAP, so the same content hashes
    alike on any day. For a check-in it covers the XML0 document itself.
    """

    document: bytes
    tables: tuple[str, ...]
    content_hash: str
    warnings: tuple[Issue, ...]


def today_in_vietnam() -> date:
    return datetime.now(VIETNAM_TZ).date()


def _render(
    table: str,
    sections: Sequence[object | None],
    *,
    encounter: Encounter,
    options: PayloadOptions,
    derived: dict[str, object],
    issues: list[Issue],
) -> Rows:
    fields = compiled_fields(table, options.profile)
    single = is_single_record(table)
    rows: Rows = []
    for index, section in enumerate(sections, start=1):
        context = RowContext(encounter, section, index, options.facility_code, derived)
        row, problems = render_row(fields, context)
        for problem in problems:
            issues.append(
                issue(table, None if single else index, problem.field, problem.kind, detail=problem.detail)
            )
        rows.append(row)
    return rows


def _birth_time_known(encounter: Encounter) -> bool | None:
    birth = encounter.patient.ngay_sinh
    return None if birth is None else birth.hour is not None


def _validated_trees(
    documents: dict[str, Rows], options: PayloadOptions, context: RuleContext, issues: list[Issue]
) -> dict[str, etree._Element]:
    issues.extend(check_documents(documents, context))
    trees = {}
    for table, rows in documents.items():
        tree = table_tree(table, rows)
        issues.extend(validate_tree(table, tree, options.profile))
        trees[table] = tree
    return trees


def _raise_on_errors(issues: list[Issue]) -> tuple[Issue, ...]:
    kept = sorted_issues(first_per_location(issues))
    if any(found.is_error for found in kept):
        raise PayloadValidationError(kept)
    return tuple(kept)


@dataclass(slots=True)
class RenderedClaim:
    """Stage 1 of :func:`build_claim`: tables chosen and every row rendered to element texts, not validated."""

    plan: Plan
    documents: dict[str, Rows]
    context: RuleContext
    issues: list[Issue]


def render_claim(encounter: Encounter, options: PayloadOptions) -> RenderedClaim:
    plan = plan_claim(encounter, options)
    issues = list(plan.issues)
    render = partial(_render, encounter=plan.encounter, options=options, derived=plan.derived)
    documents = {table: render(table, plan.rows[table], issues=issues) for table in plan.tables}
    every_line = None
    if plan.lines_withheld:
        scratch: list[Issue] = []  # problems of withheld lines are not the sent payload's problems
        every_line = (
            render("XML2", plan.all_drug_lines, issues=scratch),
            render("XML3", plan.all_service_lines, issues=scratch),
        )
    context = RuleContext(
        profile=options.profile,
        facility_code=options.facility_code,
        birth_time_known=_birth_time_known(plan.encounter),
        unfiltered_lines=every_line,
    )
    return RenderedClaim(plan, documents, context, issues)


def build_claim(
    encounter: Encounter, options: PayloadOptions, *, created: date | None = None
) -> BuiltPayload:
    """The unsigned GIAMDINHHS envelope of a completed visit. ``created`` (NGAYLAP) defaults to today in
    Asia/Ho_Chi_Minh. Raises :class:`PayloadValidationError` when the visit cannot be sent as it is."""
    rendered = render_claim(encounter, options)
    trees = _validated_trees(rendered.documents, options, rendered.context, rendered.issues)
    warnings = _raise_on_errors(rendered.issues)
    inner = [
        (table, serialise(tree, declaration=options.inner_xml_declaration)) for table, tree in trees.items()
    ]
    document = build_envelope(options.facility_code, created or today_in_vietnam(), inner)
    return BuiltPayload(
        document=document, tables=rendered.plan.tables, content_hash=content_hash(inner), warnings=warnings
    )


def checkin_due(encounter: Encounter, options: PayloadOptions) -> bool:
    """§6: no check-in for emergencies (MA_DOITUONG_KCB 2), nor for non-BHYT visits unless configured."""
    if encounter.is_emergency:
        return False
    return encounter.is_insured or options.checkin_for_non_bhyt


def build_checkin(encounter: Encounter, options: PayloadOptions) -> BuiltPayload | None:
    """The XML0 check-in document (§3.3) with an empty CHUKYDONVI, or ``None`` when §6 says skip."""
    if not checkin_due(encounter, options):
        return None
    view = encounter if encounter.is_insured else non_bhyt_view(encounter)
    issues: list[Issue] = []
    section = (view.first_cost,)
    documents = {"XML0": _render("XML0", section, encounter=view, options=options, derived={}, issues=issues)}
    context = RuleContext(
        profile=options.profile, facility_code=None, birth_time_known=_birth_time_known(view)
    )
    trees = _validated_trees(documents, options, context, issues)
    warnings = _raise_on_errors(issues)
    document = serialise(trees["XML0"], declaration=True)
    return BuiltPayload(
        document=document,
        tables=("XML0",),
        content_hash=content_hash([("XML0", document)]),
        warnings=warnings,
    )
