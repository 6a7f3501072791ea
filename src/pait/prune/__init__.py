"""The practitioner path: prune one backbone on one folder of images (options, data, recovery, OBS, N:M,
its report)."""
