"""Solution: every acoustic representation still identifies; text and durations do not."""
answer = {"raw-wav", "mel-spectrogram", "mfcc-13", "speaker-embedding"}
