"""One module per chapter: its configs (ci and full), its features, and one function per experiment."""
