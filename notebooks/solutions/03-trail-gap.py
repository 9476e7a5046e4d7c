"""Solution: c03's reads are excluded, and quarantine/ has only an uploads selector: its reads and
deletes are not logged. (Each pair checked with securepipe.audit.monitoring.prefix_coverage.)"""
answer = {"not_logged": {("GetObject", "raw/c03/"), ("GetObject", "quarantine/"),
                         ("DeleteObject", "quarantine/")}}
