"""Solution: the gaps whose refusal comes from the kit's own code, read from the register."""
from securepipe.sandbox.gaps import MOTO_GAPS

answer = {gap.id for gap in MOTO_GAPS if gap.response == "emulate"}
