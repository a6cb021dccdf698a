"""paper_figs: app built on certkit (filled by its own issue)."""
