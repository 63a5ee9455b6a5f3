"""Performance benchmarks: scripts that start the parties and print figures."""
