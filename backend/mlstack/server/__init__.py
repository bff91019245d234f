"""How a replica process runs: its launch, process-wide tuning and HTTP transport."""
