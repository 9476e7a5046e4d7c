"""Solution: transitions alone, a far-future date, and a disabled rule never delete in 3 years."""
answer = {"b-transition-only", "c-far-date", "d-disabled"}
