"""One data layer for hook calls and `$apply`: prefetch templates, tokens, and the resolution of
each prefetch key from what the caller sent or from the FHIR server."""

from service.data.resolve import check_value, incomplete_keys, resolve
from service.data.templates import template, templates
from service.data.tokens import Tokens, render

__all__ = ["Tokens", "check_value", "incomplete_keys", "render", "resolve", "template", "templates"]
