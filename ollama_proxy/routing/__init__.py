"""Which backend serves a model: names, aliases, overrides, the catalog, merged listings."""
