"""Two import-linter contracts for the layering rules the built-in ones cannot say exactly.

``allowlist``: "this part imports only these parts" (``mapping``: only ``profiles`` and the
standard library), so that a module or a dependency added later is refused without anyone
updating a list. ``exclusive``: "only these parts import that package", tolerant of a
package nobody imports yet. Configured in ``pyproject.toml`` (``[tool.importlinter]``), run
by ``make lint``.
"""

from __future__ import annotations

import sys
from typing import Any, cast

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output
from importlinter.domain.imports import Module


def _names(value: object) -> list[str]:
    """The module names of a parsed ``ListField`` of modules (None when the option is absent)."""
    return [module.name for module in cast(list[Module], value or [])]


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _violation(graph: ImportGraph, importer: str, imported: str) -> dict[str, Any]:
    lines = graph.get_import_details(importer=importer, imported=imported)
    return {
        "importer": importer,
        "imported": imported,
        "lines": sorted({d["line_number"] for d in lines}),
    }


def _render(check: ContractCheck) -> None:
    for violation in check.metadata["violations"]:
        where = ", ".join(f"l.{n}" for n in violation["lines"])
        output.print_error(
            f"{violation['importer']} imports {violation['imported']} ({where})", bold=False
        )
        output.new_line()


class AllowlistContract(Contract):
    """Each module under ``source_modules`` imports directly only: modules of its own source
    package, ``allowed_modules``, the standard library, and (with ``allow_third_party``) any
    module outside the root packages."""

    type_name = "allowlist"

    source_modules = fields.ListField(subfield=fields.ModuleField())
    allowed_modules = fields.ListField(subfield=fields.ModuleField(), required=False)
    allow_third_party = fields.BooleanField(required=False, default=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        roots = self.session_options["root_packages"]
        allowed = _names(self.allowed_modules)
        third_party = str(self.allow_third_party).lower() == "true"
        violations: list[dict[str, Any]] = []
        for source in _names(self.source_modules):
            own = {source} | graph.find_descendants(source)
            for importer in sorted(own):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    if imported in own or any(_within(imported, a) for a in allowed):
                        continue
                    top = imported.split(".", 1)[0]
                    if top in sys.stdlib_module_names or top == "__future__":
                        continue
                    if third_party and top not in roots:
                        continue
                    violations.append(_violation(graph, importer, imported))
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        _render(check)


class ExclusiveContract(Contract):
    """Only ``allowed_importers`` (and the protected packages themselves) import
    ``protected_modules`` directly. Unlike the built-in ``protected`` contract, a protected
    package nobody imports yet is fine: the rule is there for the day someone does."""

    type_name = "exclusive"

    protected_modules = fields.ListField(subfield=fields.ModuleField())
    allowed_importers = fields.ListField(subfield=fields.ModuleField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        allowed = _names(self.allowed_importers)
        present = graph.modules
        violations: list[dict[str, Any]] = []
        for protected in _names(self.protected_modules):
            if protected not in present:
                continue
            importers = graph.find_modules_that_directly_import(protected)
            for importer in sorted(importers):
                if _within(importer, protected) or any(_within(importer, a) for a in allowed):
                    continue
                violations.append(_violation(graph, importer, protected))
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        _render(check)
