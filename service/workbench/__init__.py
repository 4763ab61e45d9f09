"""The informatician's workbench: one patient through the content at a chosen moment (`run`), the
scenario cases against their goldens (`scenarios`), and what a clinician and a reviewer read of the
answers (`show`, `diff`).  No Flask: the command line (`service.cli`) wires it, and a page may too."""
