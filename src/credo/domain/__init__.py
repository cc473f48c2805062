"""The pure core: policy, records, scoring, lists and measures. No I/O, no clock."""
