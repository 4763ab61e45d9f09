"""Content IO: the folder source, the FHIR-server source and publishing, side by side.  Each
reads or writes resources; building them is the engine's (`service.engine.build_content`)."""

from service.content.folder import load_folder, read_folder

__all__ = ["load_folder", "read_folder"]
