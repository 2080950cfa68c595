"""The training shell: config schema, Lightning module, data module, callbacks, entry point."""
