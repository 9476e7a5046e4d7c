"""Solution: only lower-case letters, digits and '-' (1 to 32, starting alphanumeric) pass."""
answer = {"*", 'c01", "Resource": "*', "C01", "c01/../c02", ""}
