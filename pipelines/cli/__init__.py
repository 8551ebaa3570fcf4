"""The `featurestream` command line: one module per resource (stack, submit, ...), wired in main."""
