"""Investigation tools: scripts that time or switch single steps of silofed (see benchmarks/README.md)."""
