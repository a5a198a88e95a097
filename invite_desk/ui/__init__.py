"""Qt windows, dialogs, item models and the background task runner (the only layer using Qt)."""
