"""The report: reading an experiment folder (collect), its conclusions (analysis), figures (plots), HTML (html), and writing it all (build)."""
