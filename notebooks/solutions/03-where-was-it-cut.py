"""Solution: verify each trail with the pinned verifier; A breaks where a line was removed."""
from securepipe.audit import verify_trail
from securepipe.exercises import show

start = show("03-where-was-it-cut")
answer = {"first_bad_line": {}}
for name, lines in start["trails"].items():
    result = verify_trail(lines, start["verifier"], name=f"raw-reads-{name}")
    answer["first_bad_line"][name] = None if result.ok else result.index
