"""FHIR-native CDS Hooks service for alveolar-hemorrhage guidance."""
