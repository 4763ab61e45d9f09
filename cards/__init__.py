"""Turn applied PlanDefinition actions into CDS Hooks cards (CDS Hooks 2.0 §Card)."""
