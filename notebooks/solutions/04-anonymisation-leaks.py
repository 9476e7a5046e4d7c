"""Solution: against the lazy-informed attacker, both McAdams settings still name the speaker
6 to 8.5 times as often as chance; the per-speaker pitch and formant shift falls under 2x."""
answer = {"still_identifies": {"McAdams alpha=0.8", "McAdams alpha~U[0.7, 0.9) per utterance"}}
