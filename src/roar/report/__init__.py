"""The report: reading an experiment folder (collect), its conclusions (analysis), one module per paper
section (sections), the shared figure helpers (plots), HTML (html), and writing it all (build)."""
