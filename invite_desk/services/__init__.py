"""Use cases, ORM models and read models. No Qt and no Flask here (see DESIGN.md, Layers)."""
