"""Solution: every change to a field of the encryption context refuses; nothing else does."""
answer = {"copied-to-c02-folder", "renamed-sample-id", "purpose-changed"}
